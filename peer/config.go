package peer

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/ring"
	"github.com/afbridge/afbridge/verdict"
	"golang.org/x/net/bpf"
)

// CopyMode says what happens to the frames received on a side, as Suricata's copy-mode does.
type CopyMode uint8

const (
	// IPS forwards frames the verdict passes and drops the others. It is the zero value.
	IPS CopyMode = iota
	// Tap forwards every frame; the verdict is still asked, and its drops are counted as
	// would-drops. Use it to trial rules on live traffic.
	Tap
)

// String returns "ips" or "tap".
func (m CopyMode) String() string {
	switch m {
	case IPS:
		return "ips"
	case Tap:
		return "tap"
	}
	return fmt.Sprintf("CopyMode(%d)", uint8(m))
}

// ParseCopyMode parses Suricata's copy-mode names "ips" and "tap".
func ParseCopyMode(s string) (CopyMode, error) {
	switch s {
	case "ips":
		return IPS, nil
	case "tap":
		return Tap, nil
	}
	return 0, fmt.Errorf("peer: copy mode %q is neither ips nor tap", s)
}

// Policy is what the bridge does when something fails: a verdict panics (Config.OnPanic) or
// a port goes down (Config.OnLinkDown).
type Policy uint8

const (
	// FailOpen keeps traffic moving: the frame whose verdict panicked is forwarded, and while a
	// port is down the bridge forwards whatever can still be forwarded (frames whose egress port
	// is up). It is the zero value, as in most inline IPS deployments.
	FailOpen Policy = iota
	// FailClosed lets nothing through that was not inspected normally: the frame whose verdict
	// panicked is dropped, and while either port is down the bridge forwards nothing in either
	// direction.
	FailClosed
)

// String returns "fail-open" or "fail-closed".
func (p Policy) String() string {
	if p == FailClosed {
		return "fail-closed"
	}
	return "fail-open"
}

// Side configures one interface of the bridge: what may differ between the two. What must be
// the same on both sides (the worker count, the fanout mode, defragmentation) is set once, in
// [Config].
type Side struct {
	// Interface is the interface's name, in the network namespace of the OS thread that calls
	// [Bridge.Start] (see [Config]).
	Interface string
	// ClusterID is the fanout group id; zero lets the kernel pick a unique one. The two sides must
	// not share an id.
	ClusterID uint16
	// CopyMode is what happens to frames received on this side: IPS (the zero value) or Tap.
	CopyMode CopyMode
	// Ring sizes this side's rings; the zero value is the measured default.
	Ring RingOptions
	// Filter is a cBPF program for frames received on this side: frames it rejects are neither
	// forwarded nor counted. Nil means none.
	Filter []bpf.Instruction
	// QdiscBypass sends this side's frames with PACKET_QDISC_BYPASS: it skips the egress qdisc
	// (faster where the device has a real one), but the frames are invisible to tcpdump on the
	// port and GSO frames are not segmented in software. On veth, which has no qdisc, it measured
	// no faster (8 interleaved 64-byte runs in the bench harness), so it is off by default.
	QdiscBypass bool
	// DisablePromisc leaves the interface out of promiscuous mode (Suricata's disable-promisc).
	// An inline bridge normally needs promiscuous mode to see frames for other hosts.
	DisablePromisc bool
	// BufferSize sets SO_RCVBUF and SO_SNDBUF in bytes on this side's sockets; zero keeps the
	// kernel's default. Rings do not use the socket buffer, so this matters only without them.
	BufferSize int
}

// RingOptions sizes the rings of one side's sockets: the parts of [ring.Config] that are the
// caller's choice. The bridge sets the rest: the MTU (from the interfaces), the vnet header
// ([Config].NoVnetHdr), and both an RX and a TX ring on every socket. Every zero field means the
// default; [Validate] reports geometry that cannot work, naming the field.
type RingOptions struct {
	// Version is ring.V2 or ring.V3 for both rings; zero means V2, which measured best on rate
	// and latency together. With V2 and no FrameSize, RX slots are MTU-sized and larger frames
	// (GSO super-frames, reassembled datagrams) are read from the socket (ring.Config.CopyLarge).
	Version ring.Version
	// Locked mlocks the mapping, like Suricata's mmap-locked (see ring.Config.Locked).
	Locked bool
	// FrameSize and FrameCount size a V2 RX ring (ring.Config.FrameSize, FrameCount). A FrameSize
	// set with the vnet header on must hold a 64 KiB GSO super-frame.
	FrameSize, FrameCount int
	// BlockSize is the RX ring's allocation unit, BlockCount the number of V3 blocks, and
	// BlockTimeout how long the kernel fills a V3 block (ring.Config.BlockSize, BlockCount,
	// BlockTimeout).
	BlockSize, BlockCount int
	BlockTimeout          time.Duration
	// TXFrameCount is the number of TX slots; zero means 512, several batches. TXFrameSize is a
	// TX slot's size; zero means room for an MTU-sized frame with two VLAN tags (larger frames
	// are sent through the socket). TXBlockSize is the TX ring's allocation unit.
	TXFrameCount, TXFrameSize, TXBlockSize int
}

// Config describes a bridge between two interfaces.
//
// Namespaces: a bridge works in the network namespace of the OS thread that calls
// [Bridge.Start] (or [Validate], [Preflight]): interface names are looked up there and every
// socket is opened there, and a socket re-opened after an interface is re-created is opened in
// that same namespace. A program that switches namespaces for the call must do so on a thread it
// has locked with runtime.LockOSThread.
type Config struct {
	// A and B are the two sides.
	A, B Side
	// Threads is the number of workers, and so of sockets on each side; zero means 1. Worker i
	// owns socket i of both sides.
	Threads int
	// ClusterType is the fanout mode of both sides. Two modes keep both directions of a flow on
	// one worker, which is what lets a per-worker verdict keep per-flow state without a lock:
	//   - fanout.Hash, the zero value (Suricata's cluster_flow), hashes the kernel's flow key,
	//     ports included, so the fragments of a datagram (only the first has ports) can reach
	//     different workers unless Defrag reassembles them;
	//   - fanout.EBPF (Suricata's cluster_ebpf) balances with the built-in IP-pair program of
	//     package [github.com/afbridge/afbridge/fanout/ippair]: a symmetric hash of the source
	//     and destination addresses, so every fragment of a datagram reaches the worker of its
	//     flow and leaves exactly as it came, without Defrag. Flows between the same two hosts
	//     share a worker. The bridge loads the program at Start (which then needs CAP_BPF or
	//     CAP_SYS_ADMIN; re-binds after a link flap reuse it) and unloads it at Close.
	// Use fanout.EBPF without Defrag for an inline bridge that must not change the traffic.
	// With one worker the mode is moot (every frame has one place to go) and the sockets join
	// in fanout.CPU mode, which spends nothing per frame choosing it.
	ClusterType fanout.Mode
	// Defrag makes the kernel reassemble IPv4 fragments before fanout on both sides
	// (PACKET_FANOUT_FLAG_DEFRAG), so the verdict sees whole datagrams. That changes the traffic:
	// a datagram reassembled to more than the egress MTU leaves fragmented again to that MTU
	// (keeping its ID and DF bit), one that fits leaves whole, and trains the kernel cannot
	// reassemble (incomplete, or with overlapping fragments) are never forwarded. Frames known to
	// be reassembled carry [verdict.Reassembled]. IPv6 fragments are not reassembled.
	Defrag bool
	// CPUs pins the workers: worker i runs on an OS thread of its own, locked to it, whose
	// affinity is CPUs[i % len(CPUs)]. Nil leaves the workers to the Go scheduler. Every CPU must
	// be one the calling thread may run on (see taskset(1)).
	CPUs []int
	// TickInterval is how often each worker calls the Tick method of a Handler that implements
	// verdict.Ticker, busy or idle; zero means one second. It must not be negative.
	TickInterval time.Duration
	// Verdict makes the Handler of each worker; nil passes every frame.
	Verdict verdict.Factory
	// OnPanic is what happens to a frame whose Handler panicked; the zero value is FailOpen.
	OnPanic Policy
	// OnLinkDown is what happens while a port is down (not up, or without carrier): with
	// FailOpen, the zero value, frames whose egress port is up are still forwarded (such as
	// frames received before the link dropped) and the others count as TX errors; with
	// FailClosed nothing is forwarded either way and frames count as dropped. Counters.PortDown
	// counts both. Link state is checked every 100 ms, and at once when a socket reports an error.
	OnLinkDown Policy
	// ExitOnRemove makes the bridge stop, and Run return an error wrapping ErrInterfaceRemoved,
	// when a bridged interface disappears. By default the bridge waits for an interface of the
	// same name (retrying with back-off from 50 ms to 2 s), binds both sides to it again and
	// goes on, with the same workers, verdict handlers and counters.
	ExitOnRemove bool
	// Batch is the most frames a worker moves in one direction before it flushes; zero means 64.
	Batch int
	// BusyPoll keeps an idle worker spinning over its rings this long before it sleeps in
	// poll(2). Waking a sleeping worker on another CPU costs tens of microseconds per hop (about
	// 75 us on the 2-vCPU VM the bench ran on: BenchmarkWakeUp); spinning forever trades a CPU
	// for it. A bounded spin (20-100 us) measured no change in throughput or in the latency of
	// sparse traffic in the bench harness, so zero, never spinning, is the default; a negative
	// value spins forever.
	BusyPoll time.Duration
	// NoVnetHdr turns off PACKET_VNET_HDR. The bridge then completes unfinished checksums in
	// software and counts GSO super-frames as oversize instead of letting the kernel segment
	// them: only useful on kernels or devices where the vnet header misbehaves.
	NoVnetHdr bool
	// Logger receives events (start, stop, link down and up, MTU changes, interfaces removed and
	// re-bound with their old and new ifindex); nil discards them.
	Logger *slog.Logger
	// Bypass turns on the kernel fast path for flows a Handler returns verdict.Bypass for; the
	// zero value leaves it off, and Bypass then forwards as Pass does.
	Bypass BypassConfig
}

// BypassConfig configures the kernel fast path (package bypass). When a Handler returns
// verdict.Bypass for a frame, the frame is forwarded as on Pass and its flow (flow.Key, both
// directions) is handed to a tcx program on each port, which forwards its later frames at kernel
// speed; the verdict no longer sees them. The flow comes back to the bridge when it has been
// idle for IdleTimeout, when the map evicts it, or on [Bridge.Withdraw] and
// [Bridge.WithdrawAll].
//
// What the verdict still sees of a bypassed flow: the frame it returned Bypass for, and the
// frames of the flow that reach the bridge before each direction hands over (those already in the
// ring, and those that arrive before the bridge has caught up with them; they are judged as
// usual, and a Handler typically says Bypass again). After the handover it sees nothing of the
// flow, in that direction, until the flow returns; then its next frame is judged like any other.
// IPv4 fragments and IPv6 packets with a fragment header always reach the verdict. A TCP FIN or
// RST, in either direction, returns the flow to the bridge (Stats.Bypass.Closed): the verdict
// sees the connection's teardown, from that frame on. Frames the fast
// path forwards are in no [Counters] (see [Stats].Bypass), so Received = Forwarded + Dropped + ...
// still holds for every worker and direction.
type BypassConfig struct {
	// Enable turns the fast path on. It needs Linux 6.6 (tcx), CAP_BPF and CAP_NET_ADMIN at
	// Start, where every program is loaded, and CAP_BPF and CAP_NET_ADMIN again when a re-bind
	// attaches them to a re-created port (it loads none, but the tcx attach is refused without
	// CAP_BPF: examples/bridge keeps it for that reason), and
	// cannot be combined with Config.Defrag (a
	// reassembled datagram could not be told apart from the fragments the kernel forwards). A
	// side's Filter is carried into the fast path's socket filter; one the translation cannot
	// carry (an ancillary load it lacks) makes Start fail with an error matching bypass.ErrFilter.
	Enable bool
	// Require makes Start fail, with an error matching bypass.ErrUnavailable, when the kernel or
	// the process's privileges do not allow the fast path. By default the bridge logs the reason
	// once and runs without it: Bypass then means Pass.
	Require bool
	// IdleTimeout is how long a bypassed flow may go without a frame before it returns to the
	// bridge; zero means bypass.DefaultIdleTimeout (a minute, see there for why).
	IdleTimeout time.Duration
	// MaxFlows bounds the flow map; zero means bypass.DefaultMaxFlows. When it is full, the least
	// recently used flow returns to the bridge (Stats.Bypass.Evicted).
	MaxFlows int
	// HandoverLimit lets a flow that never pauses long enough for the bridge to catch up with it,
	// yet never overflows the RX ring, hand over anyway after that many of its frames had to
	// wait, at the price of up to a ring's worth of reordering (Stats.Bypass.Forced); see
	// bypass.Config.HandoverLimit. Zero keeps the order always. (A flow that overflows the ring
	// needs no limit: while the ring overflows its frames are shed, Stats.Bypass.Shed, and it
	// hands over in order; see bypass.ShedHold.)
	HandoverLimit int
}

// ErrStarted is the error Start returns when the bridge was started before (or a Start is under
// way).
var ErrStarted = errors.New("peer: bridge already started")

// ErrClosed is the error Start and Run return after Close. It wraps os.ErrClosed.
var ErrClosed = fmt.Errorf("peer: bridge is closed: %w", os.ErrClosed)

// FactoryError is the error Start returns when Config.Verdict's New panicked or returned a nil
// Handler. Errors.Is(err, verdict.ErrNilHandler) reports the second case; a panic with an error
// value unwraps to it.
type FactoryError struct {
	Worker int   // the worker New was called for
	Panic  any   // the value New panicked with, or nil
	Err    error // verdict.ErrNilHandler if New returned nil
}

func (e *FactoryError) Error() string {
	if e.Panic != nil {
		return fmt.Sprintf("peer: Config.Verdict.New(%d) panicked: %v", e.Worker, e.Panic)
	}
	return fmt.Sprintf("peer: Config.Verdict.New(%d): %v", e.Worker, e.Err)
}

// Unwrap returns Err, or the panic value if it is an error.
func (e *FactoryError) Unwrap() error {
	if err, ok := e.Panic.(error); ok && e.Err == nil {
		return err
	}
	return e.Err
}

// ErrInterfaceRemoved is the error Run returns, wrapped, when a bridged interface disappears
// and Config.ExitOnRemove is set.
var ErrInterfaceRemoved = errors.New("peer: bridged interface removed")

const (
	defaultBatch = 64
	defaultTick  = time.Second
)

// Workers returns the number of workers a bridge with this Config runs: Threads, or 1 when
// Threads is 0 (or negative, which Validate refuses).
func (c Config) Workers() int {
	if c.Threads <= 0 {
		return 1
	}
	return c.Threads
}
