package stream

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seg builds a TCP segment (header without checksum, options, payload).
func seg(seq, ack uint32, flags uint8, win uint16, opts []byte, payload []byte) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, 1)
	}
	b := make([]byte, 20+len(opts)+len(payload))
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 8080)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = byte((20 + len(opts)) / 4 << 4)
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], win)
	copy(b[20:], opts)
	copy(b[20+len(opts):], payload)
	return b
}

// retained returns a copy of the bytes the client's direction retains, once the bytes waiting
// for retention are in.
func (c *conn) retained() []byte {
	c.r.flush()
	return c.s.h[c.cd].retained()
}

// retained returns a copy of the bytes h retains, oldest first.
func (h *half) retained() []byte {
	b := make([]byte, h.nret)
	if h.nret > 0 {
		ringGet(h.buf, h.next-uint32(h.nret), b)
	}
	return b
}

func mssOpt(mss uint16) []byte { return []byte{2, 4, byte(mss >> 8), byte(mss)} }
func wsOpt(s uint8) []byte     { return []byte{1, 3, 3, s} }

// conn drives one connection through a Reassembler: client is direction 0 unless flipped.
type conn struct {
	t     testing.TB
	r     *Reassembler
	s     Stream
	cd    Dir    // client's direction
	cisn  uint32 // client ISN
	sisn  uint32
	cnext uint32
	snext uint32
	cwin  uint16
	swin  uint16
	copts []byte
	sopts []byte
}

func newConn(t testing.TB, cfg *Config, cisn, sisn uint32) *conn {
	t.Helper()
	r, err := New(cfg)
	require.NoError(t, err)
	return &conn{t: t, r: r, cisn: cisn, sisn: sisn, cwin: 65535, swin: 65535}
}

func (c *conn) handshake() {
	c.t.Helper()
	res := c.r.Segment(&c.s, c.cd, seg(c.cisn, 0, fSYN, c.cwin, c.copts, nil), 0)
	assert.Equal(c.t, StateSynSent, res.State)
	assert.True(c.t, res.ToServer)
	res = c.r.Segment(&c.s, 1-c.cd, seg(c.sisn, c.cisn+1, fSYN|fACK, c.swin, c.sopts, nil), 0)
	assert.Equal(c.t, StateSynReceived, res.State)
	assert.False(c.t, res.ToServer)
	res = c.r.Segment(&c.s, c.cd, seg(c.cisn+1, c.sisn+1, fACK, c.cwin, nil, nil), 0)
	assert.Equal(c.t, StateEstablished, res.State)
	c.cnext, c.snext = c.cisn+1, c.sisn+1
}

// send sends client data at byte offset off of the client's stream.
func (c *conn) send(off int, data []byte) Result {
	return c.r.Segment(&c.s, c.cd, seg(c.cisn+1+uint32(off), c.snext, fACK|0x08, c.cwin, nil, data), 0)
}

// ackFromServer acknowledges the client's stream up to offset off.
func (c *conn) ackFromServer(off int) Result {
	return c.r.Segment(&c.s, 1-c.cd, seg(c.snext, c.cisn+1+uint32(off), fACK, c.swin, nil, nil), 0)
}

func TestSplitPattern(t *testing.T) {
	pattern := []byte("forbidden")
	cases := []struct {
		name  string
		parts []string
	}{
		{"one", []string{"GET /forbidden HTTP/1.1"}},
		{"two", []string{"GET /forb", "idden HTTP/1.1"}},
		{"three", []string{"GET /fo", "rbid", "den HTTP/1.1"}},
		{"byte by byte", []string{"GET /", "f", "o", "r", "b", "i", "d", "d", "e", "n"}},
	}
	for _, tc := range cases {
		for _, isn := range []uint32{1000, 0xfffffff0} { // and across the sequence wrap
			c := newConn(t, &Config{Tail: len(pattern) - 1}, isn, 77)
			c.handshake()
			off := 0
			found := -1
			for i, p := range tc.parts {
				res := c.send(off, []byte(p))
				off += len(p)
				assert.Zero(t, res.Anomalies)
				assert.Equal(t, len(p), res.New)
				assert.LessOrEqual(t, len(res.View)-res.New, len(pattern)-1)
				if bytes.Contains(res.View, pattern) && found < 0 {
					found = i
				}
			}
			assert.Equal(t, len(tc.parts)-1, found, "%s: found in the completing segment", tc.name)
		}
	}
}

func TestOutOfOrder(t *testing.T) {
	c := newConn(t, nil, 5, 9)
	c.handshake()
	msg := []byte("GET /forbidden HTTP/1.1\r\n")
	res := c.send(9, msg[9:14])
	assert.Nil(t, res.View)
	assert.False(t, res.Drop)
	res = c.send(18, msg[18:])
	assert.Nil(t, res.View)
	assert.Equal(t, uint64(2), c.r.Counters().Held)
	assert.Equal(t, 1, c.r.Counters().HoldsInUse)
	res = c.send(0, msg[:9])
	assert.Equal(t, msg[:14], res.View, "the gap filler joins the held bytes after it")
	assert.Equal(t, 14, res.New)
	res = c.send(14, msg[14:18])
	assert.Equal(t, msg, res.View)
	assert.Equal(t, len(msg)-14, res.New)
	assert.Zero(t, c.r.Counters().HoldsInUse, "the hold went back when the gap filled")
	n, ok := c.s.Next(c.cd)
	assert.True(t, ok)
	assert.Equal(t, uint32(5+1+len(msg)), n)
}

func TestRetransmissions(t *testing.T) {
	c := newConn(t, &Config{Tail: 7}, 100, 200)
	c.handshake()
	msg := []byte("hello, world, and more")
	require.Equal(t, len(msg), c.send(0, msg).New)

	res := c.send(0, msg)
	assert.Equal(t, Retransmission, res.Anomalies)
	assert.False(t, res.Drop)
	assert.Nil(t, res.View)

	res = c.send(7, msg[7:12])
	assert.Equal(t, Retransmission, res.Anomalies, "a part of it")

	evil := bytes.Clone(msg)
	evil[8] = 'W'
	res = c.send(0, evil)
	assert.Equal(t, OverlapDiffers, res.Anomalies)
	assert.True(t, res.Drop)
	assert.Equal(t, evil, res.Alt, "how the receiver could read it")
	res = c.send(8, []byte("X"))
	assert.Equal(t, []byte("ello, wXrld, an"), res.Alt, "in its context, Tail bytes each side")

	// Overlapping old and new: the old part is checked, the new part inspected.
	res = c.send(len(msg)-4, []byte("moreXYZ"))
	assert.Equal(t, Retransmission, res.Anomalies)
	assert.Equal(t, 3, res.New)
	assert.True(t, bytes.HasSuffix(res.View, []byte("moreXYZ")))
	res = c.send(len(msg)-4, []byte("MOREabc"))
	assert.Equal(t, OverlapDiffers, res.Anomalies)
}

func TestOverlapHeld(t *testing.T) {
	c := newConn(t, nil, 100, 200)
	c.handshake()
	assert.Zero(t, c.send(10, []byte("0123456789")).Anomalies)
	res := c.send(15, []byte("56789abc"))
	assert.Zero(t, res.Anomalies, "identical overlap with held bytes")
	res = c.send(12, []byte("2XYZ"))
	assert.Equal(t, OverlapDiffers, res.Anomalies)
	assert.True(t, res.Drop)
	// The gap filler overlapping held bytes with other bytes.
	res = c.send(0, []byte("..........01Q"))
	assert.Equal(t, OverlapDiffers, res.Anomalies)
	// The held bytes are the ones kept (the receiver has them; the other segments are dropped).
	assert.Equal(t, []byte("..........0123456789abc"), res.View)
}

func TestUnverifiable(t *testing.T) {
	c := newConn(t, &Config{Tail: 4, Retain: 8}, 100, 200)
	c.handshake()
	msg := []byte("0123456789abcdefghij")
	c.send(0, msg)
	res := c.send(0, msg[:4])
	assert.Equal(t, Unverifiable, res.Anomalies)
	assert.True(t, res.Drop)
	res = c.send(15, msg[15:])
	assert.Equal(t, Retransmission, res.Anomalies, "still retained")
	c.ackFromServer(10)
	res = c.send(0, msg[:10])
	assert.Equal(t, Retransmission, res.Anomalies, "acknowledged: the receiver ignores it")
	res = c.send(0, msg[:14])
	assert.Equal(t, Unverifiable, res.Anomalies, "10..12 neither retained nor acknowledged")
}

func TestHoldLimits(t *testing.T) {
	t.Run("beyond hold", func(t *testing.T) {
		c := newConn(t, &Config{Hold: 1024}, 1, 2)
		c.handshake()
		assert.Zero(t, c.send(1000, make([]byte, 24)).Anomalies)
		res := c.send(1000, make([]byte, 25))
		assert.Equal(t, OutOfOrder, res.Anomalies)
		assert.True(t, res.Drop)
	})
	t.Run("buffers", func(t *testing.T) {
		r, err := New(&Config{HoldBuffers: 1})
		require.NoError(t, err)
		var a, b Stream
		for _, s := range []*Stream{&a, &b} {
			r.Segment(s, 0, seg(10, 0, fSYN, 100, nil, nil), 0)
		}
		assert.Zero(t, r.Segment(&a, 0, seg(20, 0, fACK, 100, nil, []byte("x")), 0).Anomalies)
		assert.Equal(t, OutOfOrder, r.Segment(&b, 0, seg(20, 0, fACK, 100, nil, []byte("x")), 0).Anomalies)
		r.Release(&a)
		r.Release(&a)
		assert.Zero(t, r.Counters().HoldsInUse)
		assert.Zero(t, r.Segment(&b, 0, seg(20, 0, fACK, 100, nil, []byte("x")), 0).Anomalies)
	})
	t.Run("ranges", func(t *testing.T) {
		c := newConn(t, nil, 1, 2)
		c.handshake()
		for i := 0; i < maxRanges; i++ {
			assert.Zero(t, c.send(10+i*10, []byte("x")).Anomalies)
		}
		assert.Equal(t, OutOfOrder, c.send(500, []byte("x")).Anomalies)
		assert.Zero(t, c.send(11, []byte("y")).Anomalies, "joins a range")
		res := c.send(0, []byte("0123456789"))
		assert.Equal(t, []byte("0123456789xy"), res.View)
	})
}

func TestStates(t *testing.T) {
	c := newConn(t, nil, 1, 2)
	c.cd = 1
	c.handshake()
	assert.Equal(t, Dir(1), c.s.Client())
	assert.True(t, c.s.Established())
	res := c.r.Segment(&c.s, 0, seg(c.snext, c.cnext, fACK|fFIN, 10, nil, []byte("bye")), 0)
	assert.Equal(t, StateClosing, res.State)
	assert.False(t, res.ToServer)
	res = c.r.Segment(&c.s, 0, seg(c.snext+3, c.cnext, fACK, 10, nil, []byte("late")), 0)
	assert.Equal(t, AfterFin, res.Anomalies)
	assert.Equal(t, 4, res.New, "still inspected")
	res = c.r.Segment(&c.s, 1, seg(c.cnext, c.snext+4, fACK|fFIN, 10, nil, nil), 0)
	assert.Equal(t, StateClosed, res.State)
	assert.True(t, c.s.Established())

	c = newConn(t, nil, 1, 2)
	c.handshake()
	res = c.r.Segment(&c.s, 1, seg(c.snext, c.cnext, fRST, 0, nil, nil), 0)
	assert.Equal(t, StateClosed, res.State)
	res = c.send(0, []byte("after the reset"))
	assert.Equal(t, 15, res.New, "a RST the receiver may have ignored does not stop inspection")

	// SYN-ACK first: its SYN was missed, the other side is the client.
	r, err := New(nil)
	require.NoError(t, err)
	var s Stream
	res = r.Segment(&s, 0, seg(50, 11, fSYN|fACK, 100, nil, nil), 0)
	assert.Equal(t, Dir(1), s.Client())
	assert.Equal(t, StateSynReceived, res.State)
	assert.Equal(t, "syn-received", res.State.String())
}

func TestMidstream(t *testing.T) {
	r, err := New(nil)
	require.NoError(t, err)
	var s Stream
	res := r.Segment(&s, 1, seg(1000, 5, fACK, 100, nil, []byte("abc")), 0)
	assert.Equal(t, Midstream, res.Anomalies)
	assert.False(t, res.Drop)
	assert.True(t, res.ToServer)
	assert.Equal(t, 3, res.New)
	assert.False(t, s.Established())
	res = r.Segment(&s, 0, seg(5, 1003, fACK, 100, nil, []byte("de")), 0)
	assert.Equal(t, Midstream, res.Anomalies)
	assert.True(t, s.Established())
	assert.Equal(t, StateEstablished, res.State)
	assert.Zero(t, r.Segment(&s, 1, seg(1003, 7, fACK, 100, nil, []byte("x")), 0).Anomalies)
}

func TestGSOAndWindow(t *testing.T) {
	c := newConn(t, nil, 1, 2)
	c.copts = append(mssOpt(1460), wsOpt(7)...)
	c.sopts = append(mssOpt(1000), wsOpt(2)...)
	c.swin = 1000 // scaled by 4: 4,000 bytes
	c.handshake()
	c.ackFromServer(0) // the window in a SYN is never scaled; this one is
	res := c.send(0, make([]byte, 3500))
	assert.Equal(t, 4, res.Segments, "the server's MSS")
	assert.Zero(t, res.Anomalies)
	res = c.r.Segment(&c.s, c.cd, seg(c.cisn+1+3500, c.snext, fACK, 10, nil, make([]byte, 3000)), 1448)
	assert.Equal(t, 3, res.Segments, "the GSO size given")
	assert.Equal(t, OutOfWindow, res.Anomalies, "6,500 bytes past a 4,000-byte window")
	assert.False(t, res.Drop)
	assert.Equal(t, 3000, res.New)
	c.ackFromServer(6500)
	assert.Zero(t, c.send(6500, make([]byte, 100)).Anomalies)
	cs := c.r.Counters()
	assert.Equal(t, uint64(3+1+4+3+1+1), cs.WireSegments)
	assert.Equal(t, uint64(6600), cs.Bytes)
}

func TestDropSignals(t *testing.T) {
	c := newConn(t, nil, 1, 2)
	c.handshake()
	res := c.r.Segment(&c.s, c.cd, seg(c.cnext, c.snext, fACK|fURG, 10, nil, []byte("x")), 0)
	assert.Equal(t, Urgent, res.Anomalies)
	assert.True(t, res.Drop)
	for _, b := range [][]byte{nil, make([]byte, 19), {0: 1, 12: 0x40, 19: 0}, {12: 0xf0, 19: 0}} {
		res = c.r.Segment(&c.s, c.cd, b, 0)
		assert.Equal(t, Malformed, res.Anomalies)
		assert.True(t, res.Drop)
	}
	c.s.Block()
	assert.True(t, c.s.Blocked())
	for _, d := range []Dir{0, 1} {
		res = c.r.Segment(&c.s, d, seg(c.cnext, c.snext, fACK, 10, nil, nil), 0)
		assert.Equal(t, Blocked, res.Anomalies)
		assert.True(t, res.Drop)
	}

	c = newConn(t, &Config{DropOn: NoDrop}, 1, 2)
	c.handshake()
	res = c.r.Segment(&c.s, c.cd, seg(c.cnext, c.snext, fACK|fURG, 10, nil, []byte("x")), 0)
	assert.False(t, res.Drop)
	assert.Equal(t, uint64(1), c.r.Counters().Anomaly(Urgent))
}

func TestDepth(t *testing.T) {
	c := newConn(t, &Config{Depth: 10}, 1, 2)
	c.handshake()
	assert.Equal(t, 8, c.send(0, []byte("01234567")).New)
	assert.Equal(t, 8, c.send(8, []byte("89abcdef")).New)
	res := c.send(16, []byte("forbidden"))
	assert.Equal(t, DepthReached, res.Anomalies)
	assert.Nil(t, res.View)
}

func TestRelease(t *testing.T) {
	c := newConn(t, nil, 1, 2)
	c.handshake()
	c.send(0, []byte("abc"))
	c.send(10, []byte("held"))
	assert.Equal(t, minBuf, c.r.Counters().Memory)
	assert.Equal(t, 1, c.r.Counters().HoldsInUse)
	c.r.Release(&c.s)
	c.r.Release(&c.s)
	assert.Zero(t, c.r.Counters().Memory)
	assert.Zero(t, c.r.Counters().HoldsInUse)
	assert.Equal(t, StateNew, c.s.State())
	c.handshake()
	assert.Equal(t, []byte("xyz"), c.send(0, []byte("xyz")).View, "nothing of the old connection")
}

// TestRetainFollowsAcks: a direction keeps what its receiver has not acknowledged, so a
// retransmission far back is still compared, and acknowledged bytes are let go.
func TestRetainFollowsAcks(t *testing.T) {
	c := newConn(t, &Config{Tail: 4}, 1, 2)
	c.handshake()
	data := bytes.Repeat([]byte("0123456789"), 3000)
	for off := 0; off < len(data); off += 1000 {
		c.send(off, data[off:off+1000])
	}
	assert.Len(t, c.retained(), len(data), "nothing acknowledged: all kept")
	assert.Equal(t, Retransmission, c.send(0, data[:1000]).Anomalies)
	evil := bytes.Clone(data[:1000])
	evil[500] = 'X'
	assert.Equal(t, OverlapDiffers, c.send(0, evil).Anomalies)
	c.ackFromServer(len(data) - 100)
	c.send(len(data), []byte("more"))
	assert.Len(t, c.retained(), 104, "only the unacknowledged bytes")
	assert.Equal(t, Retransmission, c.send(0, evil).Anomalies, "acknowledged: the receiver ignores it")
	assert.Equal(t, 32768, c.r.Counters().Memory, "a ring of 30,000 bytes, rounded up to a power of two")
}

func TestMaxMemory(t *testing.T) {
	c := newConn(t, &Config{Tail: 4, MaxMemory: 8192}, 1, 2)
	c.handshake()
	data := bytes.Repeat([]byte("0123456789"), 1000)
	for off := 0; off < len(data); off += 1000 {
		c.send(off, data[off:off+1000])
	}
	assert.Equal(t, 8192, c.r.Counters().Memory)
	assert.NotZero(t, c.r.Counters().MemoryFull)
	assert.Equal(t, Unverifiable, c.send(0, data[:1000]).Anomalies, "not kept")
	assert.Equal(t, Retransmission, c.send(9000, data[9000:]).Anomalies, "kept")
	// Another stream still gets a buffer for its tail.
	var s Stream
	c.r.Segment(&s, 0, seg(1, 0, fSYN, 100, nil, nil), 0)
	c.r.Segment(&s, 0, seg(2, 0, fACK, 100, nil, []byte("abcdef")), 0)
	res := c.r.Segment(&s, 0, seg(8, 0, fACK, 100, nil, []byte("gh")), 0)
	assert.Equal(t, []byte("cdefgh"), res.View)
}

func TestConfig(t *testing.T) {
	for _, cfg := range []Config{{Tail: -1}, {Retain: -2}, {Hold: -1}, {HoldBuffers: -1}, {Depth: -1},
		{Tail: 100, Retain: 50}, {Tail: 1 << 17}} {
		_, err := New(&cfg)
		assert.ErrorIs(t, err, ErrConfig, "%+v", cfg)
	}
	r, err := New(&Config{Hold: 1000})
	require.NoError(t, err)
	assert.Equal(t, 1024, r.cfg.Hold)
	assert.Equal(t, "overlap-differs|urgent", (OverlapDiffers | Urgent).String())
	assert.Equal(t, "none", Anomaly(0).String())
}

func TestZeroAllocs(t *testing.T) {
	c := newConn(t, nil, 1, 2)
	c.handshake()
	data := bytes.Repeat([]byte("0123456789abcdef"), 100)
	d := seg(0, c.snext, fACK, 100, nil, data)
	ack := seg(c.snext, 0, fACK, 100, nil, nil)
	at := func(b []byte, off int) []byte {
		binary.BigEndian.PutUint32(b[4:], c.cisn+1+uint32(off))
		return b
	}
	off := 0
	run := func() {
		// In order, then a pair out of order (held, then joined), then a retransmission.
		c.r.Segment(&c.s, c.cd, at(d, off), 0)
		c.r.Segment(&c.s, c.cd, at(d, off+2*len(data)), 0)
		c.r.Segment(&c.s, c.cd, at(d, off+len(data)), 0)
		c.r.Segment(&c.s, c.cd, at(d, off+len(data)), 0)
		binary.BigEndian.PutUint32(ack[8:], c.cisn+1+uint32(off+3*len(data)))
		c.r.Segment(&c.s, 1-c.cd, ack, 0)
		off += 3 * len(data)
	}
	run()
	assert.Zero(t, testing.AllocsPerRun(200, run))
	assert.Zero(t, c.r.Counters().Anomaly(OverlapDiffers))
	assert.Equal(t, uint64(202*3*len(data)), c.r.Counters().Bytes)
	assert.Equal(t, uint64(202), c.r.Counters().Anomaly(Retransmission))
}

// TestRetainWindow: however the bytes come, the retained window is the last Retain bytes.
func TestRetainWindow(t *testing.T) {
	r, err := New(&Config{Tail: 3, Retain: 10})
	require.NoError(t, err)
	var h, o half
	var all []byte
	for i, n := range []int{1, 4, 9, 10, 11, 3, 3, 3, 3, 25, 2, 7, 1, 1, 9} {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		h.next += uint32(n)
		r.retain(&h, &o, b)
		all = append(all, b...)
		assert.Equal(t, all[max(0, len(all)-10):], h.retained(), "after %d appends", i+1)
	}
	// Acknowledged bytes go, down to the tail.
	o.ackSeen, o.ack = true, h.next-1
	h.next++
	r.retain(&h, &o, []byte{1})
	assert.Equal(t, []byte{all[len(all)-2], all[len(all)-1], 1}, h.retained())
}

// TestFrame: Frame puts a header in front of the last view in place (the view's bytes are the
// same memory), gives the header alone when the segment had no view, and refuses a header
// longer than the headroom.
func TestFrame(t *testing.T) {
	c := newConn(t, &Config{Tail: 3, Headroom: 8}, 1, 2)
	c.handshake()
	c.send(0, []byte("abcdef"))
	res := c.send(6, []byte("gh"))
	require.Equal(t, []byte("defgh"), res.View)
	f := c.r.Frame([]byte("HEAD"))
	assert.Equal(t, []byte("HEADdefgh"), f)
	assert.Same(t, &res.View[0], &f[4], "the view is not copied")
	assert.Equal(t, []byte("12345678defgh"), c.r.Frame([]byte("12345678")))
	assert.Nil(t, c.r.Frame([]byte("123456789")), "longer than the headroom")
	c.ackFromServer(8)
	assert.Equal(t, []byte("HEAD"), c.r.Frame([]byte("HEAD")), "no view: the header alone")
	assert.Equal(t, Retransmission, c.send(6, []byte("gh")).Anomalies)
	assert.Equal(t, []byte("H"), c.r.Frame([]byte("H")), "a retransmission has no view")
}

// TestRetainRing: the retain ring keeps exactly the bytes the window says, in order, while it
// wraps, grows with wrapped contents and crosses sequence number 2^32; a retransmission across
// the ring's end is compared byte for byte, and a differing one is named with the right Alt.
func TestRetainRing(t *testing.T) {
	const tail, retain = 5, 10000
	r, err := New(&Config{Tail: tail, Retain: retain})
	require.NoError(t, err)
	var h, o half
	h.next = 0xffffe000
	start := h.next
	var all []byte
	rnd := uint32(1)
	next := func(n uint32) int { rnd = rnd*1664525 + 1013904223; return int(rnd>>8) % int(n) }
	for i := range 300 {
		b := make([]byte, 1+next(3000))
		for j := range b {
			b[j] = byte(next(256))
		}
		if i%7 == 3 {
			// The receiver acknowledges all but a random part.
			o.ackSeen, o.ack = true, h.next-uint32(next(uint32(min(len(all), 12000))+1))
		}
		un := h.nret + len(b)
		if o.ackSeen && int(h.next+uint32(len(b))-o.ack) < un {
			un = int(h.next + uint32(len(b)) - o.ack)
		}
		want := min(max(un, tail), retain, h.nret+len(b))
		h.next += uint32(len(b))
		r.retain(&h, &o, b)
		all = append(all, b...)
		require.Equal(t, want, h.nret, "append %d", i)
		require.Equal(t, all[len(all)-want:], h.retained(), "append %d", i)
		require.LessOrEqual(t, len(h.buf), 16384)
	}
	require.Greater(t, uint32(len(all)), -start, "sequence numbers wrapped")
	// Compare a range that straddles the ring's end.
	end := int(h.next & uint32(len(h.buf)-1))
	require.Greater(t, h.nret, end+100, "the retained bytes wrap in the ring")
	off := len(all) - end - 50 // 50 bytes before the ring's end, 50 after
	seq := start + uint32(off)
	o.ackSeen, o.ack = true, start
	assert.Equal(t, Retransmission, r.compareOld(&h, &o, seq, all[off:off+100]))
	evil := bytes.Clone(all[off : off+100])
	evil[60] ^= 0xff
	require.Equal(t, OverlapDiffers, r.compareOld(&h, &o, seq, evil))
	want := append(append(bytes.Clone(all[off-tail:off]), evil...), all[off+100:off+100+tail]...)
	assert.Equal(t, want, r.altView)
	assert.Equal(t, Unverifiable, r.compareOld(&h, &o, h.next-uint32(h.nret)-1, all[len(all)-h.nret-1:][:10]))
}

// TestSynKeepsHeldSpace: a repeated SYN with another ISN does not move the sequence space while
// bytes are held out of order (the fuzzer found the held ranges compared against the new space).
func TestSynKeepsHeldSpace(t *testing.T) {
	c := newConn(t, nil, 1, 2)
	c.handshake()
	assert.Nil(t, c.send(8, []byte("held")).View)
	c.r.Segment(&c.s, c.cd, seg(0x80000001, 0, fSYN, 100, nil, nil), 0)
	next, ok := c.s.Next(c.cd)
	assert.True(t, ok)
	assert.Equal(t, uint32(2), next, "the ISN stays")
	assert.Equal(t, []byte("01234567held"), c.send(0, []byte("01234567")).View)
}

// TestRetainDeferred: the new bytes of a view wait in the Reassembler's scratch for retention
// until the next call that needs it; whatever comes in between, a retransmission with other
// bytes is still caught, and bytes the receiver acknowledged meanwhile are not retained.
func TestRetainDeferred(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	evil := []byte("0123456789abcdefXhij")
	var other Stream
	for _, tc := range []struct {
		name    string
		between func(c *conn)
	}{
		{"nothing", func(*conn) {}},
		{"the receiver's ACK of part", func(c *conn) { c.ackFromServer(10) }},
		{"the receiver's data", func(c *conn) {
			c.r.Segment(&c.s, 1-c.cd, seg(c.snext, c.cisn+1, fACK, 100, nil, []byte("reply")), 0)
		}},
		{"another stream's data", func(c *conn) {
			c.r.Segment(&other, 0, seg(7, 0, fACK, 100, nil, []byte("other stream bytes")), 0)
		}},
		{"another stream released", func(c *conn) { c.r.Release(&other) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newConn(t, &Config{Tail: 4}, 1, 2)
			c.handshake()
			other = Stream{}
			c.r.Segment(&other, 0, seg(7, 0, fACK, 100, nil, []byte("x")), 0)
			require.Equal(t, data, c.send(0, data).View)
			tc.between(c)
			assert.Equal(t, Retransmission, c.send(0, data).Anomalies)
			assert.Equal(t, OverlapDiffers, c.send(0, evil).Anomalies)
		})
	}
	t.Run("acknowledged before the next segment", func(t *testing.T) {
		c := newConn(t, &Config{Tail: 4}, 1, 2)
		c.handshake()
		c.send(0, data)
		c.ackFromServer(len(data))
		assert.Equal(t, data[len(data)-4:], c.retained(), "the tail only")
		assert.Equal(t, []byte("ghijmore"), c.send(len(data), []byte("more")).View)
	})
	t.Run("stream released while its bytes wait", func(t *testing.T) {
		c := newConn(t, &Config{Tail: 4}, 1, 2)
		c.handshake()
		c.send(0, data)
		c.r.Release(&c.s)
		assert.Zero(t, c.r.Counters().Memory)
		c.handshake()
		assert.Equal(t, []byte("new"), c.send(0, []byte("new")).View)
	})
}
