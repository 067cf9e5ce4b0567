//go:build linux

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/examples/bridge/config"
	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/pcapfilter"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/ring"
	"golang.org/x/net/bpf"
)

// spec is one bridge to run and where it was described, for messages.
type spec struct {
	cfg   peer.Config
	where string // "FILE:LINE,LINE: " for an entry pair of -c, "" for -i
}

// specFromFlags is the bridge of -i, -threads and -mode.
func specFromFlags(o *options) spec {
	side := func(name string) peer.Side {
		return peer.Side{Interface: name, CopyMode: o.mode}
	}
	return spec{cfg: peer.Config{A: side(o.a), B: side(o.b), Threads: o.threads}}
}

// specsFromConfig loads the bridges of -c; with -i as well, only the bridge between those two
// interfaces. It also fills in o.rules and o.eve from the file's rule-files and eve-log output
// when the flags did not set them. Every error it returns is a configuration error that names
// the file and line. note receives what was ignored or assumed, one message a call.
func specsFromConfig(o *options, note func(string)) ([]spec, error) {
	f, err := config.Load(o.config)
	if err != nil {
		return nil, err
	}
	for _, n := range f.Notes {
		note(n)
	}
	filesFromConfig(o, f, note)
	o.cfgRunAs = f.RunAs
	pairs, err := f.Bridges()
	if err != nil {
		return nil, err
	}
	if o.a != "" {
		i := slices.IndexFunc(pairs, func(p config.Bridge) bool {
			return p.A.Name == o.a && p.B.Name == o.b || p.A.Name == o.b && p.B.Name == o.a
		})
		if i < 0 {
			var have []string
			for _, p := range pairs {
				have = append(have, p.A.Name+":"+p.B.Name)
			}
			return nil, fmt.Errorf("%s: no bridge between %s and %s (-i); the file has %s", f.Name, o.a, o.b, strings.Join(have, ", "))
		}
		pairs = pairs[i : i+1]
	}
	var (
		specs []spec
		errs  []error
	)
	for _, p := range pairs {
		a, erra := sideFromConfig(f.Name, p.A, p.AToB, note)
		b, errb := sideFromConfig(f.Name, p.B, p.BToA, note)
		if erra != nil || errb != nil {
			errs = append(errs, erra, errb)
			continue
		}
		// peer.Config holds once what must be equal on both sides: compare what each side
		// will run with (cluster_ebpf and cluster_rollover both run as cluster_flow).
		pairErr := func(format string, args ...any) error {
			return &config.Error{File: f.Name, Line: p.A.Line, OtherLine: p.B.Line, Msg: fmt.Sprintf(format, args...)}
		}
		if a.fan.ct != b.fan.ct {
			errs = append(errs, pairErr("cluster-type differs: %s has %s, %s has %s; both sides of a bridge need the same, so both directions of a flow meet on one worker",
				p.A.Name, p.A.ClusterType, p.B.Name, p.B.ClusterType))
			continue
		}
		if a.fan.defrag != b.fan.defrag {
			errs = append(errs, pairErr("defrag differs: %s has %v, %s has %v; both sides of a bridge need the same, so every fragment of a datagram meets on one worker",
				p.A.Name, a.fan.defrag, p.B.Name, b.fan.defrag))
			continue
		}
		cfg := peer.Config{A: a.side, B: b.side, Threads: p.A.Threads, ClusterType: a.fan.ct, Defrag: a.fan.defrag, CPUs: f.WorkerCPUs}
		applyConfigPolicy(&cfg, f)
		cfg.Bypass.Enable = p.A.Bypass || p.B.Bypass
		specs = append(specs, spec{
			cfg:   cfg,
			where: pairErr("").Error(),
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(f.WorkerCPUs) > 0 {
		note(fmt.Sprintf("%s: workers pinned to CPUs %v (threading.cpu-affinity worker-cpu-set; worker i on the i-th, round robin)", f.Name, f.WorkerCPUs))
	}
	return specs, nil
}

// filesFromConfig takes the rule file, the EVE file and the stats interval from the
// configuration when the flags do not give them. A rule file named by the configuration that does not exist is noted and
// the bridge runs without rules, as Suricata does; one given with -rules must exist.
func filesFromConfig(o *options, f *config.File, note func(string)) {
	if o.rules == "" && len(f.RuleFiles) > 0 {
		if len(f.RuleFiles) > 1 {
			note(fmt.Sprintf("%s: rule-files lists %d files; the bridge loads one, %s: merge the others into it or give -rules", f.Name, len(f.RuleFiles), f.RuleFiles[0]))
		}
		if _, err := os.Stat(f.RuleFiles[0]); errors.Is(err, fs.ErrNotExist) {
			note(fmt.Sprintf("%s: rule file %s does not exist: running without rules, as Suricata does", f.Name, f.RuleFiles[0]))
		} else {
			o.rules = f.RuleFiles[0]
		}
	}
	if o.eve == "" && f.EVEFile != "" {
		o.eve = f.EVEFile
	}
	if o.stats == 0 && f.StatsInterval > 0 {
		o.stats = f.StatsInterval
	}
}

// applyConfigPolicy maps Suricata's exception-policy onto the bridge's failure policies: the
// drop and reject values, and auto (drop-flow in IPS mode), fail closed; the pass, bypass and
// ignore values fail open. Both a verdict that panics (OnPanic) and a port that goes down
// (OnLinkDown) follow it. Without the key the library's defaults stay: fail-open.
func applyConfigPolicy(cfg *peer.Config, f *config.File) {
	switch f.ExceptionPolicy {
	case config.ExceptionFailClosed:
		cfg.OnPanic, cfg.OnLinkDown = peer.FailClosed, peer.FailClosed
	case config.ExceptionFailOpen:
		cfg.OnPanic, cfg.OnLinkDown = peer.FailOpen, peer.FailOpen
	}
}

// fanning is the fanout one side asks for, as the bridge will run it.
type fanning struct {
	ct     fanout.Mode
	defrag bool
}

// configSide is one af-packet entry mapped: its side of the bridge and its fanout, which
// peer.Config holds once for both sides.
type configSide struct {
	side peer.Side
	fan  fanning
}

// sideFromConfig maps one af-packet entry onto a side of a bridge.
func sideFromConfig(file string, ifc config.Interface, mode config.CopyMode, note func(string)) (configSide, error) {
	at := func(format string, args ...any) string {
		return (&config.Error{File: file, Line: ifc.Line, Msg: ifc.Name + ": " + fmt.Sprintf(format, args...)}).Error()
	}
	if !ifc.UseMmap {
		return configSide{}, errors.New(at("use-mmap: no is not supported by the bridge yet: it forwards through mmap'd rings only; set use-mmap: yes or remove the key"))
	}
	ct, _, err := fanout.ParseClusterType(ifc.ClusterType.String())
	if err != nil {
		return configSide{}, errors.New(at("%v", err))
	}
	defrag := ifc.Defrag
	switch ct {
	case fanout.Hash:
	case fanout.EBPF:
		// Suricata's IPS load balancer (ebpf-lb-file) hashes the IP pair, so a datagram's
		// fragments stay with their flow without reassembly; the bridge has that program
		// built in (package fanout/ippair).
		if ifc.EBPFLBFile != "" {
			note(at("ebpf-lb-file %s not loaded: cluster_ebpf runs the bridge's built-in IP-pair program, the symmetric address-pair hash Suricata's IPS load balancer computes", ifc.EBPFLBFile))
		}
	default:
		note(at("cluster-type %s does not keep both directions of a flow on one worker; rules match packet by packet, so they still apply, but cluster_flow is the usual choice for IPS", ifc.ClusterType))
	}
	if ifc.ChecksumChecks != config.ChecksumKernel {
		note(at("checksum-checks: %s ignored: it tells an IDS whether to trust checksums; the bridge forwards frames as they are, and the kernel finishes offloaded checksums", ifc.ChecksumChecks))
	}
	// bpf-filter as in Suricata's IPS mode: a frame the filter rejects is never captured, so it
	// is neither inspected nor forwarded.
	var filter []bpf.Instruction
	if ifc.BPFFilter != "" {
		prog, err := pcapfilter.Compile(ifc.BPFFilter, nil)
		if err != nil {
			return configSide{}, errors.New(at("bpf-filter: %s", strings.TrimPrefix(err.Error(), "pcapfilter: ")))
		}
		filter = prog
		if mode != config.CopyNone {
			note(at("bpf-filter %q: frames it rejects are neither inspected nor forwarded, as in Suricata's IPS mode", ifc.BPFFilter))
		}
	}
	if ifc.DisablePromisc {
		note(at("disable-promisc: yes: frames addressed to other hosts may never reach the bridge"))
	}
	cm := peer.IPS
	if mode == config.CopyTap {
		cm = peer.Tap
	}
	return configSide{side: peer.Side{
		Interface:      ifc.Name,
		ClusterID:      ifc.ClusterID,
		CopyMode:       cm,
		Ring:           ringFromConfig(ifc, at, note),
		Filter:         filter,
		DisablePromisc: ifc.DisablePromisc,
		BufferSize:     ifc.BufferSize,
	}, fan: fanning{ct, defrag}}, nil
}

// v3FrameSize is the frame size Suricata assumes when it turns ring-size into V3 blocks: an
// MTU-sized frame with the tpacket3 header and link-layer address, TPACKET-aligned
// (AFPComputeRingParamsV3).
func v3FrameSize(mtu int) int {
	const hdr = 48 + 20 + 14 // tpacket3_hdr, sockaddr_ll, Ethernet header
	snap := mtu + 14
	align := func(n int) int { return (n + 15) &^ 15 }
	return align(snap + align(hdr) - 14)
}

// ringFromConfig maps the ring keys. Geometry that cannot work with this interface (a V3
// block-size too small for its frames) falls back to the library's default, with a note.
func ringFromConfig(ifc config.Interface, at func(string, ...any) string, note func(string)) peer.RingOptions {
	rc := peer.RingOptions{Locked: ifc.MmapLocked}
	mtu := 1500
	if ifi, err := afpacket.InterfaceByName(ifc.Name); err == nil {
		mtu = ifi.MTU // an unknown interface is reported later, by peer.Validate
	}
	// probe resolves c the way the bridge will: with the vnet header, and (V2) MTU-sized slots
	// that hand larger frames over through the socket.
	probe := func(o peer.RingOptions) (ring.Config, error) {
		c := ring.Config{Version: o.Version, FrameCount: o.FrameCount, BlockSize: o.BlockSize, BlockTimeout: o.BlockTimeout,
			MTU: mtu, VnetHdr: true, CopyLarge: o.Version == ring.V2}
		c.TXFrameCount = 1 // the bridge sizes it; only the geometry is checked here
		return c.Resolve()
	}
	if !ifc.TPacketV3 {
		rc.Version = ring.V2
		rc.FrameCount = ifc.RingSize
		if r, err := probe(rc); err == nil && ifc.RingSize > 0 {
			if size := r.FrameCount / (r.BlockSize / r.FrameSize) * r.BlockSize; size > 256<<20 {
				note(at("ring-size %d makes a %d MiB ring per socket; lower it to use less memory", ifc.RingSize, size>>20))
			}
		}
		return rc
	}
	rc.Version = ring.V3
	rc.BlockSize = ifc.BlockSize
	rc.BlockTimeout = ifc.BlockTimeout
	r, err := probe(rc)
	if err != nil && rc.BlockSize != 0 {
		dflt := rc
		dflt.BlockSize = 0
		if rd, errd := probe(dflt); errd == nil {
			note(at("block-size %d does not work here (%s); using %d", ifc.BlockSize, strings.TrimPrefix(err.Error(), "ring: "), rd.BlockSize))
			rc, r, err = dflt, rd, nil
		}
	}
	if err == nil && ifc.RingSize > 0 {
		// As Suricata: enough blocks for ring-size MTU-sized frames, plus one.
		perBlock := max(1, r.BlockSize/v3FrameSize(mtu))
		rc.BlockCount = max(2, ifc.RingSize/perBlock+1)
	}
	return rc
}

// workerCount is how many workers the bridges of specs run in all.
func workerCount(specs []spec) int {
	n := 0
	for _, s := range specs {
		n += s.cfg.Workers()
	}
	return n
}

// raiseGOMAXPROCS gives each of workers a P, and one more for the rest of the program, unless
// the operator set GOMAXPROCS: a worker sleeping in poll(2) holds its P until the runtime takes
// it back, so workers sharing Ps stall each other (see peer.Preflight). Under taskset the
// runtime starts with one P per allowed CPU; more Ps than CPUs leaves the sharing of the CPUs to
// the kernel's scheduler. It returns what it did or why not, or "" when nothing was needed.
func raiseGOMAXPROCS(workers int) string {
	n, cur := workers+1, runtime.GOMAXPROCS(0)
	if cur >= n {
		return ""
	}
	if v := os.Getenv("GOMAXPROCS"); v != "" {
		return fmt.Sprintf("GOMAXPROCS=%s is set for %d workers; they will share Ps and stall each other unless it is at least %d", v, workers, n)
	}
	runtime.GOMAXPROCS(n)
	return fmt.Sprintf("GOMAXPROCS %d -> %d: a P per worker and one for the rest", cur, n)
}
