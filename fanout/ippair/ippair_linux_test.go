//go:build linux

package ippair_test

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/fanout/ippair"
	"github.com/afbridge/afbridge/internal/netns"
	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func load(t testing.TB, opts *ippair.Options) *ippair.Program {
	t.Helper()
	testenv.RequirePriv(t)
	p, err := ippair.Load(opts)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// fmix and ref are the hash written again in plain Go, from the package documentation, to check
// the program against.
func fmix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

func pieces(b []byte) uint32 {
	var h uint32
	for len(b) > 0 {
		var w uint32
		if len(b) >= 4 {
			w, b = binary.BigEndian.Uint32(b), b[4:]
		} else {
			w, b = uint32(binary.BigEndian.Uint16(b)), b[2:]
		}
		h = fmix(w ^ h)
	}
	return h
}

// ref returns 0 for a frame too short for a field it reads, as the program does (an
// out-of-bounds LD_ABS/LD_IND ends it with 0).
func ref(f []byte, vid uint16, vlan bool) uint32 {
	off := 12
	if len(f) < off+2 {
		return 0
	}
	et := binary.BigEndian.Uint16(f[off:])
	for range 2 {
		if et != 0x8100 && et != 0x88a8 {
			break
		}
		off += 4
		if len(f) < off+2 {
			return 0
		}
		et = binary.BigEndian.Uint16(f[off:])
	}
	l3 := f[off+2:]
	var h uint32
	switch et {
	case 0x0800:
		if len(l3) < 20 {
			return 0
		}
		h = pieces(l3[12:16]) + pieces(l3[16:20])
	case 0x86dd:
		if len(l3) < 40 {
			return 0
		}
		h = pieces(l3[8:24]) + pieces(l3[24:40])
	default:
		h = pieces(f[0:6]) + pieces(f[6:12])
	}
	if vlan {
		h = fmix(uint32(vid&0xfff) ^ h)
	}
	return h
}

// swap returns a copy of f with MAC and IP source and destination exchanged.
func swap(f []byte) []byte {
	g := append([]byte(nil), f...)
	copy(g[0:6], f[6:12])
	copy(g[6:12], f[0:6])
	off := 12
	for range 2 {
		if off+2 > len(g) || binary.BigEndian.Uint16(g[off:]) != 0x8100 && binary.BigEndian.Uint16(g[off:]) != 0x88a8 {
			break
		}
		off += 4
	}
	if off+2 > len(g) {
		return g
	}
	l3 := off + 2
	switch binary.BigEndian.Uint16(g[off:]) {
	case 0x0800:
		if l3+20 > len(g) {
			return g
		}
		copy(g[l3+12:l3+16], f[l3+16:l3+20])
		copy(g[l3+16:l3+20], f[l3+12:l3+16])
	case 0x86dd:
		if l3+40 > len(g) {
			return g
		}
		copy(g[l3+8:l3+24], f[l3+24:l3+40])
		copy(g[l3+24:l3+40], f[l3+8:l3+24])
	}
	return g
}

// randomFrame builds an IPv4, IPv6 or other frame with random addresses behind 0-2 VLAN tags.
func randomFrame(r *rand.Rand) []byte {
	f := make([]byte, 14+8+40+16)
	for i := range f {
		f[i] = byte(r.Uint32())
	}
	off := 12
	for range r.IntN(3) {
		binary.BigEndian.PutUint16(f[off:], []uint16{0x8100, 0x88a8}[r.IntN(2)])
		off += 4
	}
	binary.BigEndian.PutUint16(f[off:], []uint16{0x0800, 0x86dd, 0x0806, 0x88b5}[r.IntN(4)])
	return f
}

func TestHashIsSymmetric(t *testing.T) {
	for _, opts := range []*ippair.Options{nil, {VLAN: true}} {
		p := load(t, opts)
		r := rand.New(rand.NewPCG(7, 11))
		values := map[uint32]bool{}
		for i := range 2000 {
			f := randomFrame(r)
			h, err := p.Hash(f)
			require.NoError(t, err)
			hs, err := p.Hash(swap(f))
			require.NoError(t, err)
			require.Equal(t, h, hs, "frame %d: swapped src/dst hash differently: % x", i, f)
			require.Equal(t, ref(f, 0, opts != nil && opts.VLAN), h, "frame %d: program and reference disagree: % x", i, f)
			values[h] = true
		}
		assert.Greater(t, len(values), 1900, "distinct hashes of 2000 random frames")
		t.Logf("options %+v: %d instructions", opts, len(ippair.Instructions(opts)))
	}
}

func TestHashIgnoresPortsAndFragments(t *testing.T) {
	p := load(t, nil)
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for _, pair := range [][2]string{{"198.18.0.1", "198.18.0.2"}, {"2001:2::1", "2001:2::2"}} {
		a, b := netip.MustParseAddr(pair[0]), netip.MustParseAddr(pair[1])
		want, err := p.Hash(pktgen.Datagram(mac, mac, netip.AddrPortFrom(a, 1), netip.AddrPortFrom(b, 2), 1, 10))
		require.NoError(t, err)
		for i := range 20 {
			d := pktgen.Datagram(mac, mac, netip.AddrPortFrom(a, uint16(1000+i)), netip.AddrPortFrom(b, 53), uint32(i), 3000)
			for j, f := range pktgen.Fragments(d, 1280, uint32(i), i%2 == 0) {
				h, err := p.Hash(f)
				require.NoError(t, err)
				require.Equal(t, want, h, "%s datagram %d fragment %d", a, i, j)
			}
		}
	}
}

func TestHashShortFrame(t *testing.T) {
	p := load(t, nil)
	// A tagged IPv4 EtherType and no room for addresses (the test run refuses an untagged IPv4
	// frame shorter than an IP header).
	f := make([]byte, 24)
	binary.BigEndian.PutUint16(f[12:], 0x8100)
	binary.BigEndian.PutUint16(f[16:], 0x0800)
	h, err := p.Hash(f)
	require.NoError(t, err)
	assert.Zero(t, h, "a frame too short for its addresses goes to member 0")
}

func TestCloseUnloads(t *testing.T) {
	p := load(t, nil)
	id := p.ID()
	require.NotZero(t, id)
	q, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	require.NoError(t, err, "the program is loaded")
	q.Close()
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close is idempotent")
	assert.Equal(t, -1, p.FD())
	_, err = p.Hash(make([]byte, 64))
	assert.ErrorIs(t, err, ippair.ErrClosed)
	_, err = fanout.Join(os.Stdin, p.Group(0, fanout.FlagUniqueID))
	assert.ErrorIs(t, err, unix.EINVAL, "a closed program's group is refused before any system call")
	assert.Eventually(t, func() bool {
		q, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err == nil {
			q.Close()
		}
		return errors.Is(err, os.ErrNotExist)
	}, 5*time.Second, 10*time.Millisecond, "program %d is gone after Close", id)
}

// member is a packet socket in a fanout group, read without rings.
type member struct {
	fd int
	f  *os.File
}

func openMember(t *testing.T, ns *netns.NS, ifindex int, g fanout.Group) *member {
	t.Helper()
	var m *member
	require.NoError(t, ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0x0300, Ifindex: ifindex}); err != nil { // htons(ETH_P_ALL)
			unix.Close(fd)
			return err
		}
		m = &member{fd: fd, f: os.NewFile(uintptr(fd), "packet")}
		_, err = fanout.Join(m.f, g)
		return err
	}))
	t.Cleanup(func() { m.f.Close() })
	return m
}

// frames returns the incoming frames m got until none arrives for 300 ms after the first.
func (m *member) frames(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 1<<16)
	fds := []unix.PollFd{{Fd: int32(m.fd), Events: unix.POLLIN}}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		n, err := unix.Poll(fds, 300)
		if err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		k, from, err := unix.Recvfrom(m.fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		out = append(out, append([]byte(nil), buf[:k]...))
	}
	return out
}

// pairKey names a frame's unordered IP pair (or "other").
func pairKey(f []byte) string {
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		a, b := netip.AddrFrom4([4]byte(f[26:30])), netip.AddrFrom4([4]byte(f[30:34]))
		if b.Less(a) {
			a, b = b, a
		}
		return a.String() + "|" + b.String()
	case 0x86dd:
		a, b := netip.AddrFrom16([16]byte(f[22:38])), netip.AddrFrom16([16]byte(f[38:54]))
		if b.Less(a) {
			a, b = b, a
		}
		return a.String() + "|" + b.String()
	}
	return "other"
}

// TestFanoutKeepsPairsTogether joins three members to a group balanced by the program and sends
// UDP datagrams both ways between many host pairs, IPv4 and IPv6, whole and as fragment trains
// (with and without DF, out of order), some behind a VLAN tag: every frame of a pair reaches one member, and the pairs
// spread over all three.
func TestFanoutKeepsPairsTogether(t *testing.T) {
	for _, opts := range []*ippair.Options{nil, {VLAN: true}} {
		p := load(t, opts)
		pair := testenv.NewPair(t, &testenv.VethConfig{MTU: 9000})
		ifi := pair.Local.Interface(t)
		rem := pair.Remote.Interface(t)
		const n = 3
		ms := make([]*member, n)
		g := p.Group(0, fanout.FlagUniqueID)
		for i := range ms {
			ms[i] = openMember(t, pair.Local.NS, ifi.Index, g)
			if i == 0 {
				var got fanout.Group
				require.NoError(t, pair.Local.NS.Do(func() (err error) { got, _, err = fanout.GroupOf(ms[0].f); return }))
				g.ID, g.Flags = got.ID, 0
			}
		}
		var tx *pktgen.Conn
		require.NoError(t, pair.Remote.NS.Do(func() (err error) { tx, err = pktgen.Open(rem.Index); return }))
		r := rand.New(rand.NewPCG(3, 5))
		mac := [2]net.HardwareAddr{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}}
		sent := 0
		for h := range 24 {
			var ends [2]netip.Addr
			if h%2 == 0 {
				ends = [2]netip.Addr{netip.AddrFrom4([4]byte{198, 18, 1, byte(h)}), netip.AddrFrom4([4]byte{198, 19, 2, byte(h * 7)})}
			} else {
				ends = [2]netip.Addr{netip.MustParseAddr("2001:2::1:" + itoa(h)), netip.MustParseAddr("2001:2:0:1::" + itoa(h*3))}
			}
			for dir := range 2 {
				src, dst := netip.AddrPortFrom(ends[dir], uint16(1000+h)), netip.AddrPortFrom(ends[1-dir], 53)
				for k := range 3 {
					seq := uint32(h*100 + dir*10 + k)
					d := pktgen.Datagram(mac[1-dir], mac[dir], src, dst, seq, 40+k*2000)
					frames := [][]byte{d}
					if k > 0 {
						frames = pktgen.Fragments(d, 1280, seq, k == 2)
						r.Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
					}
					for _, f := range frames {
						if h%3 == 0 {
							f = pktgen.Tag(f, 0x8100, uint16(h)) // the outer tag reaches the program as metadata
						}
						require.NoError(t, tx.Send(f))
						sent++
					}
				}
			}
		}
		tx.Close()
		where := map[string]map[int]int{}
		got := 0
		for i, m := range ms {
			for _, f := range m.frames(t) {
				k := pairKey(f)
				if k == "other" {
					continue
				}
				if where[k] == nil {
					where[k] = map[int]int{}
				}
				where[k][i]++
				got++
			}
		}
		assert.Equal(t, sent, got, "every frame reached a member")
		used := map[int]bool{}
		for k, w := range where {
			assert.Len(t, w, 1, "pair %s spread over members %v", k, w)
			for i := range w {
				used[i] = true
			}
		}
		assert.Len(t, where, 24)
		assert.Len(t, used, n, "24 pairs use all %d members", n)
	}
}

func itoa(i int) string { return strconv.FormatInt(int64(i), 16) }

// BenchmarkProgram measures the program's own cost per frame in the kernel (BPF_PROG_TEST_RUN
// repeats it; the test run's skb setup is outside the measured loop).
func BenchmarkProgram(b *testing.B) {
	testenv.RequirePriv(b)
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for _, bc := range []struct {
		name  string
		frame []byte
	}{
		{"ipv4", pktgen.Datagram(mac, mac, netip.MustParseAddrPort("198.18.0.1:1"), netip.MustParseAddrPort("198.18.0.2:2"), 1, 18)},
		{"ipv6", pktgen.Datagram(mac, mac, netip.MustParseAddrPort("[2001:2::1]:1"), netip.MustParseAddrPort("[2001:2::2]:2"), 1, 18)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "MIT", Instructions: ippair.Instructions(nil)})
			require.NoError(b, err)
			defer p.Close()
			_, per, err := p.Benchmark(bc.frame, b.N, b.ResetTimer)
			require.NoError(b, err)
			b.ReportMetric(float64(per.Nanoseconds()), "ns/frame")
		})
	}
}

// FuzzHash runs the program on arbitrary frames: it never fails to return, agrees with the Go
// reference, and hashes the frame with source and destination swapped the same.
func FuzzHash(f *testing.F) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	f.Add(pktgen.Datagram(mac, mac, netip.MustParseAddrPort("198.18.0.1:1"), netip.MustParseAddrPort("198.18.0.2:2"), 1, 10))
	f.Add(pktgen.Datagram(mac, mac, netip.MustParseAddrPort("[2001:2::1]:1"), netip.MustParseAddrPort("[2001:2::2]:2"), 1, 10))
	f.Add(pktgen.Tag(pktgen.Tag(make([]byte, 64), 0x88a8, 1), 0x8100, 2))
	f.Add(make([]byte, 14))
	p := load(f, nil)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 9000 {
			return
		}
		h, err := p.Hash(frame)
		if err != nil {
			// The test run refuses an IPv4 or IPv6 frame without a whole header; the kernel's
			// receive path would too, long before a fanout group.
			require.ErrorIs(t, err, unix.EINVAL)
			return
		}
		require.Equal(t, ref(frame, 0, false), h, "% x", frame)
		hs, err := p.Hash(swap(frame))
		require.NoError(t, err)
		require.Equal(t, h, hs, "swapped")
	})
}
