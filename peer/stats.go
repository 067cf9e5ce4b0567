package peer

import (
	"sync/atomic"

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
	// Panics counts verdicts that panicked; the failure policy decided those frames.
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

func (c *Counters) add(o *Counters) {
	c.Received += o.Received
	c.Bytes += o.Bytes
	c.Forwarded += o.Forwarded
	c.Dropped += o.Dropped
	c.WouldDrop += o.WouldDrop
	c.Truncated += o.Truncated
	c.Malformed += o.Malformed
	c.Oversize += o.Oversize
	c.Fragments += o.Fragments
	c.TXErrors += o.TXErrors
	c.TXRingFull += o.TXRingFull
	c.FlushErrors += o.FlushErrors
	c.Panics += o.Panics
	c.PortDown += o.PortDown
	c.Outgoing += o.Outgoing
	c.KernelPackets += o.KernelPackets
	c.KernelDrops += o.KernelDrops
	c.Freezes += o.Freezes
}

// Stats is a snapshot of a bridge's counters.
type Stats struct {
	// Workers holds each worker's counters, indexed by verdict.Direction.
	Workers [][2]Counters
	// Total sums the workers, per direction.
	Total [2]Counters
	// Ports is the state of the two interfaces: A, then B.
	Ports [2]Port
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
type published struct {
	received, bytes, forwarded, dropped, wouldDrop, truncated, malformed, oversize, fragments,
	txErrors, txRingFull, flushErrors, panics, portDown, outgoing atomic.Uint64
}

func (p *published) store(c *Counters) {
	p.received.Store(c.Received)
	p.bytes.Store(c.Bytes)
	p.forwarded.Store(c.Forwarded)
	p.dropped.Store(c.Dropped)
	p.wouldDrop.Store(c.WouldDrop)
	p.truncated.Store(c.Truncated)
	p.malformed.Store(c.Malformed)
	p.oversize.Store(c.Oversize)
	p.fragments.Store(c.Fragments)
	p.txErrors.Store(c.TXErrors)
	p.txRingFull.Store(c.TXRingFull)
	p.flushErrors.Store(c.FlushErrors)
	p.panics.Store(c.Panics)
	p.portDown.Store(c.PortDown)
	p.outgoing.Store(c.Outgoing)
}

func (p *published) load() Counters {
	return Counters{
		Received:    p.received.Load(),
		Bytes:       p.bytes.Load(),
		Forwarded:   p.forwarded.Load(),
		Dropped:     p.dropped.Load(),
		WouldDrop:   p.wouldDrop.Load(),
		Truncated:   p.truncated.Load(),
		Malformed:   p.malformed.Load(),
		Oversize:    p.oversize.Load(),
		Fragments:   p.fragments.Load(),
		TXErrors:    p.txErrors.Load(),
		TXRingFull:  p.txRingFull.Load(),
		FlushErrors: p.flushErrors.Load(),
		Panics:      p.panics.Load(),
		PortDown:    p.portDown.Load(),
		Outgoing:    p.outgoing.Load(),
	}
}
