package peer

import (
	"fmt"
	"github.com/afbridge/afbridge/bypass"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/afbridge/afbridge/verdict"
)

// Counters count one direction of one worker (or their sum). For every direction,
//
//	Received = Forwarded + Dropped + Truncated + Malformed + Oversize + TXErrors
//
// once the worker is idle: every frame taken from the RX ring is accounted for exactly once.
type Counters struct {
	// Received is frames taken from the ingress RX ring (frames the host itself sent out of the
	// port are not received: see Outgoing).
	Received uint64
	// Bytes is the wire length of the Received frames added up (without the VLAN tag the kernel
	// stripped), for bit rates.
	Bytes uint64
	// Forwarded is frames handed to the egress TX ring and accepted by the kernel.
	Forwarded uint64
	// Dropped is frames the verdict dropped in ips mode, including fail-closed panics.
	Dropped uint64
	// Bypassed is frames whose verdict was verdict.Bypass. The bridge forwards them as it does on
	// Pass: they are part of Forwarded (or of TXErrors, if sending failed), and this counter says
	// how many there were. The later frames of their flows that the kernel fast path forwards
	// never reach the bridge and are not counted here but in Stats.Bypass.
	Bypassed uint64
	// WouldDrop is frames the verdict dropped in tap mode; they were forwarded all the same.
	WouldDrop uint64
	// Truncated is frames captured shorter than they were on the wire; they are never sent.
	Truncated uint64
	// Malformed is frames shorter than an Ethernet header, or whose unfinished checksum could not
	// be completed.
	Malformed uint64
	// Oversize is frames too large for the egress MTU that could be neither segmented nor
	// fragmented.
	Oversize uint64
	// Fragments is IPv4 fragments sent for reassembled datagrams larger than the egress MTU
	// (each such datagram counts once in Forwarded).
	Fragments uint64
	// TXErrors is frames that could not be sent: the kernel refused them (for example
	// EMSGSIZE), the egress port was down or gone (the frames committed to its TX ring are
	// taken back rather than sent late), or the kernel took none of them for a second.
	TXErrors uint64
	// TXRingFull counts the times the egress TX ring had no free slot; the frames waited in
	// the RX ring meanwhile, so this is backpressure, not loss.
	TXRingFull uint64
	// FlushErrors counts failed flushes (ENOBUFS, ENETDOWN, ...); the frames stay queued and are
	// retried.
	FlushErrors uint64
	// Panics counts Handle calls that panicked or returned a value that is not a Verdict
	// constant; the failure policy (Config.OnPanic) decided those frames. Tick calls that panicked
	// are counted too, in the A->B counters.
	Panics uint64
	// PortDown is frames the link policy (Config.OnLinkDown) kept from being forwarded because a
	// port was down; each is also counted in Dropped (FailClosed) or TXErrors (FailOpen, the
	// egress port down).
	PortDown uint64
	// Outgoing is frames the host itself sent out of the ingress port, which are never bridged.
	Outgoing uint64
	// KernelPackets, KernelDrops and Freezes are the ingress sockets' PACKET_STATISTICS:
	// frames the kernel handed to the RX ring (drops included), frames lost because the ring was
	// full, and V3 queue freezes.
	KernelPackets, KernelDrops, Freezes uint64
}

// nCounters is the number of fields of Counters, all uint64: add, store, load and String walk
// Counters as an array, so the struct's field list is the only list of the counters.
const nCounters = int(unsafe.Sizeof(Counters{}) / 8)

// counterNames are the names String prints, in field order; a test checks them against the
// struct.
var counterNames = [nCounters]string{"received", "bytes", "forwarded", "dropped", "bypassed",
	"would_drop", "truncated", "malformed", "oversize", "fragments", "tx_errors", "tx_ring_full",
	"flush_errors", "panics", "port_down", "outgoing", "kernel_packets", "kernel_drops", "freezes"}

func (c *Counters) array() *[nCounters]uint64 { return (*[nCounters]uint64)(unsafe.Pointer(c)) }

func (c *Counters) add(o *Counters) {
	a, b := c.array(), o.array()
	for i := range a {
		a[i] += b[i]
	}
}

// Sub returns c minus earlier, field by field: the counts between two snapshots, for rates.
func (c Counters) Sub(earlier Counters) Counters {
	a, b := c.array(), earlier.array()
	for i := range a {
		a[i] -= b[i]
	}
	return c
}

// String lists the non-zero counters as name=value, in field order, or returns "0".
func (c Counters) String() string {
	var sb strings.Builder
	for i, v := range c.array() {
		if v == 0 {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "%s=%d", counterNames[i], v)
	}
	if sb.Len() == 0 {
		return "0"
	}
	return sb.String()
}

// Stats is a snapshot of a bridge's counters. Counters are indexed by [verdict.Direction]
// everywhere; the ports have names.
type Stats struct {
	// Time is when the snapshot was taken; the difference of two snapshots' Counters over the
	// difference of their Times is a rate (see [Counters.Sub]).
	Time time.Time
	// Workers holds each worker's counters, Workers[i][d] for worker i and direction d. Its
	// length is the bridge's worker count, from New on.
	Workers [][2]Counters
	// Total sums the workers, per direction.
	Total [2]Counters
	// A and B are the state of the two interfaces.
	A, B Port
	// BypassActive reports whether the kernel fast path runs (Config.Bypass.Enable, and the
	// kernel allowed it); Bypass holds its counters, Frames and Bytes indexed by ingress side as
	// Total is by direction. Frames it forwarded never reached a worker: they are in no Counters.
	BypassActive bool
	Bypass       bypass.Stats
}

// Port is the state and link history of one bridged interface since Start.
type Port struct {
	// Name is the interface's name, which the bridge follows: Index is the ifindex its sockets
	// are bound to, which changes when the interface is re-created under the same name.
	Name  string
	Index int
	// Up reports whether the link was up, administratively and operationally (IFF_UP and
	// IFF_RUNNING), when last checked; false while the interface is missing.
	Up bool
	// Downs and Ups count the link going down and coming back.
	Downs, Ups uint64
	// Removals counts the interface disappearing (or being replaced under its name); Rebinds
	// counts the bridge binding to a new ifindex of that name.
	Removals, Rebinds uint64
}

// Dir returns the total for one direction.
func (s Stats) Dir(d verdict.Direction) Counters { return s.Total[d] }

// published holds a worker's counters for other goroutines: the worker counts in a plain local
// Counters and stores the values here once per batch, so the hot path has no atomic
// read-modify-write and no lock, and readers still see consistent per-field values.
type published [nCounters]atomic.Uint64

func (p *published) store(c *Counters) {
	for i, v := range c.array() {
		p[i].Store(v)
	}
}

func (p *published) load() Counters {
	var c Counters
	a := c.array()
	for i := range a {
		a[i] = p[i].Load()
	}
	return c
}
