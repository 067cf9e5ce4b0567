package flow

import (
	"errors"
	"fmt"
	"iter"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// DefaultCapacity is the number of flows a [Table] holds when [Config].Capacity is 0.
const DefaultCapacity = 65536

// MaxCapacity is the largest [Config].Capacity (flows are indexed by int32, index slots by the
// upper 32 bits of a hash).
const MaxCapacity = 1 << 30

// DefaultSweep is the number of flows [Table.Expire] examines per call when [Config].Sweep is 0.
const DefaultSweep = 256

// ErrConfig is returned (wrapped, with the reason) by [NewTable] for a Config it cannot build.
var ErrConfig = errors.New("flow: invalid table config")

// Timeouts are the idle timeouts of a [Table]: a flow that sees no frame for its timeout expires.
// The timeout follows the flow's state. A zero field takes the default in [DefaultTimeouts].
type Timeouts struct {
	// TCPSyn applies while the handshake is not complete ([TCPSynSent], [TCPSynRecv]), and to
	// TCP flows picked up mid-stream until both directions are seen.
	TCPSyn time.Duration
	// TCPEstablished applies to an established connection ([TCPEstablished]).
	TCPEstablished time.Duration
	// TCPClosing applies once a FIN is seen ([TCPClosing]).
	TCPClosing time.Duration
	// TCPClosed applies after a RST, or FINs both ways ([TCPClosed]).
	TCPClosed time.Duration
	// Unreplied applies to UDP, ICMP and other flows seen in one direction only.
	Unreplied time.Duration
	// UDP, ICMP and Other apply to flows of those protocols seen in both directions. ICMP covers
	// ICMPv6.
	UDP, ICMP, Other time.Duration
}

// DefaultTimeouts returns the timeouts a [Table] uses for the zero fields of [Config].Timeouts:
// Suricata's default flow timeouts (suricata.yaml flow-timeouts: TCP new 60 s, established 600 s,
// closed 60 s; UDP, ICMP and default new 30 s, established 300 s), with one addition: a
// connection that is fully closed (RST, or FINs both ways) lasts 10 s, like Linux conntrack's
// CLOSE, so that short connections free their slots quickly; FIN-only connections keep
// Suricata's 60 s. So: TCPSyn 60 s, TCPEstablished 600 s, TCPClosing 60 s, TCPClosed 10 s,
// Unreplied 30 s, UDP, ICMP and Other 300 s.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		TCPSyn:         60 * time.Second,
		TCPEstablished: 600 * time.Second,
		TCPClosing:     60 * time.Second,
		TCPClosed:      10 * time.Second,
		Unreplied:      30 * time.Second,
		UDP:            300 * time.Second,
		ICMP:           300 * time.Second,
		Other:          300 * time.Second,
	}
}

// Reason says why a flow left a [Table].
type Reason uint8

const (
	// Expired: the flow was idle longer than its timeout.
	Expired Reason = iota + 1
	// Evicted: the table was full and the flow was the one idle longest.
	Evicted
	// Removed: [Table.Remove] or [Table.Clear].
	Removed
)

// String returns the reason's name as used in logs: expired, evicted, removed.
func (r Reason) String() string {
	switch r {
	case Expired:
		return "expired"
	case Evicted:
		return "evicted"
	case Removed:
		return "removed"
	}
	return fmt.Sprintf("flow.Reason(%d)", uint8(r))
}

// Config configures a [Table]. The zero value is a usable default.
type Config[V any] struct {
	// Capacity is the most flows the table holds; 0 means [DefaultCapacity]. All memory is
	// allocated up front: about Capacity × (120 bytes + the size of V) plus 8 bytes per index slot
	// (two slots per flow, rounded up to a power of two).
	Capacity int
	// Timeouts are the idle timeouts; zero fields take [DefaultTimeouts].
	Timeouts Timeouts
	// Sweep is the most flows one [Table.Expire] call examines; 0 means [DefaultSweep]. It bounds
	// the work per call: a whole table is swept every Capacity/Sweep calls.
	Sweep int
	// NoEvict makes a full table refuse new flows ([Table.Lookup] returns nil, counted in
	// [TableStats].Full) instead of evicting the flow idle longest; an expired flow still makes
	// room. Eviction lets a flood of new
	// flows push out old ones, a dropped flow included; refusing lets it block new flows instead.
	NoEvict bool
	// OnRemove, when set, is called with each flow that leaves the table (expiry, eviction,
	// removal), before its slot is reused, so the user can release per-flow resources held in
	// State. The flow is already out of the table (Get no longer finds it, the counters include
	// it). It runs on the caller's goroutine inside Lookup, Expire, Remove or Clear, and must not
	// call back into the table. If it panics, the table stays consistent.
	OnRemove func(f *Flow[V], why Reason)
}

// TCPState is the state of a TCP flow as a [Table] tracks it from the flags in both directions.
// It drives timeouts only: sequence numbers are not checked.
type TCPState uint8

const (
	// TCPNone: not TCP, or no frame seen yet.
	TCPNone TCPState = iota
	// TCPSynSent: a SYN was seen, or a mid-stream segment in one direction only.
	TCPSynSent
	// TCPSynRecv: the SYN-ACK was seen.
	TCPSynRecv
	// TCPEstablished: the handshake completed (the ACK after the SYN-ACK), or, for a flow picked
	// up mid-stream, segments were seen both ways.
	TCPEstablished
	// TCPClosing: a FIN was seen in one direction.
	TCPClosing
	// TCPClosed: a RST was seen, or FINs in both directions. A new SYN reopens the flow.
	TCPClosed
)

// String returns the state's name as used in logs, e.g. syn-sent or established.
func (s TCPState) String() string {
	switch s {
	case TCPNone:
		return "none"
	case TCPSynSent:
		return "syn-sent"
	case TCPSynRecv:
		return "syn-recv"
	case TCPEstablished:
		return "established"
	case TCPClosing:
		return "closing"
	case TCPClosed:
		return "closed"
	}
	return fmt.Sprintf("flow.TCPState(%d)", uint8(s))
}

// Flow is one entry of a [Table]: the user's State and what the table tracks. A *Flow is valid
// until the next call of [Table.Lookup], [Table.Expire], [Table.Remove] or [Table.Clear] on its
// table, any of which may reuse it for another flow; do not keep it.
type Flow[V any] struct {
	// State is the user's per-flow state. It is the zero V when the flow is created.
	State V

	key         Key
	hash        uint64
	first, last int64
	timeout     int64
	packets     [2]uint64
	bytes       [2]uint64
	prev, next  int32
	tcp         TCPState
	seen        uint8 // seen* bits
	dropped     bool
	used        bool
	client      uint8
}

// Bits of Flow.seen, per direction d (0 or 1): bit << d.
const (
	seenAny = 1 << (iota * 2)
	seenSyn
	seenSynAck
	seenFin
)

// Key returns the flow's key.
func (f *Flow[V]) Key() Key { return f.key }

// Drop marks the flow dropped: from now on every [Table.Lookup] of it, in both directions,
// reports it with Dropped true, until it leaves the table. This is Suricata's flow drop; the
// caller turns it into verdicts.
//
// A dropped flow's state and timeout no longer change (its frames still count as activity):
// the caller drops those frames, so a FIN or RST among them never reaches the other side, and
// letting it shorten the timeout (to Timeouts.TCPClosed) would let an attacker end the flow
// drop early while the receiver still holds the connection open.
func (f *Flow[V]) Drop() { f.dropped = true }

// Dropped reports whether [Flow.Drop] was called for this flow.
func (f *Flow[V]) Dropped() bool { return f.dropped }

// TCPState returns the flow's TCP state ([TCPNone] for other protocols).
func (f *Flow[V]) TCPState() TCPState { return f.tcp }

// Client returns the endpoint (0 or 1, compare with [Packet.Src]) that opened the flow: the
// sender of the SYN for TCP, else the sender of the first frame seen (for a TCP flow picked up
// mid-stream at its SYN-ACK, the SYN-ACK's receiver). Frames from it go to the server, in
// Suricata's terms (flow:to_server).
func (f *Flow[V]) Client() int { return int(f.client) }

// Established reports Suricata's flow:established: for TCP, the handshake completed (or a
// mid-stream flow was seen both ways) and the connection is not closed ([TCPEstablished] or
// [TCPClosing]); for other protocols, frames were seen in both directions.
func (f *Flow[V]) Established() bool {
	if f.key.Proto == ProtoTCP {
		return f.tcp == TCPEstablished || f.tcp == TCPClosing
	}
	return f.Replied()
}

// Replied reports whether frames were seen in both directions.
func (f *Flow[V]) Replied() bool { return f.seen&(seenAny|seenAny<<1) == seenAny|seenAny<<1 }

// Packets returns the number of frames seen from endpoint src (0 or 1, see [Packet.Src]).
func (f *Flow[V]) Packets(src int) uint64 { return f.packets[src&1] }

// Bytes returns the number of frame bytes seen from endpoint src (0 or 1, see [Packet.Src]).
func (f *Flow[V]) Bytes(src int) uint64 { return f.bytes[src&1] }

// First and Last return when the flow's first and latest frames were seen, by the clock the
// caller passes to [Table.Lookup].
func (f *Flow[V]) First() time.Time { return time.Unix(0, f.first) }

// Last returns when the flow's latest frame was seen; see [Flow.First].
func (f *Flow[V]) Last() time.Time { return time.Unix(0, f.last) }

// Timeout returns the flow's current idle timeout, which follows its state.
func (f *Flow[V]) Timeout() time.Duration { return time.Duration(f.timeout) }

// TableStats are a [Table]'s counters, all since the table was made.
type TableStats struct {
	// Flows is the number of flows in the table now.
	Flows int
	// Created counts flows created; Expired, Evicted and Removed count flows that left, by
	// [Reason]. Created = Flows + Expired + Evicted + Removed.
	Created, Expired, Evicted, Removed uint64
	// Full counts lookups of a new flow that found the table full. Each one made room by removing
	// the flow idle longest (counted in Expired if it was past its timeout, else in Evicted) or,
	// with [Config].NoEvict and no expired flow to remove, was refused.
	Full uint64
}

// Table is a bounded flow table for one worker: fixed capacity allocated up front, no locks and
// no allocation per frame. It is not safe for concurrent use; the bridge gives each worker both
// directions of its flows, so one Table per worker handler is the intended use.
//
// Flows are found by open addressing on a keyed hash (a random seed per table, so collisions
// cannot be crafted from outside), kept in least-recently-seen order for eviction, and expired
// lazily on lookup and by a bounded sweep in [Table.Expire].
type Table[V any] struct {
	flows    []Flow[V]
	index    []uint64 // hash>>32 << 32 | flow index + 1; 0 is empty
	mask     uint64
	seed     [6]uint64 // the hash's secret keys
	head     int32     // least recently seen, -1 when empty
	tail     int32     // most recently seen
	free     int32     // free list through next, -1 when full
	cursor   int       // Expire's sweep position
	sweep    int
	timeouts [timeoutClasses]int64
	noEvict  bool
	onRemove func(*Flow[V], Reason)
	stats    counters
}

// counters are written by the table's goroutine only and read by Stats from any goroutine. They
// change when flows come and go, never on a lookup of an existing flow, so the atomic writes
// cost nothing per frame in steady state.
type counters struct {
	flows                                    atomic.Int64
	created, expired, evicted, removed, full atomic.Uint64
}

// Timeout classes, indexes into Table.timeouts.
const (
	classTCPSyn = iota
	classTCPEstablished
	classTCPClosing
	classTCPClosed
	classUnreplied
	classUDP
	classICMP
	classOther
	timeoutClasses
)

// NewTable makes a Table with all its memory allocated. It fails, with an error wrapping
// [ErrConfig], on a negative or too large capacity, a negative timeout or sweep.
func NewTable[V any](cfg Config[V]) (*Table[V], error) {
	n := cfg.Capacity
	if n == 0 {
		n = DefaultCapacity
	}
	if n < 0 || n > MaxCapacity {
		return nil, fmt.Errorf("%w: capacity %d, want 0 (default %d) to %d", ErrConfig, cfg.Capacity, DefaultCapacity, MaxCapacity)
	}
	sweep := cfg.Sweep
	if sweep == 0 {
		sweep = DefaultSweep
	}
	if sweep < 0 {
		return nil, fmt.Errorf("%w: sweep %d is negative", ErrConfig, cfg.Sweep)
	}
	t := &Table[V]{
		flows:    make([]Flow[V], n),
		head:     -1,
		tail:     -1,
		sweep:    min(sweep, n),
		noEvict:  cfg.NoEvict,
		onRemove: cfg.OnRemove,
	}
	for i := range t.seed {
		t.seed[i] = rand.Uint64()
	}
	size := uint64(1) << bits.Len64(uint64(2*n-1)) // a power of two >= 2n: load factor <= 1/2
	t.index = make([]uint64, size)
	t.mask = size - 1
	for i := range t.flows {
		t.flows[i].next = int32(i + 1)
	}
	t.flows[n-1].next = -1
	d, c := DefaultTimeouts(), cfg.Timeouts
	for i, pair := range [timeoutClasses][2]time.Duration{
		{c.TCPSyn, d.TCPSyn}, {c.TCPEstablished, d.TCPEstablished}, {c.TCPClosing, d.TCPClosing},
		{c.TCPClosed, d.TCPClosed}, {c.Unreplied, d.Unreplied}, {c.UDP, d.UDP}, {c.ICMP, d.ICMP},
		{c.Other, d.Other},
	} {
		if pair[0] < 0 {
			return nil, fmt.Errorf("%w: timeout %v is negative", ErrConfig, pair[0])
		}
		if pair[0] == 0 {
			pair[0] = pair[1]
		}
		t.timeouts[i] = int64(pair[0])
	}
	return t, nil
}

// Cap returns the table's capacity.
func (t *Table[V]) Cap() int { return len(t.flows) }

// Len returns the number of flows in the table.
func (t *Table[V]) Len() int { return int(t.stats.flows.Load()) }

// Stats returns the table's counters. Unlike every other method, it may be called from any
// goroutine (a metrics exporter, say) while the table's owner uses the table; the counters are
// then read one by one, not as one snapshot.
func (t *Table[V]) Stats() TableStats {
	c := &t.stats
	return TableStats{
		Flows:   int(c.flows.Load()),
		Created: c.created.Load(),
		Expired: c.expired.Load(),
		Evicted: c.evicted.Load(),
		Removed: c.removed.Load(),
		Full:    c.full.Load(),
	}
}

// Lookup finds the flow of a parsed frame, or creates it, and records the frame: its time, size
// and direction, and for TCP its flags. now is the caller's clock (usually the frame's receive
// time); it only needs to be monotonic for one table. The bool is true when the flow was created
// by this call.
//
// A flow that has been idle longer than its timeout is expired here, even if no [Table.Expire]
// has swept it yet, and a new one takes its place. When the table is full, the flow idle longest
// is removed to make room; with [Config].NoEvict, unless that flow has expired, Lookup returns
// nil, false instead.
//
// Lookup uses p.Key whatever Parse returned, but returns nil, false for a Key with no Family
// (the frame was not IP). Otherwise the caller decides which frames deserve a flow: a fragment
// after the first has ports 0 and gets a flow of its own unless the caller maps it.
func (t *Table[V]) Lookup(p *Packet, now time.Time) (*Flow[V], bool) {
	if p.Key.Family == 0 {
		return nil, false
	}
	ns := now.UnixNano()
	created := false
	// The flow seen last first: a bulk transfer's frames come in runs of one flow.
	i, h, hashed := t.tail, uint64(0), false
	if i < 0 || t.flows[i].key != p.Key {
		h, hashed = t.hash(&p.Key), true
		i = t.find(&p.Key, h)
	}
	if i >= 0 && t.idle(&t.flows[i], ns) {
		t.remove(i, Expired)
		i = -1
	}
	if i < 0 {
		if !hashed {
			h = t.hash(&p.Key)
		}
		if i = t.insert(&p.Key, h, ns); i < 0 {
			return nil, false
		}
		created = true
		t.flows[i].client = uint8(p.Src())
	} else {
		t.touch(i)
	}
	f := &t.flows[i]
	f.last = ns
	src := p.Src()
	f.packets[src]++
	f.bytes[src] += uint64(p.Len)
	if !f.dropped {
		f.seen |= seenAny << src
		t.track(f, p, src)
	}
	return f, created
}

// Get returns the flow with key k, or nil. It records nothing and does not expire the flow.
func (t *Table[V]) Get(k Key) *Flow[V] {
	i := t.find(&k, t.hash(&k))
	if i < 0 {
		return nil
	}
	return &t.flows[i]
}

// Remove takes f out of its table (calling [Config].OnRemove with [Removed]). f must be a live
// flow of t, as returned by Lookup or Get since the table last changed.
func (t *Table[V]) Remove(f *Flow[V]) {
	i := t.find(&f.key, f.hash)
	if i < 0 || &t.flows[i] != f {
		return
	}
	t.remove(i, Removed)
}

// Clear removes every flow (calling [Config].OnRemove with [Removed] for each). It is the way to
// withdraw every flow-level verdict at once, for example after new rules are loaded.
func (t *Table[V]) Clear() {
	for t.head >= 0 {
		t.remove(t.head, Removed)
	}
}

// All yields the table's flows, the one idle longest first. The table must not change during
// the iteration (no Lookup, Remove, Expire or Clear); to remove flows, collect their keys first.
func (t *Table[V]) All() iter.Seq[*Flow[V]] {
	return func(yield func(*Flow[V]) bool) {
		for i := t.head; i >= 0; i = t.flows[i].next {
			if !yield(&t.flows[i]) {
				return
			}
		}
	}
}

// Expire removes flows idle longer than their timeouts at now, calling [Config].OnRemove with
// [Expired] for each, and returns how many it removed. It examines at most [Config].Sweep flows
// per call, so a handler can call it from its periodic tick at any table size: first the flows
// idle longest, then a cursor that walks the whole table over successive calls (timeouts differ
// by state, so the longest idle is not always the first due).
func (t *Table[V]) Expire(now time.Time) int {
	ns := now.UnixNano()
	budget, removed := t.sweep, 0
	for budget > 0 && t.head >= 0 && t.idle(&t.flows[t.head], ns) {
		t.remove(t.head, Expired)
		budget--
		removed++
	}
	for ; budget > 0; budget-- {
		i := t.cursor
		if t.cursor++; t.cursor == len(t.flows) {
			t.cursor = 0
		}
		if f := &t.flows[i]; f.used && t.idle(f, ns) {
			t.remove(int32(i), Expired)
			removed++
		}
	}
	return removed
}

// hash is the table's keyed hash of k, in the manner of wyhash: the key's five words, each
// XORed with a secret key, are multiplied in pairs (64 x 64 -> 128 bits, halves folded) and
// the results once more. The three products are independent, so the hash costs a few cycles
// of latency, where the five dependent rounds of [Key.HashSeed] cost several times that on
// every frame; and without the keys, which are random per table, collisions cannot be aimed.
func (t *Table[V]) hash(k *Key) uint64 {
	s := &t.seed
	w0 := uint64(k.Addr[0][0])<<32 | uint64(k.Addr[0][1])
	w1 := uint64(k.Addr[0][2])<<32 | uint64(k.Addr[0][3])
	w2 := uint64(k.Addr[1][0])<<32 | uint64(k.Addr[1][1])
	w3 := uint64(k.Addr[1][2])<<32 | uint64(k.Addr[1][3])
	w4 := uint64(k.Port[0])<<48 | uint64(k.Port[1])<<32 | uint64(k.VLAN)<<16 | uint64(k.Proto)<<8 | uint64(k.Family)
	a := mum(w0^s[0], w1^s[1])
	b := mum(w2^s[2], w3^s[3])
	c := mum(w4^s[4], s[5])
	return mum(a^c^s[1], b^s[4])
}

// mum multiplies a and b into 128 bits and folds the halves together.
func mum(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (t *Table[V]) idle(f *Flow[V], ns int64) bool { return ns-f.last > f.timeout }

func (t *Table[V]) find(k *Key, h uint64) int32 {
	// The slot holds the hash's upper half beside the flow's index, so a probe touches a flow
	// only when that half matches, and the slot's home is known without touching it.
	tag := h >> 32
	for pos := tag & t.mask; ; pos = (pos + 1) & t.mask {
		e := t.index[pos]
		if e == 0 {
			return -1
		}
		if e>>32 == tag {
			if i := int32(uint32(e)) - 1; t.flows[i].key == *k {
				return i
			}
		}
	}
}

func (t *Table[V]) insert(k *Key, h uint64, ns int64) int32 {
	if t.free < 0 {
		t.stats.full.Add(1)
		switch {
		case t.idle(&t.flows[t.head], ns):
			t.remove(t.head, Expired)
		case t.noEvict:
			return -1
		default:
			t.remove(t.head, Evicted)
		}
	}
	i := t.free
	f := &t.flows[i]
	t.free = f.next
	*f = Flow[V]{key: *k, hash: h, first: ns, last: ns, used: true}
	pos := (h >> 32) & t.mask
	for t.index[pos] != 0 {
		pos = (pos + 1) & t.mask
	}
	t.index[pos] = h>>32<<32 | uint64(i+1)
	// Append at the most recently seen end.
	f.prev, f.next = t.tail, -1
	if t.tail >= 0 {
		t.flows[t.tail].next = i
	} else {
		t.head = i
	}
	t.tail = i
	t.stats.flows.Add(1)
	t.stats.created.Add(1)
	return i
}

// touch moves flow i to the most recently seen end.
func (t *Table[V]) touch(i int32) {
	if t.tail == i {
		return
	}
	t.unlink(i)
	f := &t.flows[i]
	f.prev, f.next = t.tail, -1
	t.flows[t.tail].next = i
	t.tail = i
}

func (t *Table[V]) unlink(i int32) {
	f := &t.flows[i]
	if f.prev >= 0 {
		t.flows[f.prev].next = f.next
	} else {
		t.head = f.next
	}
	if f.next >= 0 {
		t.flows[f.next].prev = f.prev
	} else {
		t.tail = f.prev
	}
}

func (t *Table[V]) remove(i int32, why Reason) {
	f := &t.flows[i]
	t.unlink(i)
	// Backward-shift deletion keeps linear probing chains unbroken without tombstones.
	pos := (f.hash >> 32) & t.mask
	for uint32(t.index[pos]) != uint32(i+1) {
		pos = (pos + 1) & t.mask
	}
	for next := (pos + 1) & t.mask; ; next = (next + 1) & t.mask {
		e := t.index[next]
		if e == 0 {
			break
		}
		home := (e >> 32) & t.mask
		// Move e back into the hole unless its home lies cyclically in (pos, next].
		if (next-home)&t.mask >= (next-pos)&t.mask {
			t.index[pos] = e
			pos = next
		}
	}
	t.index[pos] = 0
	f.used = false
	f.next = t.free
	t.free = i
	t.stats.flows.Add(-1)
	switch why {
	case Expired:
		t.stats.expired.Add(1)
	case Evicted:
		t.stats.evicted.Add(1)
	default:
		t.stats.removed.Add(1)
	}
	// The table is consistent before user code runs: a callback that panics costs nothing
	// but the release of this flow's State.
	if t.onRemove != nil {
		t.onRemove(f, why)
	}
	*f = Flow[V]{next: f.next} // drop the State's references for the garbage collector
}

// track updates the flow's TCP state and timeout with a frame from endpoint src.
func (t *Table[V]) track(f *Flow[V], p *Packet, src int) {
	class := classOther
	switch {
	case p.Key.Proto == ProtoTCP && p.TCPHeaderLen != 0:
		class = t.trackTCP(f, p.TCPFlags, src)
	case p.Key.Proto == ProtoTCP:
		// A later fragment or a cut header: no flags to learn from.
		class = tcpClass(f.tcp)
		if f.tcp == TCPNone {
			f.tcp = TCPSynSent
			class = classTCPSyn
		}
	case !f.Replied():
		class = classUnreplied
	case p.Key.Proto == ProtoUDP:
		class = classUDP
	case p.Key.Proto == ProtoICMP || p.Key.Proto == ProtoICMPv6:
		class = classICMP
	}
	f.timeout = t.timeouts[class]
}

func (t *Table[V]) trackTCP(f *Flow[V], fl TCPFlags, src int) int {
	other := src ^ 1
	switch {
	case fl&TCPRST != 0:
		f.tcp = TCPClosed
	case fl&(TCPSYN|TCPACK) == TCPSYN:
		f.seen |= seenSyn << src
		if f.tcp == TCPNone || f.tcp == TCPClosed {
			// A SYN opens (or, on a closed flow, reopens) the connection.
			f.tcp = TCPSynSent
			f.client = uint8(src)
			f.seen &^= (seenSynAck | seenFin) * 3
		}
	case fl&(TCPSYN|TCPACK) == TCPSYN|TCPACK:
		f.seen |= seenSynAck << src
		if f.tcp == TCPNone {
			f.client = uint8(other) // picked up at the SYN-ACK
		}
		if f.tcp <= TCPSynSent {
			f.tcp = TCPSynRecv
		}
	default:
		if fl&TCPFIN != 0 {
			f.seen |= seenFin << src
		}
		switch {
		case f.seen&(seenFin|seenFin<<1) == seenFin|seenFin<<1:
			f.tcp = TCPClosed
		case f.seen&(seenFin|seenFin<<1) != 0 && f.tcp != TCPClosed:
			f.tcp = TCPClosing
		case f.tcp == TCPSynRecv && f.seen&(seenSynAck<<other) != 0 && fl&TCPACK != 0:
			f.tcp = TCPEstablished
		case f.tcp == TCPNone:
			f.tcp = TCPSynSent // picked up mid-stream
		case f.tcp == TCPSynSent && f.seen&(seenSyn|seenSyn<<1|seenSynAck|seenSynAck<<1) == 0 && f.Replied():
			f.tcp = TCPEstablished // mid-stream, both ways seen
		}
	}
	return tcpClass(f.tcp)
}

func tcpClass(s TCPState) int {
	switch s {
	case TCPEstablished:
		return classTCPEstablished
	case TCPClosing:
		return classTCPClosing
	case TCPClosed:
		return classTCPClosed
	}
	return classTCPSyn
}
