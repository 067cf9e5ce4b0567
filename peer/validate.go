package peer

import (
	"errors"
	"fmt"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/fanout"
)

// ConfigError is a configuration that cannot work. Its message names both interfaces and both
// values where two sides disagree.
type ConfigError struct {
	Field string // "Threads", "MTU", "ClusterID", "Interface", ...
	Msg   string
	Err   error // the underlying cause, if any (for example an interface lookup error)
}

func (e *ConfigError) Error() string { return "peer: " + e.Msg }
func (e *ConfigError) Unwrap() error { return e.Err }

// Validate checks cfg against the interfaces in the network namespace of the calling OS thread
// and returns every problem found, joined, each a [*ConfigError]; nil means the bridge can be
// started. It refuses: a missing interface name or interface, an interface peered with itself,
// unequal MTUs, the same non-zero cluster id on both sides, a negative thread count, batch or tick
// interval, a CPU the calling thread may not run on, unknown enum values, ring geometry that
// cannot work, and fanout modes or flags the kernel lacks.
func Validate(cfg Config) error {
	var errs []error
	bad := func(field string, err error, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...), Err: err})
	}
	a, b := cfg.A, cfg.B
	if a.Interface == "" || b.Interface == "" {
		bad("Interface", nil, "both sides need an interface (A is %q, B is %q)", a.Interface, b.Interface)
		return errors.Join(errs...)
	}
	if a.Interface == b.Interface {
		bad("Interface", nil, "interface %s is peered with itself: A and B must be two different interfaces", a.Interface)
	}
	if cfg.Threads < 0 {
		bad("Threads", nil, "threads %d is negative; use 0 or 1 for one worker", cfg.Threads)
	}
	if a.ClusterID != 0 && a.ClusterID == b.ClusterID {
		bad("ClusterID", nil, "%s and %s both use cluster id %d; each side needs its own fanout group (or 0 for a kernel-chosen id)",
			a.Interface, b.Interface, a.ClusterID)
	}
	switch {
	case !cfg.ClusterType.Valid():
		bad("ClusterType", nil, "unknown cluster type %d", cfg.ClusterType)
	case cfg.ClusterType == fanout.CBPF:
		bad("ClusterType", nil, "cluster type cbpf needs a program, which peer does not take; use hash (cluster_flow) or ebpf (the IP-pair program)")
	}
	for _, s := range []Side{a, b} {
		if s.CopyMode > Tap {
			bad("CopyMode", nil, "%s: unknown copy mode %d", s.Interface, s.CopyMode)
		}
	}
	if cfg.TickInterval < 0 {
		bad("TickInterval", nil, "tick interval %v is negative; use 0 for %v", cfg.TickInterval, defaultTick)
	}
	if err := checkCPUs(cfg.CPUs); err != nil {
		bad("CPUs", err, "%v", err)
	}
	if cfg.Batch < 0 {
		bad("Batch", nil, "batch %d is negative", cfg.Batch)
	}
	if cfg.OnPanic > FailClosed {
		bad("OnPanic", nil, "unknown failure policy %d", cfg.OnPanic)
	}
	if cfg.OnLinkDown > FailClosed {
		bad("OnLinkDown", nil, "unknown failure policy %d", cfg.OnLinkDown)
	}

	ia, erra := afpacket.InterfaceByName(a.Interface)
	ib, errb := afpacket.InterfaceByName(b.Interface)
	if erra != nil {
		bad("Interface", erra, "side A: %v", erra)
	}
	if errb != nil {
		bad("Interface", errb, "side B: %v", errb)
	}
	if erra == nil && errb == nil && ia.MTU != ib.MTU {
		bad("MTU", nil, "MTUs differ: %s has %d, %s has %d; frames that fit one side would be dropped on the other; set both to the same MTU (ip link set DEV mtu N)",
			a.Interface, ia.MTU, b.Interface, ib.MTU)
	}
	if cfg.Bypass.Enable && cfg.Defrag {
		bad("Bypass", nil, "the bypass fast path cannot be combined with Defrag: clear one of them")
	}
	if cfg.Bypass.IdleTimeout < 0 || cfg.Bypass.MaxFlows < 0 || cfg.Bypass.HandoverLimit < 0 {
		bad("Bypass", nil, "Bypass.IdleTimeout (%v), Bypass.MaxFlows (%d) and Bypass.HandoverLimit (%d) must not be negative",
			cfg.Bypass.IdleTimeout, cfg.Bypass.MaxFlows, cfg.Bypass.HandoverLimit)
	}
	if cfg.Defrag && !fanout.Supported(fanout.FlagDefrag) {
		bad("Defrag", nil, "this kernel does not support fanout defrag (PACKET_FANOUT_FLAG_DEFRAG); clear Defrag")
	}
	for _, s := range []Side{a, b} {
		rc := ringConfig(s.Ring, max(ia.MTU, ib.MTU, 68), !cfg.NoVnetHdr)
		if _, err := rc.Resolve(); err != nil {
			bad("Ring", err, "%s: %v", s.Interface, err)
		}
	}
	return errors.Join(errs...)
}
