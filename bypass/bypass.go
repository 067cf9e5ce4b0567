package bypass

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of [Config].
const (
	// DefaultMaxFlows is the flow map's size when Config.MaxFlows is 0. At 72 bytes a value and 40
	// a key it costs about 10 MiB of kernel memory, and at the default idle timeout it holds about
	// 1,000 new bypassed flows a second before the least recently used ones are evicted.
	DefaultMaxFlows = 65536
	// DefaultIdleTimeout is Config.IdleTimeout when it is 0. A minute is longer than any delayed
	// ACK, keep-alive probe gap or TCP retransmission backoff short of a dead peer, so a live
	// stream does not bounce back to the bridge mid-transfer, and short enough that the map does
	// not fill with flows that have ended without a FIN the fast path could see.
	DefaultIdleTimeout = time.Minute
	// MaxMembers is the largest number of fanout members a side may have.
	MaxMembers = 256
)

// ShedHold is how long after the kernel last dropped frames for a full ring the socket filter
// drops, instead of queueing, the frames of flows handing over whose earlier frames are still in
// that ring. A flood that overflows the ring would otherwise keep every such flow on the bridge
// for good: each new frame would join the queue behind the last, and the bridge would never
// reach the end of the flow. Dropping them changes how many frames the overload costs very
// little (the ring is dropping frames anyway), keeps the order, and lets the flows leave the ring,
// which ends the overload. Long enough to drain a large ring at a slow worker's pace.
const ShedHold = 50 * time.Millisecond

// Config sets up a [Path]. The zero value is usable: one member a side, [DefaultMaxFlows] and
// [DefaultIdleTimeout].
type Config struct {
	// Members is the number of fanout members (bridge workers) on each side; [Path.Filter] takes
	// a member index below it. 0 means 1; at most [MaxMembers].
	Members int
	// MaxFlows bounds the flow map. When it is full, adding a flow evicts the least recently
	// used one, which goes back to the bridge and is counted in [Stats].Evicted. 0 means
	// [DefaultMaxFlows].
	MaxFlows int
	// IdleTimeout is how long a bypassed flow may see no frame, in either direction, before it
	// expires and its next frame goes back to the bridge. 0 means [DefaultIdleTimeout]. The
	// socket filter reads the kernel's coarse clock, so expiry is exact to a scheduler tick.
	IdleTimeout time.Duration
	// HandoverLimit bounds the handover of a direction whose frames never let the bridge catch
	// up yet never overflow the ring (a stream that keeps a frame or two always queued; one that
	// overflows it is shed, see [ShedHold]): after that many frames found earlier ones of the
	// flow still in the ring, the next one takes the fast path anyway and may overtake up to a
	// ring's worth of them (counted in [Stats].Forced). 0, the default, never gives up the order:
	// such a flow stays on the bridge until its traffic pauses.
	HandoverLimit int
}

func (c Config) withDefaults() (Config, error) {
	if c.Members == 0 {
		c.Members = 1
	}
	if c.MaxFlows == 0 {
		c.MaxFlows = DefaultMaxFlows
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	switch {
	case c.Members < 0 || c.Members > MaxMembers:
		return c, fmt.Errorf("bypass: Config.Members is %d; it must be 1 to %d (0 means 1)", c.Members, MaxMembers)
	case c.MaxFlows < 0 || c.MaxFlows > 1<<24:
		return c, fmt.Errorf("bypass: Config.MaxFlows is %d; it must be 1 to %d (0 means %d)", c.MaxFlows, 1<<24, DefaultMaxFlows)
	case c.HandoverLimit < 0 || c.HandoverLimit > 1<<30:
		return c, fmt.Errorf("bypass: Config.HandoverLimit is %d; it must be 0 (never) to %d", c.HandoverLimit, 1<<30)
	case c.IdleTimeout < 0:
		return c, fmt.Errorf("bypass: Config.IdleTimeout is %v; it must be positive (0 means %v)", c.IdleTimeout, DefaultIdleTimeout)
	}
	return c, nil
}

// Side names one of the two bridged ports. Frames that arrive on side A leave on side B.
type Side uint8

const (
	A Side = 0 // the first port given to [Path.Attach]
	B Side = 1 // the second port
)

// String returns "A" or "B".
func (s Side) String() string {
	switch s {
	case A:
		return "A"
	case B:
		return "B"
	}
	return fmt.Sprintf("Side(%d)", uint8(s))
}

// Stats are the fast path's counters since [Open]. Flow counts add up:
// Total = Current + Expired + Closed + Evicted + Withdrawn.
type Stats struct {
	// Current is the number of flows in the map now, live or still handing over.
	Current uint64
	// Total counts the flows [Path.Add] put into the map.
	Total uint64
	// Expired counts flows removed after IdleTimeout without a frame.
	Expired uint64
	// Closed counts TCP flows returned to the bridge by a FIN or RST, so that the verdict sees
	// their teardown.
	Closed uint64
	// Evicted counts flows the full map dropped to make room (least recently used first). The
	// kernel does not report evictions, so it is derived: Total - Current - Expired - Closed -
	// Withdrawn.
	Evicted uint64
	// Withdrawn counts flows removed by [Path.Withdraw] and [Path.WithdrawAll].
	Withdrawn uint64
	// Frames and Bytes count what the fast path forwarded, indexed by the ingress [Side]: Frames[A]
	// went from A to B. A GSO super-frame counts once, with its full length. A frame is counted
	// when the socket filter sends it to the fast path; one that then finds no peer port is
	// counted in NoPort as well.
	Frames, Bytes [2]uint64
	// Forced counts directions handed over at Config.HandoverLimit, with frames of the flow
	// still in the ring that the fast path may have overtaken.
	Forced uint64
	// Shed counts frames of flows handing over that the socket filter dropped because their
	// ring had overflowed within [ShedHold]: instead of queueing behind the flow's earlier
	// frames, which the bridge could then never catch up with, they were dropped, as the
	// overflowing ring was dropping frames anyway. Counted in no socket's statistics.
	Shed uint64
	// AddErrors counts [Path.Add] calls the kernel refused (the flow stayed on the bridge).
	AddErrors uint64
	// NoPort counts frames the socket filter kept out of the ring that arrived on a port with no
	// peer in the port map, so tc could not forward them. It stays 0 unless a port's programs are
	// detached while its sockets keep the filter.
	NoPort uint64
}

// FlowStats is one flow's fast-path state, as [Path.Lookup] reports it.
type FlowStats struct {
	// LastSeen is the CLOCK_MONOTONIC time of the flow's last frame on the fast path (or of its
	// handover).
	LastSeen time.Duration
	// Frames and Bytes count what the fast path forwarded for this flow, by ingress [Side].
	Frames, Bytes [2]uint64
	// Live reports, per ingress side, whether the direction has been handed over: its frames no
	// longer reach the bridge.
	Live [2]bool
}

// ErrUnavailable is matched (errors.Is) by every error that means the kernel fast path cannot run
// on this machine or in this process. Its concrete type is [*UnavailableError], which says why and
// what fixes it. A bridge logs it once and treats Bypass as Pass, or refuses to start.
var ErrUnavailable = errors.New("bypass: kernel fast path unavailable")

// ErrClosed is returned by the methods of a closed [Path] or [Filter].
var ErrClosed = errors.New("bypass: closed")

// UnavailableError explains why the fast path cannot run here.
type UnavailableError struct {
	// Op is what failed: "load maps", "load programs", "attach tcx", "attach socket filter".
	Op string
	// Fix says what the operator can do about it.
	Fix string
	// Err is the underlying error (often an *os.SyscallError or ebpf.ErrNotSupported).
	Err error
}

// Error returns a message naming the failed step, its cause and the fix.
func (e *UnavailableError) Error() string {
	return fmt.Sprintf("bypass: %s: %v; %s", e.Op, e.Err, e.Fix)
}

// Unwrap returns the underlying error.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrUnavailable].
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }
