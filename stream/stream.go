package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/afbridge/afbridge/internal/bitnames"
)

// Anomaly is a set of things a segment did. The bits in [Config.DropOn] set [Result.Drop].
type Anomaly uint32

// The anomalies.
const (
	// OverlapDiffers: the segment overlaps bytes already inspected or held with other bytes.
	OverlapDiffers Anomaly = 1 << iota
	// Unverifiable: the segment repeats bytes that are no longer retained
	// ([Config.Retain]) and that the receiver has not acknowledged, so they cannot be compared.
	Unverifiable
	// OutOfOrder: an out-of-order segment that could not be held: beyond [Config.Hold] bytes
	// past the gap, too scattered, or no hold buffer free ([Config.HoldBuffers]).
	OutOfOrder
	// Urgent: the URG flag; most stacks take the urgent byte out of the stream the application
	// reads, so the IPS and the application would see different bytes.
	Urgent
	// Malformed: a TCP header shorter than 20 bytes or a data offset outside the segment.
	Malformed
	// Blocked: the stream was blocked ([Stream.Block]).
	Blocked
	// Retransmission: the segment repeats bytes already inspected, identically (informational).
	Retransmission
	// Midstream: the direction's first segment was not a SYN; its sequence numbers start at
	// this segment (informational).
	Midstream
	// OutOfWindow: the segment ends beyond the receiver's advertised window; it is inspected
	// like any other (informational).
	OutOfWindow
	// AfterFin: the segment carries bytes past its direction's FIN; they are inspected like any
	// other (informational).
	AfterFin
	// DepthReached: [Config.Depth] bytes of this direction were inspected; later bytes are not
	// (informational).
	DepthReached
)

// DefaultDropOn is what [Config.DropOn] zero means.
const DefaultDropOn = OverlapDiffers | Unverifiable | OutOfOrder | Urgent | Malformed | Blocked

// NoDrop in [Config.DropOn] means no anomaly sets [Result.Drop].
const NoDrop Anomaly = 1 << 31

var anomalyNames = [...]string{"overlap-differs", "unverifiable", "out-of-order", "urgent", "malformed",
	"blocked", "retransmission", "midstream", "out-of-window", "after-fin", "depth-reached"}

// String lists the set bits' names joined by "|", or "none".
func (a Anomaly) String() string { return bitnames.Join(uint64(a), anomalyNames[:]...) }

// State is a connection's TCP state as the IPS sees it.
type State uint8

// The states.
const (
	StateNew         State = iota // nothing seen yet
	StateSynSent                  // the client's SYN
	StateSynReceived              // the server's SYN-ACK
	StateEstablished              // the handshake's last ACK, or data both ways on a stream picked up midstream
	StateClosing                  // a FIN one way
	StateClosed                   // FINs both ways, or a RST
)

var stateNames = [...]string{"new", "syn-sent", "syn-received", "established", "closing", "closed"}

// String is the state's name.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Dir is a direction of a connection, 0 or 1, as the caller numbers them. Number them by the
// way the frame crossed the bridge (verdict.Direction), not by its addresses: a packet spoofed
// with the far side's address then still counts as coming from the near side, so a forged ACK
// cannot make the Stream forget bytes the receiver never got. The client is the side whose SYN
// came first, or whichever sent the first segment seen.
type Dir uint8

// ErrConfig is wrapped by every error [New] returns for a bad [Config].
var ErrConfig = errors.New("stream: invalid config")

// Config sets a [Reassembler]'s sizes. Every zero value means the default given.
type Config struct {
	// Tail is how many already-inspected bytes each view repeats in front of the new ones: the
	// longest pattern the caller looks for, minus one. Zero: 64.
	Tail int
	// Retain is the most inspected bytes one direction keeps to compare retransmissions
	// with. A direction keeps the bytes its receiver has not acknowledged (at least Tail),
	// so it needs about the connection's bytes in flight; a retransmission of bytes neither
	// kept nor acknowledged is [Unverifiable]. Zero: 1 MiB.
	Retain int
	// MaxMemory bounds the bytes of all retain buffers of the Streams this Reassembler
	// serves; a buffer grows (doubling, from 4 KiB) only within it, else its direction keeps
	// fewer bytes (a direction always gets a small buffer for its tail, even past the limit).
	// Buffers are given back by [Reassembler.Release]. Zero: 64 MiB.
	MaxMemory int
	// Hold is how many bytes past a gap an out-of-order segment may reach and still be held;
	// rounded up to a power of two. Zero: 65536.
	Hold int
	// HoldBuffers is how many directions may hold out-of-order data at once (the Reassembler
	// owns them; a direction gives its buffer back when the gap fills, or at
	// [Reassembler.Release]). Zero: 64.
	HoldBuffers int
	// Depth is how many bytes of each direction are inspected; after that, segments pass with
	// [DepthReached]. Zero: no limit.
	Depth int64
	// DropOn is the anomalies that set [Result.Drop]; zero: [DefaultDropOn]; [NoDrop]: none.
	DropOn Anomaly
	// Headroom is how many bytes are kept free in front of every [Result.View], for
	// [Reassembler.Frame] to put a header there without copying the view. Zero: 256.
	Headroom int
}

// maxRanges is how many separate out-of-order ranges one direction may hold.
const maxRanges = 16

// maxSegment is the largest payload one frame can carry (a GSO super-frame included).
const maxSegment = 65535

func (c *Config) resolve() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	for _, f := range []struct {
		name string
		v    *int
		def  int
		max  int
	}{
		{"Tail", &r.Tail, 64, 1 << 16},
		{"Retain", &r.Retain, 1 << 20, 1 << 26},
		{"MaxMemory", &r.MaxMemory, 64 << 20, 1 << 40},
		{"Hold", &r.Hold, 65536, 1 << 24},
		{"HoldBuffers", &r.HoldBuffers, 64, 1 << 20},
		{"Headroom", &r.Headroom, 256, 1 << 16},
	} {
		if *f.v < 0 || *f.v > f.max {
			return r, fmt.Errorf("%w: %s is %d; use 0 for the default (%d) or up to %d", ErrConfig, f.name, *f.v, f.def, f.max)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if r.Retain < r.Tail {
		return r, fmt.Errorf("%w: Retain %d is less than Tail %d; raise Retain", ErrConfig, r.Retain, r.Tail)
	}
	r.Hold = 1 << bits.Len(uint(r.Hold-1))
	if r.Depth < 0 {
		return r, fmt.Errorf("%w: Depth %d is negative; use 0 for no limit", ErrConfig, r.Depth)
	}
	if r.DropOn == 0 {
		r.DropOn = DefaultDropOn
	}
	if r.DropOn&NoDrop != 0 {
		r.DropOn = 0
	}
	return r, nil
}

// Counters are a Reassembler's totals since [New].
type Counters struct {
	Segments     uint64 // calls to Segment
	WireSegments uint64 // the segments those stand for on the wire (a GSO frame counts as several)
	Bytes        uint64 // bytes inspected (each byte once)
	Held         uint64 // out-of-order segments held
	HoldsInUse   int    // hold buffers lent to directions now
	Memory       int    // bytes of retain buffers held by Streams now
	MemoryFull   uint64 // times a retain buffer could not grow within MaxMemory
	// Anomalies counts segments by anomaly, indexed by bit number (OverlapDiffers is 0).
	Anomalies [11]uint64
}

// Anomaly returns the count of segments that had anomaly a (a single bit).
func (c Counters) Anomaly(a Anomaly) uint64 {
	i := bits.TrailingZeros32(uint32(a))
	if i >= len(c.Anomalies) {
		return 0
	}
	return c.Anomalies[i]
}

// Result is what [Reassembler.Segment] reports for one segment.
type Result struct {
	// View is the last up to Tail bytes already inspected followed by the New bytes this
	// segment put in order (its own, then any held ones it joined). Nil when nothing new is in
	// order. Valid until the next call on the Reassembler; do not change it (its new bytes are
	// retained from there).
	View []byte
	// New is how many bytes at the end of View are new.
	New int
	// Alt, when the segment overlaps retained bytes with other bytes ([OverlapDiffers]), is
	// how a receiver that takes the segment's bytes would read them: up to Tail retained bytes
	// before, the segment's bytes, up to Tail retained bytes after. Inspect it to name the
	// attempt (the segment is dropped anyway). Valid until the next call.
	Alt []byte
	// Anomalies found in this segment.
	Anomalies Anomaly
	// Drop is Anomalies & Config.DropOn != 0: the caller should drop this segment.
	Drop bool
	// ToServer is true when the segment goes from the client to the server.
	ToServer bool
	// Segments is how many wire segments this frame stands for: more than 1 for a GSO
	// super-frame, computed from the gsoSize given or the receiver's MSS.
	Segments int
	// State is the connection's state after this segment.
	State State
}

type rng struct{ start, end uint32 }

type hold struct {
	buf []byte // byte of sequence number s at buf[s & (len(buf)-1)]
	rs  [maxRanges]rng
	n   int
}

type half struct {
	init      bool   // next is known
	syn       bool   // a SYN was seen
	fin       bool   // a FIN was seen
	ackSeen   bool   // ack is valid
	wsOffer   bool   // the SYN offered window scaling
	ws        uint8  // the shift it offered
	mss       uint16 // the MSS its SYN offered, 0 unknown
	isn       uint32
	next      uint32 // sequence number of the next byte to inspect
	finSeq    uint32
	ack       uint32 // highest ACK this side sent: the other direction's bytes before it arrived
	win       uint32 // this side's latest window, scaled
	inspected int64
	nret      int    // how many inspected bytes buf retains: those just before next
	buf       []byte // the retain ring, byte of sequence number s at buf[s & (len(buf)-1)]
	hold      *hold
}

// Stream is one TCP connection's reassembly state. The zero value is ready for a new
// connection. Keep it in place (a Stream holds buffers), use it with one Reassembler, and call
// [Reassembler.Release] when the connection ends.
type Stream struct {
	h       [2]half
	client  Dir
	started bool
	blocked bool
	est     bool
	rst     bool
}

// Block marks s dropped: every later segment of it, both ways, gets [Blocked] (and so
// [Result.Drop] by default). Use it when a segment is dropped for its content, so that its
// retransmission, or anything after it, is dropped too.
func (s *Stream) Block() { s.blocked = true }

// Blocked reports whether [Stream.Block] was called.
func (s *Stream) Blocked() bool { return s.blocked }

// State is the connection's state.
func (s *Stream) State() State {
	switch {
	case s.rst || (s.h[0].fin && s.h[1].fin):
		return StateClosed
	case s.h[0].fin || s.h[1].fin:
		return StateClosing
	case s.est:
		return StateEstablished
	}
	c, sv := &s.h[s.client], &s.h[1-s.client]
	switch {
	case sv.syn:
		return StateSynReceived
	case c.syn:
		return StateSynSent
	}
	return StateNew
}

// Established reports whether the handshake completed (or, picked up midstream, both sides
// spoke), also once the connection closes: Suricata's flow:established.
func (s *Stream) Established() bool { return s.est }

// Client is the direction of the client.
func (s *Stream) Client() Dir { return s.client }

// Next is the sequence number of the next byte expected in direction d, and whether it is known.
func (s *Stream) Next(d Dir) (uint32, bool) { return s.h[d&1].next, s.h[d&1].init }

// Reassembler follows the streams one worker sees. It owns the out-of-order hold buffers and
// the buffer views are built in. It is not safe for concurrent use.
type Reassembler struct {
	cfg     Config
	holds   []*hold
	scratch []byte
	alt     []byte // Result.Alt is built here
	altView []byte
	viewLen int // length of the last Result.View, which starts at scratch[cfg.Headroom]
	// The new bytes of the last view wait in scratch, at pendOff, for their direction's retain
	// ring: when the receiver acknowledges them first (a bulk transfer's ACK often comes before
	// the next segment), they are never copied there. pendS is nil when nothing waits.
	pendS          *Stream
	pendDir        Dir
	pendOff, pendN int
	c              Counters
}

// New returns a Reassembler with cfg's sizes (nil: the defaults). Its view buffer is allocated
// now and its hold buffers as first needed, then reused.
func New(cfg *Config) (*Reassembler, error) {
	c, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	return &Reassembler{
		cfg:     c,
		holds:   make([]*hold, 0, c.HoldBuffers),
		scratch: make([]byte, c.Headroom+c.Tail+maxSegment+c.Hold),
		alt:     make([]byte, 0, 2*c.Tail+maxSegment),
	}, nil
}

// Frame returns head followed by the View of the last [Reassembler.Segment] (nothing when it
// had none), for a caller that matches the view as the payload of a frame it builds: head is
// copied into the [Config.Headroom] kept in front of the view, and the view itself is not
// copied again. The caller may change the header part of the result (to fix a length field),
// not the view, whose new bytes are retained from there; it is valid until the next call on
// the Reassembler. Frame returns nil when head is longer than the headroom.
func (r *Reassembler) Frame(head []byte) []byte {
	h := r.cfg.Headroom
	if len(head) > h {
		return nil
	}
	b := r.scratch[h-len(head) : h+r.viewLen]
	copy(b, head)
	return b
}

// Counters returns the totals so far.
func (r *Reassembler) Counters() Counters { return r.c }

// Release gives back the hold buffers s has borrowed and its retain buffers' share of
// MaxMemory, and resets s for a new connection. Call it when the connection ends or its state
// is evicted. Calling it twice is harmless.
func (r *Reassembler) Release(s *Stream) {
	if r.pendS == s {
		r.pendS = nil
	}
	for i := range s.h {
		r.putHold(&s.h[i])
		r.c.Memory -= len(s.h[i].buf)
		s.h[i].buf, s.h[i].nret = nil, 0
	}
	*s = Stream{}
}

func (r *Reassembler) getHold() *hold {
	if n := len(r.holds); n > 0 {
		h := r.holds[n-1]
		r.holds = r.holds[:n-1]
		r.c.HoldsInUse++
		return h
	}
	if r.c.HoldsInUse >= r.cfg.HoldBuffers {
		return nil
	}
	r.c.HoldsInUse++
	return &hold{buf: make([]byte, r.cfg.Hold)}
}

func (r *Reassembler) putHold(h *half) {
	if h.hold == nil {
		return
	}
	h.hold.n = 0
	r.holds = append(r.holds, h.hold)
	h.hold = nil
	r.c.HoldsInUse--
}

// before reports a < b in sequence space (RFC 1982 arithmetic).
func before(a, b uint32) bool { return int32(a-b) < 0 }

// TCP flags.
const (
	fFIN = 0x01
	fSYN = 0x02
	fRST = 0x04
	fACK = 0x10
	fURG = 0x20
)

// Segment takes one TCP segment of s going in direction d: tcp is the TCP header and payload,
// exactly the IP payload (cut at the IP length, without link padding). gsoSize is the
// segment size of a GSO super-frame (the virtio-net header's gso_size), or 0. Nothing refers
// to tcp after the call.
func (r *Reassembler) Segment(s *Stream, d Dir, tcp []byte, gsoSize int) (res Result) {
	d &= 1
	r.c.Segments++
	if r.pendS != nil && (r.pendS != s || r.pendDir == d) {
		// Only the other direction of the same stream (its ACK) may come first.
		r.flush()
	}
	r.altView, r.viewLen = nil, 0
	if !s.started {
		s.started = true
		s.client = d
	}
	res.Segments = 1
	if len(tcp) < 20 || int(tcp[12]>>4)*4 < 20 || int(tcp[12]>>4)*4 > len(tcp) || len(tcp)-int(tcp[12]>>4)*4 > maxSegment {
		r.finish(s, d, &res, Malformed)
		return res
	}
	if s.blocked {
		r.finish(s, d, &res, Blocked)
		return res
	}
	var a Anomaly
	h, o := &s.h[d], &s.h[1-d]
	seq := binary.BigEndian.Uint32(tcp[4:])
	ack := binary.BigEndian.Uint32(tcp[8:])
	flags := tcp[13]
	win := uint32(binary.BigEndian.Uint16(tcp[14:]))
	doff := int(tcp[12]>>4) * 4
	data := tcp[doff:]
	if flags&fURG != 0 {
		a |= Urgent
	}
	if flags&fSYN != 0 {
		r.syn(s, d, tcp[20:doff], seq, flags)
		seq++
	}
	if flags&fACK != 0 {
		if !h.ackSeen || before(h.ack, ack) {
			h.ack = ack
		}
		h.ackSeen = true
		if flags&fSYN == 0 && h.wsOffer && o.wsOffer {
			win <<= h.ws
		}
		h.win = win
		if !s.est && flags&fSYN == 0 && d == s.client && h.syn && o.syn && !before(ack, o.isn+1) {
			s.est = true
		}
	}
	if flags&fRST != 0 {
		s.rst = true
		r.finish(s, d, &res, a)
		return res
	}
	if len(data) > 0 {
		mss := gsoSize
		if mss <= 0 && o.mss > 0 {
			mss = int(o.mss)
		}
		if mss > 0 && len(data) > mss {
			res.Segments = (len(data) + mss - 1) / mss
		}
		if !h.init {
			h.init = true
			h.next = seq
			a |= Midstream
		}
		if !s.est && !s.h[0].syn && !s.h[1].syn && o.init {
			s.est = true // picked up midstream: both sides have spoken
		}
		end := seq + uint32(len(data))
		if h.fin && before(h.finSeq, end) {
			a |= AfterFin
		}
		if o.ackSeen && s.h[0].syn && s.h[1].syn && before(o.ack+o.win, end) {
			a |= OutOfWindow
		}
		if r.cfg.Depth > 0 && h.inspected >= r.cfg.Depth {
			a |= DepthReached
		} else {
			r.flush() // scratch is about to be reused
			a |= r.data(s, d, seq, data, &res)
		}
	}
	if flags&fFIN != 0 && !h.fin {
		h.fin = true
		h.finSeq = seq + uint32(len(data))
	}
	r.finish(s, d, &res, a)
	return res
}

// finish completes res, in place: a Result is too big to copy back and forth on every segment.
func (r *Reassembler) finish(s *Stream, d Dir, res *Result, a Anomaly) {
	res.Anomalies = a
	res.Alt = r.altView
	res.Drop = a&r.cfg.DropOn != 0
	res.ToServer = d == s.client
	res.State = s.State()
	r.c.WireSegments += uint64(res.Segments)
	for m := uint32(a) & (1<<len(anomalyNames) - 1); m != 0; m &= m - 1 {
		r.c.Anomalies[bits.TrailingZeros32(m)]++
	}
}

// syn records a SYN's sequence number and options.
func (r *Reassembler) syn(s *Stream, d Dir, opts []byte, seq uint32, flags uint8) {
	h := &s.h[d]
	if !s.h[1-d].syn && !h.syn {
		// The first SYN names the client; a SYN-ACK first means its SYN was missed.
		s.client = d
		if flags&fACK != 0 {
			s.client = 1 - d
		}
	}
	// A repeated SYN may move the ISN only while no data was inspected or held (held ranges
	// would be compared with the new sequence space as if they were in it).
	if h.init && (h.next != h.isn+1 || h.hold != nil) {
		h.syn = true
		return
	}
	h.syn = true
	h.init = true
	h.isn = seq
	h.next = seq + 1
	h.nret = 0
	for len(opts) > 0 {
		kind := opts[0]
		if kind == 0 {
			break
		}
		if kind == 1 {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || int(opts[1]) < 2 || int(opts[1]) > len(opts) {
			break
		}
		switch {
		case kind == 2 && opts[1] == 4:
			h.mss = binary.BigEndian.Uint16(opts[2:])
		case kind == 3 && opts[1] == 3:
			h.wsOffer = true
			h.ws = min(opts[2], 14)
		}
		opts = opts[opts[1]:]
	}
}

// data inspects a segment's payload starting at seq in direction h (o is the other one).
func (r *Reassembler) data(s *Stream, d Dir, seq uint32, data []byte, res *Result) Anomaly {
	var a Anomaly
	h, o := &s.h[d], &s.h[1-d]
	end := seq + uint32(len(data))
	// Bytes before next were inspected: they must be the same ones.
	if before(seq, h.next) {
		oldEnd := end
		if before(h.next, end) {
			oldEnd = h.next
		}
		a |= r.compareOld(h, o, seq, data[:oldEnd-seq])
		if oldEnd == end {
			return a
		}
		data = data[h.next-seq:]
		seq = h.next
	}
	if seq != h.next {
		return a | r.hold(h, seq, data)
	}
	// In order: check against anything held, then build the view.
	hd := h.hold
	if hd != nil {
		for i := 0; i < hd.n; i++ {
			if hd.differs(hd.rs[i], seq, end, data) {
				a |= OverlapDiffers
			}
		}
	}
	tail := min(h.nret, r.cfg.Tail)
	v := r.scratch[r.cfg.Headroom : r.cfg.Headroom+tail+len(data)]
	if tail > 0 {
		ringGet(h.buf, seq-uint32(tail), v[:tail])
	}
	copy(v[tail:], data)
	next := end
	if hd != nil && a&OverlapDiffers != 0 {
		// Where they differ, the held bytes are the ones the receiver has.
		for i := 0; i < hd.n; i++ {
			lo, hi := hd.rs[i].start, hd.rs[i].end
			if before(lo, seq) {
				lo = seq
			}
			if before(end, hi) {
				hi = end
			}
			if before(lo, hi) {
				ringGet(hd.buf, lo, v[tail+int(lo-seq):tail+int(hi-seq)])
			}
		}
	}
	if hd != nil {
		// Join the held ranges the new bytes reach.
		k := 0
		for ; k < hd.n; k++ {
			rs := hd.rs[k]
			if before(next, rs.start) {
				break
			}
			if before(next, rs.end) {
				n := int(rs.end - next)
				v = v[:len(v)+n]
				ringGet(hd.buf, next, v[len(v)-n:])
				next = rs.end
			}
		}
		hd.n = copy(hd.rs[:], hd.rs[k:hd.n])
		if hd.n == 0 {
			r.putHold(h)
		}
	}
	fresh := v[tail:]
	h.next = next
	h.inspected += int64(len(fresh))
	r.c.Bytes += uint64(len(fresh))
	r.pendS, r.pendDir, r.pendOff, r.pendN = s, d, r.cfg.Headroom+tail, len(fresh)
	res.View = v
	res.New = len(fresh)
	r.viewLen = len(v)
	return a
}

// flush retains the bytes waiting in scratch, if any (see Reassembler.pendS).
func (r *Reassembler) flush() {
	if r.pendS == nil {
		return
	}
	s, d := r.pendS, r.pendDir
	r.pendS = nil
	r.retain(&s.h[d], &s.h[1-d], r.scratch[r.pendOff:r.pendOff+r.pendN])
}

// compareOld checks bytes [seq, seq+len(b)) against what was inspected.
func (r *Reassembler) compareOld(h, o *half, seq uint32, b []byte) Anomaly {
	retStart := h.next - uint32(h.nret)
	if before(seq, retStart) {
		// The part no longer retained matters only if the receiver has not acknowledged it.
		gone := uint32(len(b))
		if before(retStart, seq+gone) {
			gone = retStart - seq
		}
		if !o.ackSeen || before(o.ack, seq+gone) {
			return Unverifiable
		}
		b = b[gone:]
		seq += gone
	}
	if len(b) == 0 {
		return Retransmission
	}
	if !ringEqual(h.buf, seq, b) {
		pre := min(int(seq-retStart), r.cfg.Tail)
		end := seq + uint32(len(b))
		post := min(int(h.next-end), r.cfg.Tail)
		a := r.alt[:pre+len(b)+post]
		ringGet(h.buf, seq-uint32(pre), a[:pre])
		copy(a[pre:], b)
		ringGet(h.buf, end, a[pre+len(b):])
		r.altView = a
		return OverlapDiffers
	}
	return Retransmission
}

// minBuf is the size a retain buffer starts at.
const minBuf = 4096

// retain appends inspected bytes b (which end at h.next) to h's retain ring. It keeps what the
// receiver (o) has not acknowledged, at least Tail bytes and at most Retain. Each byte is
// copied once, to its place in the ring; the ring doubles when it needs more room and
// MaxMemory allows.
func (r *Reassembler) retain(h, o *half, b []byte) {
	want := h.nret + len(b)
	if o.ackSeen {
		if un := int32(h.next - o.ack); un >= 0 && int(un) < want {
			want = int(un)
		}
	}
	want = min(max(want, r.cfg.Tail), r.cfg.Retain, h.nret+len(b))
	if want > len(h.buf) {
		r.grow(h, want, len(b))
		want = min(want, len(h.buf)) // could not grow: keep what fits
	}
	if want == 0 {
		h.nret = 0
		return
	}
	n := min(len(b), want)
	ringPut(h.buf, h.next-uint32(n), b[len(b)-n:])
	h.nret = want
}

// grow gives h a retain ring of at least want bytes (a power of two from minBuf, at most
// Retain rounded up to one) if MaxMemory allows, keeping the retained bytes, which end fresh
// bytes before h.next.
func (r *Reassembler) grow(h *half, want, fresh int) {
	n := max(len(h.buf), minBuf)
	for n < want {
		n *= 2
	}
	if r.c.Memory-len(h.buf)+n > r.cfg.MaxMemory {
		r.c.MemoryFull++
		if h.buf != nil {
			return
		}
		// A direction always gets a ring for its tail, even past the limit.
		n = 1 << bits.Len(uint(max(r.cfg.Tail, 64)-1))
	}
	if n <= len(h.buf) {
		return
	}
	nb := make([]byte, n)
	if h.nret > 0 {
		// The retained bytes, in at most two pieces of the old ring, to their places in the new.
		start := h.next - uint32(fresh) - uint32(h.nret)
		i := int(start & uint32(len(h.buf)-1))
		first := min(h.nret, len(h.buf)-i)
		ringPut(nb, start, h.buf[i:i+first])
		ringPut(nb, start+uint32(first), h.buf[:h.nret-first])
	}
	r.c.Memory += n - len(h.buf)
	h.buf = nb
}

// ringPut writes b into ring buf (a power of two long, at least len(b)) from sequence number seq.
func ringPut(buf []byte, seq uint32, b []byte) {
	i := int(seq & uint32(len(buf)-1))
	n := copy(buf[i:], b)
	copy(buf, b[n:])
}

// ringGet reads len(b) bytes of ring buf from sequence number seq into b.
func ringGet(buf []byte, seq uint32, b []byte) {
	i := int(seq & uint32(len(buf)-1))
	n := copy(b, buf[i:])
	copy(b[n:], buf)
}

// ringEqual reports whether ring buf holds b from sequence number seq.
func ringEqual(buf []byte, seq uint32, b []byte) bool {
	i := int(seq & uint32(len(buf)-1))
	n := min(len(b), len(buf)-i)
	return bytes.Equal(buf[i:i+n], b[:n]) && bytes.Equal(buf[:len(b)-n], b[n:])
}

// hold keeps an out-of-order segment [seq, seq+len(data)), seq after next.
func (r *Reassembler) hold(h *half, seq uint32, data []byte) Anomaly {
	end := seq + uint32(len(data))
	if end-h.next > uint32(r.cfg.Hold) {
		return OutOfOrder
	}
	hd := h.hold
	if hd == nil {
		if hd = r.getHold(); hd == nil {
			return OutOfOrder
		}
		h.hold = hd
	}
	// The merged range list, first, to know it fits.
	var rs [maxRanges + 1]rng
	n := 0
	ins := false
	var a Anomaly
	add := func(x rng) {
		if n > 0 && !before(rs[n-1].end, x.start) {
			if before(rs[n-1].end, x.end) {
				rs[n-1].end = x.end
			}
			return
		}
		if n < len(rs) {
			rs[n] = x
		}
		n++
	}
	for i := 0; i < hd.n; i++ {
		x := hd.rs[i]
		if !ins && !before(x.start, seq) {
			add(rng{seq, end})
			ins = true
		}
		add(x)
		if hd.differs(x, seq, end, data) {
			a |= OverlapDiffers
		}
	}
	if !ins {
		add(rng{seq, end})
	}
	if n > maxRanges {
		if hd.n == 0 {
			r.putHold(h)
		}
		return a | OutOfOrder
	}
	// Write only the bytes not held yet: held bytes are what the receiver has.
	cur := seq
	for i := 0; i < hd.n && before(cur, end); i++ {
		x := hd.rs[i]
		if !before(cur, x.end) || !before(x.start, end) {
			continue
		}
		if before(cur, x.start) {
			ringPut(hd.buf, cur, data[cur-seq:x.start-seq])
		}
		cur = x.end
	}
	if before(cur, end) {
		ringPut(hd.buf, cur, data[cur-seq:])
	}
	copy(hd.rs[:], rs[:n])
	hd.n = n
	r.c.Held++
	return a
}

// differs reports whether data, the bytes from seq to end, differs from the held range r where
// the two overlap.
func (hd *hold) differs(r rng, seq, end uint32, data []byte) bool {
	lo, hi := r.start, r.end
	if before(lo, seq) {
		lo = seq
	}
	if before(end, hi) {
		hi = end
	}
	return before(lo, hi) && !ringEqual(hd.buf, lo, data[lo-seq:hi-seq])
}
