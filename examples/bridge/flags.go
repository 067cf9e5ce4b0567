//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/afbridge/afbridge/examples/bridge/config"
	"github.com/afbridge/afbridge/peer"
)

const synopsis = `usage:
  bridge -i IFACE_A:IFACE_B [-threads N] [-mode ips|tap] [-rules FILE] [-eve FILE] [-stats DURATION] [-metrics ADDR] [-bypass-after BYTES]
  bridge -c FILE [-i IFACE_A:IFACE_B] [-rules FILE] [-eve FILE] [-stats DURATION] [-metrics ADDR] [-bypass-after BYTES]
  bridge --demo
`

// maxThreads is PACKET_FANOUT_MAX, the most sockets one fanout group takes.
const maxThreads = 1 << 16

// options are the parsed command line.
type options struct {
	a, b    string // from -i
	threads int
	mode    peer.CopyMode
	config  string
	rules   string
	eve     string
	stats   time.Duration
	metrics string
	demo    bool
	// eveAllowSpecial lets -eve be a symlink, FIFO or device (eve.Options.AllowSpecial).
	eveAllowSpecial bool
	// runAs is the user the bridge runs as once its sockets are open (caps_linux.go); it
	// overrides cfgRunAs, the run-as section of -c.
	runAs    string
	cfgRunAs config.RunAs
	// bypass is set by -bypass-after: bypass a flow once it has passed bypassAfter bytes.
	bypass      bool
	bypassAfter int64
	// bypassHandover is -bypass-handover: peer.BypassConfig.HandoverLimit for every bridge.
	bypassHandover int
}

// usageError is a bad command line: the caller prints it with the usage and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// parseFlags parses args (without the program name). The flag package's own errors (an unknown
// flag, a value that does not parse) are printed to stderr with the usage by the flag package; the
// others are returned as *usageError. flag.ErrHelp is returned for -h.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("bridge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o      options
		ifaces string
		mode   string
	)
	fs.StringVar(&ifaces, "i", "", "the two interfaces to bridge, `IFACE_A:IFACE_B`")
	fs.IntVar(&o.threads, "threads", 1, "number of workers, each with one socket on each side (with -i)")
	fs.StringVar(&mode, "mode", "ips", "ips drops what the rules drop; tap forwards everything and counts would-drops (with -i)")
	fs.StringVar(&o.config, "c", "", "Suricata-style YAML `FILE` whose af-packet section describes the bridges")
	fs.StringVar(&o.rules, "rules", "", "rule `FILE` (drop, reject, alert, pass); SIGHUP reloads it")
	fs.StringVar(&o.eve, "eve", "", "append EVE JSON alert events to `FILE` (- for standard output)")
	fs.DurationVar(&o.stats, "stats", 0, "print per-direction rates and counters every `DURATION` (e.g. 10s)")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics on `ADDR` (e.g. 127.0.0.1:9101; a port alone, :9101, means 127.0.0.1), path /metrics")
	fs.BoolVar(&o.eveAllowSpecial, "eve-allow-special", false, "let -eve be a symbolic link, a FIFO or a device (refused by default)")
	fs.StringVar(&o.runAs, "run-as", "", "`USER` (name or uid, optionally USER:GROUP) to run as once the sockets are open (default nobody; run-as: in -c)")
	fs.Func("bypass-after", "bypass a flow (the kernel forwards it, uninspected) once it has passed `BYTES` bytes, both directions, with no alert or drop; 0: at its first frame (default off)", func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errors.New("want a number of bytes, 0 or more")
		}
		o.bypass, o.bypassAfter = true, n
		return nil
	})
	fs.Func("bypass-handover", "let a bypassed flow that never pauses hand over to the fast path after `N` of its frames waited, allowing up to a ring's worth of reordering (default 0: order always kept, so a saturating flow may stay on the bridge)", func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errors.New("want a number of frames, 0 or more")
		}
		o.bypassHandover = n
		return nil
	})
	fs.BoolVar(&o.demo, "demo", false, "run a self-contained demonstration in network namespaces (needs root)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), synopsis, "\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (flags come before arguments, and there are no arguments)", fs.Arg(0))
	}
	if o.demo {
		for name := range set {
			if name != "demo" {
				return nil, usagef("--demo takes no other flags (-%s given)", name)
			}
		}
		return &o, nil
	}
	if ifaces == "" && o.config == "" {
		return nil, usagef("nothing to bridge: give -i IFACE_A:IFACE_B, -c FILE or --demo")
	}
	if ifaces != "" {
		a, b, ok := strings.Cut(ifaces, ":")
		if !ok || a == "" || b == "" || strings.Contains(b, ":") {
			return nil, usagef("-i %q: want two interface names separated by a colon, such as eth0:eth1", ifaces)
		}
		if a == b {
			return nil, usagef("-i %q: an interface cannot be bridged with itself", ifaces)
		}
		o.a, o.b = a, b
	}
	if o.config != "" && (set["threads"] || set["mode"]) {
		return nil, usagef("-threads and -mode go with -i alone; with -c, set threads and copy-mode in %s", o.config)
	}
	if o.threads < 1 || o.threads > maxThreads {
		return nil, usagef("-threads %d: want 1 to %d", o.threads, maxThreads)
	}
	m, err := peer.ParseCopyMode(mode)
	if err != nil {
		return nil, usagef("-mode %q: want ips or tap", mode)
	}
	o.mode = m
	if o.stats < 0 {
		return nil, usagef("-stats %v: the interval cannot be negative", o.stats)
	}
	if o.stats > 0 && o.stats < 100*time.Millisecond {
		return nil, usagef("-stats %v: use at least 100ms", o.stats)
	}
	if set["rules"] && o.rules == "" {
		return nil, usagef("-rules needs a file name")
	}
	if set["eve"] && o.eve == "" {
		return nil, usagef("-eve needs a file name (or - for standard output)")
	}
	if set["metrics"] {
		if _, _, err := net.SplitHostPort(o.metrics); err != nil {
			return nil, usagef("-metrics %q: want HOST:PORT, such as 127.0.0.1:9101 (%v)", o.metrics, errors.Unwrap(err))
		}
	}
	return &o, nil
}
