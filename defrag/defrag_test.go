package defrag

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_800_000_000, 0)

var (
	src4 = [4]byte{198, 18, 0, 1}
	dst4 = [4]byte{198, 18, 0, 2}
	src6 = [16]byte{0x20, 0x01, 0x00, 0x02, 15: 1}
	dst6 = [16]byte{0x20, 0x01, 0x00, 0x02, 15: 2}
)

// frag4 builds an IPv4 fragment of datagram id carrying data at byte offset off.
func frag4(id uint16, proto uint8, off int, more bool, data []byte) []byte {
	p := make([]byte, 20+len(data))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], id)
	fo := uint16(off / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(p[6:], fo)
	p[8] = 64
	p[9] = proto
	copy(p[12:], src4[:])
	copy(p[16:], dst4[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	copy(p[20:], data)
	return p
}

// frag6 builds an IPv6 fragment behind ndst destination-options headers.
func frag6(id uint32, proto uint8, ndst, off int, more bool, data []byte) []byte {
	p := make([]byte, 40+8*ndst+8+len(data))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	p[7] = 64
	copy(p[8:], src6[:])
	copy(p[24:], dst6[:])
	nh := &p[6]
	pos := 40
	for i := 0; i < ndst; i++ {
		*nh = 60
		nh = &p[pos]
		p[pos+1] = 0
		p[pos+2] = 1 // PadN of 4 bytes
		p[pos+3] = 4
		pos += 8
	}
	*nh = 44
	p[pos] = proto
	fo := uint16(off)
	if more {
		fo |= 1
	}
	binary.BigEndian.PutUint16(p[pos+2:], fo)
	binary.BigEndian.PutUint32(p[pos+4:], id)
	copy(p[pos+8:], data)
	return p
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func newR(t testing.TB, c *Config) *Reassembler {
	t.Helper()
	r, err := New(c)
	require.NoError(t, err)
	return r
}

func TestReassembleIPv4(t *testing.T) {
	data := payload(3000)
	cases := []struct {
		name  string
		order []int
	}{
		{"in order", []int{0, 1, 2}},
		{"reversed", []int{2, 1, 0}},
		{"last first", []int{2, 0, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newR(t, nil)
			frags := [][]byte{
				frag4(7, 17, 0, true, data[:1480]),
				frag4(7, 17, 1480, true, data[1480:2960]),
				frag4(7, 17, 2960, false, data[2960:]),
			}
			for i, f := range tc.order {
				res := r.Packet(frags[f], 0, t0)
				assert.Zero(t, res.Anomalies)
				assert.False(t, res.Drop)
				if i < len(tc.order)-1 {
					assert.Equal(t, Held, res.Status)
					assert.Nil(t, res.Datagram)
					continue
				}
				require.Equal(t, Complete, res.Status)
				d := res.Datagram
				require.Len(t, d, 3020)
				assert.Equal(t, data, d[20:])
				assert.Equal(t, uint16(3020), binary.BigEndian.Uint16(d[2:]))
				assert.Zero(t, binary.BigEndian.Uint16(d[6:])&0x3fff, "MF and offset cleared")
				assert.Zero(t, checksum(d[:20]), "header checksum valid")
				assert.Equal(t, src4[:], d[12:16])
			}
			c := r.Counters()
			assert.Equal(t, uint64(3), c.Fragments)
			assert.Equal(t, uint64(1), c.Datagrams)
		})
	}
}

func TestReassembleIPv6(t *testing.T) {
	data := payload(2500)
	for _, ndst := range []int{0, 1, 8} {
		r := newR(t, nil)
		res := r.Packet(frag6(99, 17, ndst, 1232, false, data[1232:]), 0, t0)
		require.Equal(t, Held, res.Status)
		res = r.Packet(frag6(99, 17, ndst, 0, true, data[:1232]), 0, t0)
		require.Equal(t, Complete, res.Status, "ndst %d", ndst)
		d := res.Datagram
		hl := 40 + 8*ndst
		require.Len(t, d, hl+len(data))
		assert.Equal(t, data, d[hl:])
		assert.Equal(t, uint16(8*ndst+len(data)), binary.BigEndian.Uint16(d[4:]))
		// The header chain now ends in UDP.
		nh, pos := d[6], 40
		for nh == 60 {
			nh, pos = d[pos], pos+8
		}
		assert.Equal(t, uint8(17), nh)
		assert.Equal(t, hl, pos)
	}
}

func TestAtomicFragmentIPv6(t *testing.T) {
	r := newR(t, nil)
	res := r.Packet(frag6(5, 17, 1, 0, false, payload(100)), 0, t0)
	require.Equal(t, Complete, res.Status)
	assert.Len(t, res.Datagram, 48+100)
	assert.Equal(t, uint8(60), res.Datagram[6])
	assert.Equal(t, uint8(17), res.Datagram[40])
	assert.Zero(t, r.Len())
}

func TestNotFragment(t *testing.T) {
	r := newR(t, nil)
	for name, p := range map[string][]byte{
		"v4 whole":  frag4(1, 17, 0, false, payload(64)),
		"v6 udp":    func() []byte { p := frag6(1, 17, 0, 0, false, payload(8)); p[6] = 17; return p }(),
		"empty":     nil,
		"short v4":  {0x45, 0},
		"not ip":    {0x10, 1, 2, 3},
		"v6 trunc":  frag6(1, 17, 2, 0, true, nil)[:48],
		"v6 no fh":  frag6(1, 17, 2, 0, true, payload(8))[:50],
		"bad ihl":   append([]byte{0x41}, make([]byte, 40)...),
		"short ihl": append([]byte{0x4f}, make([]byte, 30)...),
	} {
		res := r.Packet(p, 0, t0)
		assert.Equal(t, NotFragment, res.Status, name)
		assert.False(t, res.Drop, name)
	}
	assert.Zero(t, r.Counters().Fragments)
}

// TestPolicies checks each policy on the three classic overlaps and that every differing
// overlap is reported whatever the policy.
func TestPolicies(t *testing.T) {
	fill := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	type frag struct {
		off  int
		data []byte
	}
	cases := []struct {
		name   string
		frags  []frag // then a last fragment at 24 completes the datagram
		expect map[Policy]byte
	}{
		{"new starts after old", []frag{{0, fill('A', 16)}, {8, fill('B', 16)}},
			map[Policy]byte{First: 'A', Last: 'B', BSD: 'A', Linux: 'A', Windows: 'A', Solaris: 'A'}},
		{"new starts before old", []frag{{8, fill('C', 16)}, {0, fill('D', 16)}},
			map[Policy]byte{First: 'C', Last: 'D', BSD: 'D', Linux: 'D', Windows: 'C', Solaris: 'C'}},
		{"same start", []frag{{0, fill('E', 24)}, {0, fill('F', 24)}},
			map[Policy]byte{First: 'E', Last: 'F', BSD: 'E', Linux: 'F', Windows: 'E', Solaris: 'E'}},
		{"new covers old", []frag{{8, fill('G', 8)}, {0, fill('H', 24)}},
			map[Policy]byte{First: 'G', Last: 'H', BSD: 'H', Linux: 'H', Windows: 'H', Solaris: 'H'}},
	}
	for _, tc := range cases {
		for p, want := range tc.expect {
			t.Run(tc.name+"/"+p.String(), func(t *testing.T) {
				r := newR(t, &Config{Policy: p, MinFragment: -1})
				var res Result
				for _, f := range tc.frags {
					res = r.Packet(frag4(3, 99, f.off, true, f.data), 0, t0)
				}
				assert.Equal(t, Held, res.Status)
				assert.Equal(t, Overlap|OverlapDiffers, res.Anomalies)
				assert.True(t, res.Drop)
				res = r.Packet(frag4(3, 99, 24, false, fill('Z', 8)), 0, t0)
				require.Equal(t, Complete, res.Status)
				assert.Equal(t, OverlapDiffers, res.Anomalies, "sticky")
				assert.Equal(t, want, res.Datagram[20+8:][0], "byte at offset 8")
				assert.Equal(t, uint64(2), r.Counters().Anomaly(OverlapDiffers))
			})
		}
	}
}

func TestIdenticalOverlapPasses(t *testing.T) {
	r := newR(t, &Config{MinFragment: 8})
	data := payload(64)
	assert.Equal(t, Held, r.Packet(frag4(4, 17, 0, true, data[:32]), 0, t0).Status)
	res := r.Packet(frag4(4, 17, 16, true, data[16:48]), 0, t0)
	assert.Equal(t, Held, res.Status)
	assert.Equal(t, Overlap, res.Anomalies)
	assert.False(t, res.Drop)
	res = r.Packet(frag4(4, 17, 40, false, data[40:]), 0, t0)
	require.Equal(t, Complete, res.Status)
	assert.Equal(t, data, res.Datagram[20:])
	assert.False(t, res.Drop)
}

func TestTiny(t *testing.T) {
	r := newR(t, nil)
	res := r.Packet(frag4(8, 6, 0, true, payload(8)), 0, t0)
	assert.Equal(t, TinyFragment|TinyFirst, res.Anomalies)
	assert.True(t, res.Drop)
	res = r.Packet(frag4(8, 6, 8, false, payload(200)), 0, t0)
	assert.Equal(t, Complete, res.Status)
	assert.Equal(t, TinyFirst, res.Anomalies, "sticky")
	assert.True(t, res.Drop)

	r = newR(t, &Config{DropOn: OverlapDiffers})
	res = r.Packet(frag4(9, 17, 0, true, payload(16)), 0, t0)
	assert.Equal(t, TinyFragment, res.Anomalies)
	assert.False(t, res.Drop, "not in DropOn")
	r = newR(t, &Config{DropOn: NoDrop})
	res = r.Packet(frag4(9, 17, 0, true, payload(16)), 0, t0)
	assert.False(t, res.Drop)
}

func TestMalformed(t *testing.T) {
	cases := []struct {
		name  string
		frags [][]byte
	}{
		{"odd length", [][]byte{frag4(1, 17, 0, true, payload(300))}},
		{"two ends", [][]byte{frag4(1, 17, 1000, false, payload(8)), frag4(1, 17, 1600, false, payload(8))}},
		{"past end", [][]byte{frag4(1, 17, 1000, false, payload(8)), frag4(1, 17, 1600, true, payload(256))}},
		{"end before data", [][]byte{frag4(1, 17, 1600, true, payload(256)), frag4(1, 17, 1000, false, payload(8))}},
		{"total length", [][]byte{func() []byte { p := frag4(1, 17, 0, true, payload(256)); p[2] = 0xff; return p }()}},
		{"v6 length", [][]byte{func() []byte { p := frag6(1, 17, 0, 0, true, payload(256)); p[4] = 0xff; return p }()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newR(t, nil)
			var res Result
			for _, f := range tc.frags {
				res = r.Packet(f, 0, t0)
			}
			assert.Equal(t, Unusable, res.Status)
			assert.NotZero(t, res.Anomalies&Malformed)
			assert.True(t, res.Drop)
		})
	}
	// An abandoned datagram stays abandoned: its later fragments are dropped too.
	r := newR(t, nil)
	r.Packet(frag4(2, 17, 0, true, payload(300)), 0, t0)
	res := r.Packet(frag4(2, 17, 304, false, payload(300)), 0, t0)
	assert.Equal(t, Unusable, res.Status)
	assert.Equal(t, Malformed, res.Anomalies)
}

func TestTooLarge(t *testing.T) {
	r := newR(t, nil)
	res := r.Packet(frag4(1, 17, 65528, false, payload(100)), 0, t0)
	assert.Equal(t, Unusable, res.Status)
	assert.Equal(t, TooLarge, res.Anomalies)
	// Within 65,535 bytes of payload, but not with the IPv4 header in front.
	const total = 65520
	for off := 0; off < total; off += 1480 {
		n := min(1480, total-off)
		res = r.Packet(frag4(2, 17, off, off+n < total, payload(n)), 0, t0)
	}
	assert.Equal(t, Unusable, res.Status)
	assert.Equal(t, TooLarge, res.Anomalies)
	assert.Equal(t, uint64(0), r.Counters().Datagrams)
}

func TestLimits(t *testing.T) {
	t.Run("fragments", func(t *testing.T) {
		r := newR(t, &Config{MaxFragments: 3, MinFragment: -1})
		for i := 0; i < 3; i++ {
			assert.Equal(t, Held, r.Packet(frag4(1, 17, i*16, true, payload(16)), 0, t0).Status)
		}
		res := r.Packet(frag4(1, 17, 48, false, payload(16)), 0, t0)
		assert.Equal(t, Unusable, res.Status)
		assert.Equal(t, TooManyFragments, res.Anomalies)
		assert.Equal(t, Unusable, r.Packet(frag4(1, 17, 64, false, payload(16)), 0, t0).Status)
	})
	t.Run("datagrams", func(t *testing.T) {
		r := newR(t, &Config{MaxDatagrams: 2})
		assert.Equal(t, Held, r.Packet(frag4(1, 17, 0, true, payload(256)), 0, t0).Status)
		assert.Equal(t, Held, r.Packet(frag4(2, 17, 0, true, payload(256)), 0, t0).Status)
		res := r.Packet(frag4(3, 17, 0, true, payload(256)), 0, t0)
		assert.Equal(t, Unusable, res.Status)
		assert.Equal(t, TableFull, res.Anomalies)
		assert.True(t, res.Drop)
		// Completing one makes it reclaimable.
		assert.Equal(t, Complete, r.Packet(frag4(2, 17, 256, false, payload(8)), 0, t0).Status)
		assert.Equal(t, Held, r.Packet(frag4(3, 17, 0, true, payload(256)), 0, t0).Status)
		assert.Equal(t, uint64(1), r.Counters().Reclaimed)
		assert.Equal(t, 2, r.Len())
	})
	t.Run("memory", func(t *testing.T) {
		r := newR(t, &Config{MaxMemory: classSize[2] + classSize[0]})
		assert.Equal(t, Held, r.Packet(frag4(1, 17, 60000, true, payload(256)), 0, t0).Status)
		assert.Equal(t, Held, r.Packet(frag4(2, 17, 0, true, payload(256)), 0, t0).Status)
		res := r.Packet(frag4(3, 17, 0, true, payload(256)), 0, t0)
		assert.Equal(t, Unusable, res.Status)
		assert.Equal(t, NoMemory, res.Anomalies)
		assert.LessOrEqual(t, r.Memory(), classSize[2]+classSize[0])
	})
	t.Run("timeout", func(t *testing.T) {
		r := newR(t, &Config{Timeout: time.Second})
		assert.Equal(t, Held, r.Packet(frag4(1, 17, 0, true, payload(256)), 0, t0).Status)
		assert.Equal(t, 0, r.Expire(t0.Add(999*time.Millisecond)))
		assert.Equal(t, 1, r.Expire(t0.Add(time.Second)))
		assert.Equal(t, uint64(1), r.Counters().Expired)
		// The rest alone cannot complete.
		assert.Equal(t, Held, r.Packet(frag4(1, 17, 256, false, payload(8)), 0, t0.Add(2*time.Second)).Status)
		// Expiry also runs on every fragment.
		r.Packet(frag4(5, 17, 0, true, payload(256)), 0, t0.Add(4*time.Second))
		assert.Equal(t, 1, r.Len())
	})
}

// TestRepeatedCompletion: the completing fragment sent again (after the IPS dropped it) is judged
// with the datagram again; a different one is an overlap that differs.
func TestRepeatedCompletion(t *testing.T) {
	r := newR(t, nil)
	data := payload(600)
	r.Packet(frag4(1, 17, 0, true, data[:512]), 0, t0)
	last := frag4(1, 17, 512, false, data[512:])
	first := r.Packet(last, 0, t0)
	require.Equal(t, Complete, first.Status)
	want := bytes.Clone(first.Datagram)
	again := r.Packet(last, 0, t0)
	require.Equal(t, Complete, again.Status)
	assert.Equal(t, want, again.Datagram)
	assert.Equal(t, Overlap, again.Anomalies)
	assert.False(t, again.Drop)
	other := bytes.Clone(data[512:])
	other[3] ^= 1
	res := r.Packet(frag4(1, 17, 512, false, other), 0, t0)
	assert.Equal(t, Complete, res.Status)
	assert.Equal(t, Overlap|OverlapDiffers, res.Anomalies)
	assert.True(t, res.Drop)
	assert.Equal(t, uint64(1), r.Counters().Datagrams)
}

func TestKeys(t *testing.T) {
	r := newR(t, nil)
	eth := func(tags []uint16, ip []byte) []byte {
		f := make([]byte, 12)
		for _, tag := range tags {
			f = binary.BigEndian.AppendUint16(f, 0x8100)
			f = binary.BigEndian.AppendUint16(f, tag)
		}
		f = binary.BigEndian.AppendUint16(f, 0x0800)
		return append(f, ip...)
	}
	data := payload(520)
	a := frag4(1, 17, 0, true, data[:512])
	b := frag4(1, 17, 512, false, data[512:])
	assert.Equal(t, Held, r.Frame(eth([]uint16{10}, a), t0).Status)
	assert.Equal(t, Held, r.Frame(eth([]uint16{11, 10}, b), t0).Status, "other outer VLAN")
	assert.Equal(t, Held, r.Frame(eth(nil, b), t0).Status, "untagged")
	bp := frag4(1, 6, 512, false, data[512:])
	assert.Equal(t, Held, r.Frame(eth([]uint16{10}, bp), t0).Status, "other protocol")
	res := r.Frame(eth([]uint16{10, 11}, b), t0)
	require.Equal(t, Complete, res.Status, "same outer VLAN")
	assert.Equal(t, data, res.Datagram[20:])
	assert.Equal(t, NotFragment, r.Frame(eth([]uint16{1, 2, 3}, b), t0).Status, "three tags")
	assert.Equal(t, NotFragment, r.Frame([]byte{1, 2, 3}, t0).Status)
}

func TestHeaderTooLong(t *testing.T) {
	r := newR(t, nil)
	res := r.Packet(frag6(1, 17, MaxExtHeaders, 0, true, payload(256)), 0, t0)
	assert.Equal(t, Held, res.Status)
	res = r.Packet(frag6(1, 17, MaxExtHeaders+1, 0, true, payload(256)), 0, t0)
	assert.Equal(t, Unusable, res.Status)
	assert.Equal(t, HeaderTooLong, res.Anomalies)
	assert.True(t, res.Drop)
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{Policy: 99}, {MaxDatagrams: -1}, {MaxFragments: -1}, {MaxFragments: 9000},
		{MaxMemory: 1000}, {Timeout: -1}, {MaxDatagrams: 1 << 21},
	} {
		_, err := New(&c)
		assert.ErrorIs(t, err, ErrConfig, "%+v", c)
	}
	p, err := ParsePolicy("Windows")
	require.NoError(t, err)
	assert.Equal(t, Windows, p)
	_, err = ParsePolicy("vista")
	assert.ErrorIs(t, err, ErrConfig)
	assert.Equal(t, "overlap|overlap-differs", (Overlap | OverlapDiffers).String())
	assert.Equal(t, "none", Anomaly(0).String())
	assert.Equal(t, "no-drop", NoDrop.String())
	assert.Equal(t, "tiny-fragment|no-drop", (TinyFragment | NoDrop).String())
	assert.Equal(t, "complete", Complete.String())
}

func TestZeroAllocs(t *testing.T) {
	r := newR(t, nil)
	data := payload(3000)
	frags := [][]byte{
		frag4(7, 17, 0, true, data[:1480]),
		frag4(7, 17, 1480, true, data[1480:2960]),
		frag4(7, 17, 2960, false, data[2960:]),
	}
	v6 := [][]byte{frag6(7, 17, 1, 1232, false, data[1232:]), frag6(7, 17, 1, 0, true, data[:1232])}
	now := t0
	run := func() {
		// A new datagram each round: the old one expires first.
		now = now.Add(61 * time.Second)
		for _, f := range frags {
			r.Packet(f, 0, now)
		}
		for _, f := range v6 {
			r.Packet(f, 0, now)
		}
	}
	run()
	assert.Zero(t, testing.AllocsPerRun(100, run))
	assert.Equal(t, uint64(204), r.Counters().Datagrams, "102 rounds (AllocsPerRun warms up once)")
}
