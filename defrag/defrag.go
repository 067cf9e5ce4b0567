package defrag

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/afbridge/afbridge/internal/bitnames"
)

// Policy chooses whose bytes win where two fragments overlap. The policies model the targets
// Suricata and Snort's frag3 name; each is decided per overlapping range between the fragment
// that holds the range now (old) and the one arriving (new):
//
//   - [First]: old always wins.
//   - [Last]: new always wins.
//   - [BSD]: new wins when it starts before old.
//   - [Linux]: new wins when it starts before or where old starts.
//   - [Windows]: new wins when it starts before old and ends after it.
//   - [Solaris]: new wins when it starts before old and ends where or after it ends.
//
// Whatever the policy, an overlap whose bytes differ is reported as [OverlapDiffers]: no policy
// matches every receiver, so an IPS should drop such a fragment (the default [Config.DropOn]).
type Policy uint8

// The overlap policies; the zero Policy is invalid on purpose and [Config.Policy] zero means [BSD].
const (
	BSD Policy = iota + 1
	First
	Last
	Linux
	Windows
	Solaris
)

var policyNames = [...]string{BSD: "bsd", First: "first", Last: "last", Linux: "linux", Windows: "windows", Solaris: "solaris"}

// String is the policy's lower-case name, as [ParsePolicy] accepts it.
func (p Policy) String() string {
	if int(p) < len(policyNames) && policyNames[p] != "" {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// ParsePolicy returns the [Policy] named s ("bsd", "first", "last", "linux", "windows",
// "solaris"; case-insensitive).
func ParsePolicy(s string) (Policy, error) {
	for p, n := range policyNames {
		if n != "" && strings.EqualFold(n, s) {
			return Policy(p), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown policy %q (want one of bsd, first, last, linux, windows, solaris)", ErrConfig, s)
}

// newWins reports whether the arriving fragment [ns, ne) takes the overlapping bytes from the
// fragment [os, oe) that holds them.
func (p Policy) newWins(os, oe, ns, ne int32) bool {
	switch p {
	case First:
		return false
	case Last:
		return true
	case Linux:
		return ns <= os
	case Windows:
		return ns < os && ne > oe
	case Solaris:
		return ns < os && ne >= oe
	default: // BSD
		return ns < os
	}
}

// Anomaly is a set of things wrong with a fragment or its datagram. Each bit is counted in
// [Counters]; the bits in [Config.DropOn] set [Result.Drop].
type Anomaly uint32

// The anomalies. Those marked sticky stay with the datagram: every later fragment of it reports
// them too, so dropping one fragment of an evasive datagram drops all that follow.
const (
	// Overlap: the fragment overlaps bytes already held, with the same bytes (a duplicate).
	Overlap Anomaly = 1 << iota
	// OverlapDiffers: the fragment overlaps bytes already held with different bytes (sticky).
	OverlapDiffers
	// TinyFragment: a fragment that is not the last is shorter than [Config.MinFragment].
	TinyFragment
	// TinyFirst: the first fragment does not hold the whole transport header (sticky).
	TinyFirst
	// Malformed: lengths that contradict each other or the packet, an empty fragment, a
	// non-last fragment whose length is not a multiple of 8, or two different ends (sticky; the
	// datagram is abandoned).
	Malformed
	// TooLarge: the datagram would exceed 65,535 bytes (sticky; abandoned).
	TooLarge
	// TooManyFragments: more than [Config.MaxFragments] fragments, or too scattered to track
	// (sticky; abandoned).
	TooManyFragments
	// TableFull: [Config.MaxDatagrams] datagrams are in progress; the fragment is not held.
	TableFull
	// NoMemory: [Config.MaxMemory] is used up; the datagram is abandoned (sticky).
	NoMemory
	// HeaderTooLong: an IPv6 extension-header chain longer than [MaxExtHeaders] headers, or an
	// unfragmentable part longer than [MaxHeader] bytes; the packet cannot be inspected.
	HeaderTooLong
)

// NoDrop in [Config.DropOn] means no anomaly sets [Result.Drop].
const NoDrop Anomaly = 1 << 31

// DefaultDropOn is what [Config.DropOn] zero means: every anomaly but a harmless duplicate.
const DefaultDropOn = OverlapDiffers | TinyFragment | TinyFirst | Malformed | TooLarge |
	TooManyFragments | TableFull | NoMemory | HeaderTooLong

const sticky = OverlapDiffers | TinyFirst | Malformed | TooLarge | TooManyFragments | NoMemory

var anomalyNames = [...]string{"overlap", "overlap-differs", "tiny-fragment", "tiny-first",
	"malformed", "too-large", "too-many-fragments", "table-full", "no-memory", "header-too-long"}

// String lists the set bits' names joined by "|", or "none".
func (a Anomaly) String() string {
	s := bitnames.Join(uint64(a&^NoDrop), anomalyNames[:]...)
	switch {
	case a&NoDrop == 0:
		return s
	case s == "none":
		return "no-drop"
	}
	return s + "|no-drop"
}

// Status says what became of a packet handed to [Reassembler.Packet] or [Reassembler.Frame].
type Status uint8

const (
	// NotFragment: not an IP fragment (or not IP); inspect the packet as it is.
	NotFragment Status = iota
	// Held: a fragment of a datagram still incomplete, copied. Forward it unless [Result.Drop].
	Held
	// Complete: this fragment completes its datagram (or repeats a fragment of a datagram
	// already complete); [Result.Datagram] holds the datagram. Judge the fragment by it.
	Complete
	// Unusable: the fragment is not held (see [Result.Anomalies]); its datagram cannot be
	// inspected, so [Result.Drop] is set unless [Config.DropOn] says otherwise.
	Unusable
)

var statusNames = [...]string{"not-fragment", "held", "complete", "unusable"}

// String is the status's name.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", uint8(s))
}

// Result is what [Reassembler.Packet] reports for one packet.
type Result struct {
	Status Status
	// Datagram, when Status is [Complete], is the reassembled IP datagram: the first
	// fragment's header made whole (IPv4: total length, flags and checksum fixed; IPv6: payload
	// length fixed and the fragment header removed) and the payload. It is only valid until the
	// next call on the Reassembler; it is for inspection, never for forwarding.
	Datagram []byte
	// Anomalies found in this fragment, plus the datagram's sticky ones.
	Anomalies Anomaly
	// Drop is Anomalies & Config.DropOn != 0: the caller should drop this fragment.
	Drop bool
}

// Limits that are not configurable.
const (
	// MaxExtHeaders is how many IPv6 extension headers (hop-by-hop, routing, destination
	// options) are walked before a fragment header; a longer chain is [HeaderTooLong].
	MaxExtHeaders = 16
	// MaxHeader is the longest IP header (IPv4 with options, or IPv6 with its unfragmentable
	// extension headers) a reassembled datagram keeps; longer is [HeaderTooLong].
	MaxHeader = 256
	// maxPayload is the largest reassembled payload.
	maxPayload = 65535
)

// ErrConfig is wrapped by every error [New] returns for a bad [Config].
var ErrConfig = errors.New("defrag: invalid config")

// Config sets a [Reassembler]'s policy and limits. Every zero value means the default given.
type Config struct {
	// Policy resolves overlaps; zero: [BSD] (Suricata's default).
	Policy Policy
	// DropOn is the anomalies that set [Result.Drop]; zero: [DefaultDropOn]; [NoDrop]: none.
	DropOn Anomaly
	// MaxDatagrams is how many datagrams may be in progress (or remembered as complete) at
	// once; zero: 1024.
	MaxDatagrams int
	// MaxFragments is how many fragments one datagram may have; zero: 64 (a 64 KiB datagram
	// over a 1,280-byte MTU needs 52).
	MaxFragments int
	// MaxMemory bounds the bytes of reassembly buffers, in use or kept for reuse; zero: 8 MiB.
	// It must hold at least one largest buffer (about 64 KiB).
	MaxMemory int
	// Timeout is how long a datagram is kept from its first fragment on, incomplete or
	// complete; zero: 60 s. Keep it at least as long as the receivers' (Linux: 30 s, Windows:
	// 60 s), or an attacker waits it out and sends the completing fragment to a receiver that
	// still holds the rest. A complete datagram is remembered so that a repeated completing
	// fragment is judged with it again.
	Timeout time.Duration
	// MinFragment is the smallest payload, in bytes, of a fragment that is not the last;
	// shorter is [TinyFragment]. Zero: 128; negative: no check.
	MinFragment int
}

func (c *Config) resolve() (Config, error) {
	var r Config
	if c != nil {
		r = *c
	}
	if r.Policy == 0 {
		r.Policy = BSD
	}
	if int(r.Policy) >= len(policyNames) {
		return r, fmt.Errorf("%w: Policy %d is not one of the defined policies (BSD ... Solaris)", ErrConfig, r.Policy)
	}
	if r.DropOn == 0 {
		r.DropOn = DefaultDropOn
	}
	if r.DropOn&NoDrop != 0 {
		r.DropOn = 0
	}
	def := func(name string, v *int, d int) error {
		if *v < 0 {
			return fmt.Errorf("%w: %s is %d; use 0 for the default (%d) or a positive number", ErrConfig, name, *v, d)
		}
		if *v == 0 {
			*v = d
		}
		return nil
	}
	if err := def("MaxDatagrams", &r.MaxDatagrams, 1024); err != nil {
		return r, err
	}
	if err := def("MaxFragments", &r.MaxFragments, 64); err != nil {
		return r, err
	}
	if err := def("MaxMemory", &r.MaxMemory, 8<<20); err != nil {
		return r, err
	}
	if r.MaxDatagrams > 1<<20 {
		return r, fmt.Errorf("%w: MaxDatagrams %d is over the limit of %d", ErrConfig, r.MaxDatagrams, 1<<20)
	}
	if r.MaxFragments > 8192 {
		return r, fmt.Errorf("%w: MaxFragments %d is over 8192, the most a datagram can have", ErrConfig, r.MaxFragments)
	}
	if r.MaxMemory < classSize[len(classSize)-1] {
		return r, fmt.Errorf("%w: MaxMemory %d cannot hold one largest datagram; use at least %d", ErrConfig, r.MaxMemory, classSize[len(classSize)-1])
	}
	if r.Timeout < 0 {
		return r, fmt.Errorf("%w: Timeout %v is negative; use 0 for the default (60s)", ErrConfig, r.Timeout)
	}
	if r.Timeout == 0 {
		r.Timeout = 60 * time.Second
	}
	if r.MinFragment == 0 {
		r.MinFragment = 128
	}
	return r, nil
}

// Counters are a Reassembler's totals since [New].
type Counters struct {
	Fragments uint64 // fragments handed in (IPv4 and IPv6, atomic IPv6 fragments included)
	Datagrams uint64 // datagrams completed
	Expired   uint64 // datagrams that timed out incomplete
	Reclaimed uint64 // complete datagrams forgotten early to make room
	// Anomalies counts fragments by anomaly, indexed by bit number (Overlap is 0).
	Anomalies [10]uint64
}

// Anomaly returns the count of fragments that had anomaly a (a single bit).
func (c Counters) Anomaly(a Anomaly) uint64 {
	i := bits.TrailingZeros32(uint32(a))
	if i >= len(c.Anomalies) {
		return 0
	}
	return c.Anomalies[i]
}

// buffer classes: payload capacity, each buffer has MaxHeader bytes of room before it.
var classSize = [...]int{MaxHeader + 2048, MaxHeader + 16384, MaxHeader + maxPayload}

type key struct {
	src, dst [16]byte
	id       uint32
	vlan     uint16
	proto    uint8 // IPv4 only
	family   uint8
}

type state uint8

const (
	stFree state = iota
	stActive
	stComplete
	stFailed
)

// seg is a range of payload [start, end) and the fragment [os, oe) whose bytes it holds.
type seg struct{ start, end, os, oe int32 }

type tracker struct {
	key      key
	hash     uint64
	deadline int64
	prev     int32 // creation order, for expiry
	next     int32
	state    state
	class    int8
	sticky   Anomaly
	buf      []byte // nil, or MaxHeader + payload capacity
	hdrLen   int32  // 0 until the first fragment came
	nhOff    int32  // IPv6: offset in the header of the next-header byte to rewrite
	nh       uint8  // IPv6: the fragment header's next header
	total    int32  // payload length once the last fragment came, else -1
	maxEnd   int32
	covered  int32
	nfrags   int32
	segs     []seg
}

// Reassembler reassembles the fragments one worker sees. It is not safe for concurrent use:
// give each worker its own (both directions of a flow meet on one worker).
type Reassembler struct {
	cfg      Config
	trk      []tracker
	free     []int32
	slots    []int32 // open addressing: tracker index + 1, 0 empty
	head     int32   // oldest tracker, -1 none
	tail     int32
	used     int
	seed     uint64
	pool     [len(classSize)][][]byte
	mem      int
	scratch  []seg
	atomic   []byte // IPv6 atomic fragments are rebuilt here
	segLimit int
	c        Counters
}

// New returns a Reassembler with cfg's policy and limits (nil: the defaults). Its tables and a
// 64 KiB buffer for IPv6 atomic fragments are allocated now; reassembly buffers are allocated
// as datagrams need them, up to MaxMemory, and reused.
func New(cfg *Config) (*Reassembler, error) {
	c, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	n := 1
	for n < 2*c.MaxDatagrams {
		n <<= 1
	}
	r := &Reassembler{
		cfg:      c,
		trk:      make([]tracker, c.MaxDatagrams),
		free:     make([]int32, c.MaxDatagrams),
		slots:    make([]int32, n),
		head:     -1,
		tail:     -1,
		seed:     uint64(time.Now().UnixNano())*0x9e3779b97f4a7c15 | 1,
		segLimit: 4*c.MaxFragments + 4,
		atomic:   make([]byte, MaxHeader+maxPayload),
	}
	r.scratch = make([]seg, 0, r.segLimit+8)
	for i := range r.free {
		r.free[i] = int32(c.MaxDatagrams - 1 - i)
	}
	return r, nil
}

// Counters returns the totals so far.
func (r *Reassembler) Counters() Counters { return r.c }

// Len is the number of datagrams tracked: in progress, complete and remembered, or abandoned.
func (r *Reassembler) Len() int { return r.used }

// Memory is the bytes of reassembly buffers allocated, in use or kept for reuse.
func (r *Reassembler) Memory() int { return r.mem }

// Expire forgets every datagram whose time is up at now and returns how many it forgot. Every
// other call expires too; call Expire when no packets come.
func (r *Reassembler) Expire(now time.Time) int {
	return r.expire(now.UnixNano())
}

func (r *Reassembler) expire(now int64) int {
	n := 0
	for r.head >= 0 && now >= r.trk[r.head].deadline {
		if r.trk[r.head].state == stActive {
			r.c.Expired++
		}
		r.release(r.head)
		n++
	}
	return n
}

// Frame is [Reassembler.Packet] for an Ethernet frame: it skips up to two VLAN tags (802.1Q or
// 802.1ad; the outer one's ID keys the datagram) and hands the IP packet on. A frame that is not
// IPv4 or IPv6 is [NotFragment].
func (r *Reassembler) Frame(frame []byte, now time.Time) Result {
	if len(frame) < 14 {
		return Result{}
	}
	et := binary.BigEndian.Uint16(frame[12:14])
	off := 14
	var vlan uint16
	for i := 0; i < 2 && (et == 0x8100 || et == 0x88a8); i++ {
		if len(frame) < off+4 {
			return Result{}
		}
		if i == 0 {
			vlan = binary.BigEndian.Uint16(frame[off:]) & 0x0fff
		}
		et = binary.BigEndian.Uint16(frame[off+2:])
		off += 4
	}
	if et != 0x0800 && et != 0x86dd {
		return Result{}
	}
	return r.Packet(frame[off:], vlan, now)
}

// Packet takes one IP packet (IPv4 or IPv6, from its first header byte; trailing link padding is
// ignored) and the outer VLAN ID it came with (0 untagged). A fragment is copied into the
// Reassembler's buffers; nothing refers to pkt after the call.
func (r *Reassembler) Packet(pkt []byte, vlan uint16, now time.Time) Result {
	if len(pkt) == 0 {
		return Result{}
	}
	switch pkt[0] >> 4 {
	case 4:
		return r.v4(pkt, vlan, now)
	case 6:
		return r.v6(pkt, vlan, now)
	}
	return Result{}
}

func (r *Reassembler) v4(pkt []byte, vlan uint16, now time.Time) Result {
	if len(pkt) < 20 {
		return Result{}
	}
	hl := int(pkt[0]&0x0f) * 4
	if hl < 20 || hl > len(pkt) {
		return Result{}
	}
	fo := binary.BigEndian.Uint16(pkt[6:8])
	more := fo&0x2000 != 0
	off := int(fo&0x1fff) * 8
	if !more && off == 0 {
		return Result{}
	}
	r.c.Fragments++
	tot := int(binary.BigEndian.Uint16(pkt[2:4]))
	if tot <= hl || tot > len(pkt) {
		return r.result(Unusable, nil, Malformed)
	}
	var k key
	copy(k.src[:], pkt[12:16])
	copy(k.dst[:], pkt[16:20])
	k.id = uint32(binary.BigEndian.Uint16(pkt[4:6]))
	k.vlan = vlan
	k.proto = pkt[9]
	k.family = 4
	return r.add(&k, now, pkt[:hl], 0, pkt[hl:tot], off, more, minTransport(pkt[9]))
}

func (r *Reassembler) v6(pkt []byte, vlan uint16, now time.Time) Result {
	if len(pkt) < 40 {
		return Result{}
	}
	nh := pkt[6]
	pos, nhOff := 40, 6
	for i := 0; ; i++ {
		switch nh {
		case 0, 43, 60:
		case 44:
			goto frag
		default:
			return Result{}
		}
		if i == MaxExtHeaders {
			return r.result(Unusable, nil, HeaderTooLong)
		}
		if len(pkt) < pos+2 {
			return Result{}
		}
		nhOff = pos
		nh = pkt[pos]
		pos += (int(pkt[pos+1]) + 1) * 8
	}
frag:
	if len(pkt) < pos+8 {
		return Result{}
	}
	r.c.Fragments++
	plen := int(binary.BigEndian.Uint16(pkt[4:6]))
	if plen == 0 || 40+plen > len(pkt) || pos+8 >= 40+plen {
		return r.result(Unusable, nil, Malformed)
	}
	if pos > MaxHeader {
		return r.result(Unusable, nil, HeaderTooLong)
	}
	fnh := pkt[pos]
	fo := binary.BigEndian.Uint16(pkt[pos+2:])
	off := int(fo &^ 7)
	more := fo&1 != 0
	data := pkt[pos+8 : 40+plen]
	if off == 0 && !more {
		// An atomic fragment (RFC 6946) is a datagram by itself.
		d := r.atomic[:pos+len(data)]
		copy(d, pkt[:pos])
		copy(d[pos:], data)
		d[nhOff] = fnh
		binary.BigEndian.PutUint16(d[4:6], uint16(pos-40+len(data)))
		r.c.Datagrams++
		return r.result(Complete, d, 0)
	}
	var k key
	copy(k.src[:], pkt[8:24])
	copy(k.dst[:], pkt[24:40])
	k.id = binary.BigEndian.Uint32(pkt[pos+4:])
	k.vlan = vlan
	k.family = 6
	return r.add(&k, now, pkt[:pos], int32(nhOff)|int32(fnh)<<16, data, off, more, minTransport(fnh))
}

// minTransport is how many bytes of the upper-layer header the first fragment must hold.
func minTransport(proto uint8) int {
	switch proto {
	case 6:
		return 20
	case 17, 1, 58, 0, 43, 60:
		return 8
	case 132:
		return 12
	}
	return 0
}

func (r *Reassembler) result(s Status, d []byte, a Anomaly) Result {
	for m := uint32(a) & (1<<len(anomalyNames) - 1); m != 0; m &= m - 1 {
		r.c.Anomalies[bits.TrailingZeros32(m)]++
	}
	return Result{Status: s, Datagram: d, Anomalies: a, Drop: a&r.cfg.DropOn != 0}
}

func (r *Reassembler) hash(k *key) uint64 {
	h := r.seed
	w := func(v uint64) { h = (h ^ v) * 0xff51afd7ed558ccd; h ^= h >> 32 }
	w(binary.LittleEndian.Uint64(k.src[0:]))
	w(binary.LittleEndian.Uint64(k.src[8:]))
	w(binary.LittleEndian.Uint64(k.dst[0:]))
	w(binary.LittleEndian.Uint64(k.dst[8:]))
	w(uint64(k.id) | uint64(k.vlan)<<32 | uint64(k.proto)<<48 | uint64(k.family)<<56)
	return h
}

func (r *Reassembler) find(k *key, h uint64) int32 {
	m := uint64(len(r.slots) - 1)
	for i := h & m; ; i = (i + 1) & m {
		s := r.slots[i]
		if s == 0 {
			return -1
		}
		if t := &r.trk[s-1]; t.hash == h && t.key == *k {
			return s - 1
		}
	}
}

func (r *Reassembler) insert(idx int32) {
	m := uint64(len(r.slots) - 1)
	for i := r.trk[idx].hash & m; ; i = (i + 1) & m {
		if r.slots[i] == 0 {
			r.slots[i] = idx + 1
			return
		}
	}
}

func (r *Reassembler) unlink(idx int32) {
	m := uint64(len(r.slots) - 1)
	i := r.trk[idx].hash & m
	for r.slots[i] != idx+1 {
		i = (i + 1) & m
	}
	// Backward-shift deletion keeps every probe chain unbroken without tombstones.
	j := i
	for {
		j = (j + 1) & m
		s := r.slots[j]
		if s == 0 {
			break
		}
		home := r.trk[s-1].hash & m
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			r.slots[i] = s
			i = j
		}
	}
	r.slots[i] = 0
}

// release forgets tracker idx and returns its buffer to the pool.
func (r *Reassembler) release(idx int32) {
	t := &r.trk[idx]
	r.unlink(idx)
	if t.prev >= 0 {
		r.trk[t.prev].next = t.next
	} else {
		r.head = t.next
	}
	if t.next >= 0 {
		r.trk[t.next].prev = t.prev
	} else {
		r.tail = t.prev
	}
	if t.buf != nil {
		r.pool[t.class] = append(r.pool[t.class], t.buf)
	}
	segs := t.segs[:0]
	*t = tracker{segs: segs}
	r.free = append(r.free, idx)
	r.used--
}

func (r *Reassembler) create(k *key, h uint64, now time.Time) int32 {
	if len(r.free) == 0 && !r.reclaimOne() {
		return -1
	}
	idx := r.free[len(r.free)-1]
	r.free = r.free[:len(r.free)-1]
	r.used++
	t := &r.trk[idx]
	t.key = *k
	t.hash = h
	t.deadline = now.UnixNano() + int64(r.cfg.Timeout)
	t.state = stActive
	t.total = -1
	t.class = -1
	if t.segs == nil {
		t.segs = make([]seg, 0, r.segLimit)
	}
	t.prev, t.next = r.tail, -1
	if r.tail >= 0 {
		r.trk[r.tail].next = idx
	} else {
		r.head = idx
	}
	r.tail = idx
	r.insert(idx)
	return idx
}

// reclaimOne forgets the oldest complete datagram, if there is one.
func (r *Reassembler) reclaimOne() bool {
	for i := r.head; i >= 0; i = r.trk[i].next {
		if r.trk[i].state == stComplete {
			r.release(i)
			r.c.Reclaimed++
			return true
		}
	}
	return false
}

// buffer returns a buffer of class c, within MaxMemory, or nil.
func (r *Reassembler) buffer(c int) []byte {
	for {
		if p := r.pool[c]; len(p) > 0 {
			b := p[len(p)-1]
			r.pool[c] = p[:len(p)-1]
			return b
		}
		if r.mem+classSize[c] <= r.cfg.MaxMemory {
			r.mem += classSize[c]
			return make([]byte, classSize[c])
		}
		freed := false
		for o := range r.pool {
			if o != c && len(r.pool[o]) > 0 {
				r.mem -= classSize[o]
				r.pool[o][len(r.pool[o])-1] = nil
				r.pool[o] = r.pool[o][:len(r.pool[o])-1]
				freed = true
				break
			}
		}
		if !freed && !r.reclaimOne() {
			return nil
		}
	}
}

func classFor(n int) int {
	for c, s := range classSize {
		if n <= s-MaxHeader {
			return c
		}
	}
	return -1
}

// add puts one fragment (payload data at offset off) into its datagram's tracker.
// For IPv6, v6 carries the next-header offset (low 16 bits) and value (bits 16-23).
func (r *Reassembler) add(k *key, now time.Time, hdr []byte, v6 int32, data []byte, off int, more bool, need int) Result {
	ns := now.UnixNano()
	r.expire(ns)
	var a Anomaly
	end := off + len(data)
	if more && len(data)%8 != 0 {
		a |= Malformed
	}
	if end > maxPayload {
		a |= TooLarge
	}
	if more && r.cfg.MinFragment > 0 && len(data) < r.cfg.MinFragment {
		a |= TinyFragment
	}
	if off == 0 && len(data) < need {
		a |= TinyFirst
	}
	h := r.hash(k)
	idx := r.find(k, h)
	if idx < 0 {
		if idx = r.create(k, h, now); idx < 0 {
			return r.result(Unusable, nil, a|TableFull)
		}
	}
	t := &r.trk[idx]
	switch t.state {
	case stFailed:
		return r.result(Unusable, nil, a|t.sticky)
	case stComplete:
		return r.repeat(t, data, off, a)
	}
	t.nfrags++
	if t.nfrags > int32(r.cfg.MaxFragments) {
		a |= TooManyFragments
	}
	e32, o32 := int32(end), int32(off)
	if !more {
		if (t.total >= 0 && t.total != e32) || e32 < t.maxEnd {
			a |= Malformed
		}
	} else if t.total >= 0 && e32 > t.total {
		a |= Malformed
	}
	if a&(Malformed|TooLarge|TooManyFragments) != 0 {
		return r.fail(t, a)
	}
	// Make room for the payload up to end (or the known total).
	want := end
	if t.total > e32 {
		want = int(t.total)
	}
	if t.buf == nil || len(t.buf)-MaxHeader < want {
		c := classFor(want)
		b := r.buffer(c)
		if b == nil {
			return r.fail(t, a|NoMemory)
		}
		if t.buf != nil {
			copy(b, t.buf[:MaxHeader+int(t.maxEnd)])
			r.pool[t.class] = append(r.pool[t.class], t.buf)
		}
		t.buf, t.class = b, int8(c)
	}
	pay := t.buf[MaxHeader:]
	// Merge the fragment into the owned ranges, resolving overlaps by the policy.
	out := r.scratch[:0]
	cur := o32
	put := func(s seg) {
		if n := len(out); n > 0 && out[n-1].end == s.start && out[n-1].os == s.os && out[n-1].oe == s.oe {
			out[n-1].end = s.end
			return
		}
		out = append(out, s)
	}
	fresh := func(to int32) {
		copy(pay[cur:to], data[cur-o32:to-o32])
		t.covered += to - cur
		put(seg{cur, to, o32, e32})
		cur = to
	}
	for _, s := range t.segs {
		if s.end <= o32 || s.start >= e32 {
			if s.start >= e32 && cur < e32 {
				fresh(e32)
			}
			put(s)
			continue
		}
		lo, hi := max(s.start, o32), min(s.end, e32)
		if cur < lo {
			fresh(lo)
		}
		if s.start < lo {
			put(seg{s.start, lo, s.os, s.oe})
		}
		a |= Overlap
		if !bytes.Equal(pay[lo:hi], data[lo-o32:hi-o32]) {
			a |= OverlapDiffers
		}
		if r.cfg.Policy.newWins(s.os, s.oe, o32, e32) {
			copy(pay[lo:hi], data[lo-o32:hi-o32])
			put(seg{lo, hi, o32, e32})
		} else {
			put(seg{lo, hi, s.os, s.oe})
		}
		cur = hi
		if s.end > hi {
			put(seg{hi, s.end, s.os, s.oe})
		}
		if len(out) > r.segLimit {
			break
		}
	}
	if cur < e32 {
		fresh(e32)
	}
	if len(out) > r.segLimit {
		return r.fail(t, a|TooManyFragments)
	}
	t.segs = append(t.segs[:0], out...)
	r.scratch = out[:0]
	if off == 0 && t.hdrLen == 0 {
		copy(t.buf[MaxHeader-len(hdr):MaxHeader], hdr)
		t.hdrLen = int32(len(hdr))
		t.nhOff, t.nh = v6&0xffff, uint8(v6>>16)
	}
	if e32 > t.maxEnd {
		t.maxEnd = e32
	}
	if !more {
		t.total = e32
	}
	t.sticky |= a & sticky
	a |= t.sticky
	if t.total < 0 || t.covered != t.total {
		return r.result(Held, nil, a)
	}
	d := r.datagram(t)
	if d == nil {
		return r.fail(t, a|TooLarge)
	}
	t.state = stComplete
	r.c.Datagrams++
	return r.result(Complete, d, a)
}

// repeat handles a fragment of a datagram already complete: identical bytes get the datagram
// again, to be judged again; different bytes are an overlap that differs.
func (r *Reassembler) repeat(t *tracker, data []byte, off int, a Anomaly) Result {
	end := off + len(data)
	if end > int(t.total) {
		a |= Malformed
	} else {
		a |= Overlap
		if !bytes.Equal(t.buf[MaxHeader+off:MaxHeader+end], data) {
			a |= OverlapDiffers
		}
	}
	t.sticky |= a & sticky
	return r.result(Complete, r.datagram(t), a|t.sticky)
}

// fail abandons t's datagram: its buffer goes back to the pool and every later fragment of it
// reports a (sticky) until the datagram times out.
func (r *Reassembler) fail(t *tracker, a Anomaly) Result {
	t.sticky |= a & sticky
	t.state = stFailed
	if t.buf != nil {
		r.pool[t.class] = append(r.pool[t.class], t.buf)
		t.buf = nil
	}
	t.segs = t.segs[:0]
	return r.result(Unusable, nil, a|t.sticky)
}

// datagram writes the whole header in front of t's payload and returns header and payload, or
// nil when the datagram would exceed 65,535 bytes.
func (r *Reassembler) datagram(t *tracker) []byte {
	hl := int(t.hdrLen)
	total := int(t.total)
	h := t.buf[MaxHeader-hl : MaxHeader]
	if t.key.family == 4 {
		if hl+total > 65535 {
			return nil
		}
		binary.BigEndian.PutUint16(h[2:4], uint16(hl+total))
		binary.BigEndian.PutUint16(h[6:8], binary.BigEndian.Uint16(h[6:8])&0xc000)
		h[10], h[11] = 0, 0
		binary.BigEndian.PutUint16(h[10:12], checksum(h))
	} else {
		if hl-40+total > 65535 {
			return nil
		}
		binary.BigEndian.PutUint16(h[4:6], uint16(hl-40+total))
		h[t.nhOff] = t.nh
	}
	return t.buf[MaxHeader-hl : MaxHeader+total]
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
