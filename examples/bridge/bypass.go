//go:build linux

package main

import (
	"fmt"

	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/verdict"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// The flow bypass of the example (issue 10): a flow that -bypass-after's bytes have passed
// without an alert or a drop, or that a pass rule with the bypass option passes, is handed to
// the kernel fast path (peer.Config.Bypass, package bypass) with verdict.Bypass. The per-flow
// accounting lives in the worker's inspector (inspect.go); this file turns the fast path on,
// withdraws the bypassed flows on SIGHUP and reports its counters.

// enableBypass turns the fast path on for every bridge when on (-bypass-after), as bypass: yes
// in the YAML does for its pair. The fast path cannot be combined with fanout defrag (the kernel
// would forward fragments the bridge reassembled), which Suricata's af-packet entries turn on by
// default: it is turned off, with a note.
// handover is -bypass-handover, the HandoverLimit of every bridge.
func enableBypass(specs []spec, on bool, handover int, note func(string)) {
	for i := range specs {
		c := &specs[i].cfg
		if on {
			c.Bypass.Enable = true
		}
		c.Bypass.HandoverLimit = handover
		if c.Bypass.Enable && c.Defrag {
			c.Defrag = false
			note(fmt.Sprintf("%s%s <-> %s: defrag turned off, the bypass fast path cannot be combined with it (fragments still reach the rules, reassembled by the inspector)",
				specs[i].where, c.A.Interface, c.B.Interface))
		}
	}
}

// hasBypassRule reports whether set has a rule with the bypass option, which turns the fast path
// on as -bypass-after does. A bypass rule first loaded by SIGHUP finds no fast path when neither
// was given at start: it then passes, and a note says so.
func hasBypassRule(set *rules.Set) bool {
	if set == nil {
		return false
	}
	for _, r := range set.Rules() {
		if r.Bypass {
			return true
		}
	}
	return false
}

// bypassWanted reports whether any bridge asks for the fast path, so that the capability that
// re-attaching it needs is kept.
func (a *app) bypassWanted() bool {
	for _, b := range a.bridges {
		if b.cfg.Bypass.Enable {
			return true
		}
	}
	return false
}

// bypassCaps is what the fast path needs beyond keptCaps once the bridge runs: CAP_BPF, to
// attach the tcx program to an interface that was re-created (peer re-attaches the programs it
// loaded at Start; it loads none). Without it the kernel refuses the attach, cilium/ebpf then
// reports "tcx not supported", and the bridge goes on with Bypass meaning Pass: shown by
// TestLeastPrivilegeBypass, which fails when this is 0.
const bypassCaps = 1 << unix.CAP_BPF

// withdrawBypass takes every bypassed flow back from the fast path, after a rule reload: the new
// rules may drop flows the old ones bypassed. It says how many were withdrawn.
func (a *app) withdrawBypass() {
	for _, b := range a.bridges {
		if !b.cfg.Bypass.Enable || b.br == nil {
			continue
		}
		n, err := b.br.WithdrawAll()
		if err != nil {
			a.printf("bridge: SIGHUP: %s: withdrawing the bypassed flows: %v (%d withdrawn)", b.name(), err, n)
			continue
		}
		a.printf("bridge: SIGHUP: %s: %d bypassed flows withdrawn, the new rules judge them", b.name(), n)
	}
}

// noteBypassRules says, after a reload, when the new rules bypass flows that no bridge can hand
// to the fast path (it was not turned on at start): they only pass.
func (a *app) noteBypassRules(set *rules.Set) {
	if hasBypassRule(set) && !a.bypassWanted() {
		a.printf("bridge: SIGHUP: note: rules with the bypass option only pass: the fast path is off (turn it on at start with -bypass-after, bypass: yes or a bypass rule)")
	}
}

// bypassInterval is the -stats line of the fast path over the interval from prev to cur, or
// nothing when it does not run.
func (b *bridge) bypassInterval(prev, cur snapshot) []string {
	if !cur.stats.BypassActive {
		return nil
	}
	dt := max(cur.at.Sub(prev.at).Seconds(), 1e-9)
	c, p := cur.stats.Bypass, prev.stats.Bypass
	line := fmt.Sprintf("stats bypass %s: flows %d, new %d, expired %d, closed %d, evicted %d, withdrawn %d",
		b.name(), c.Current, c.Total-p.Total, c.Expired-p.Expired, c.Closed-p.Closed, c.Evicted-p.Evicted, c.Withdrawn-p.Withdrawn)
	for s := range c.Frames {
		line += fmt.Sprintf("; fast path %s %s frames/s %s", b.dirName(verdict.Direction(s)),
			rate(float64(c.Frames[s]-p.Frames[s])/dt), bitRate(8*float64(c.Bytes[s]-p.Bytes[s])/dt))
	}
	if n := c.Shed - p.Shed; n != 0 {
		line += fmt.Sprintf("; shed %d frames of flows handing over from an overflowing ring", n)
	}
	return []string{line}
}

// bypassFinal is the final-stats line of the fast path: whether it ran, its flows and what it
// forwarded. The frames it forwarded are in no direction's received count.
func (b *bridge) bypassFinal(s snapshot) []string {
	if !b.cfg.Bypass.Enable {
		return nil
	}
	if !s.stats.BypassActive {
		return []string{"  bypass: the kernel fast path did not run (see the warning above): Bypass verdicts forwarded as Pass"}
	}
	c := s.stats.Bypass
	line := fmt.Sprintf("  bypass: flows %d (current %d, expired %d, closed %d, evicted %d, withdrawn %d)",
		c.Total, c.Current, c.Expired, c.Closed, c.Evicted, c.Withdrawn)
	for d := range c.Frames {
		line += fmt.Sprintf(", fast path %s %d frames %s", b.dirName(verdict.Direction(d)), c.Frames[d], byteCount(c.Bytes[d]))
	}
	if c.AddErrors != 0 || c.NoPort != 0 || c.Forced != 0 || c.Shed != 0 {
		line += fmt.Sprintf(", add-errors %d, no-port %d, forced %d, shed %d", c.AddErrors, c.NoPort, c.Forced, c.Shed)
	}
	return []string{line}
}

// bypassCollector exports the fast path's counters and the frames each worker bypassed. Like
// collector it reads the counters when Prometheus scrapes.
type bypassCollector struct {
	bridges                                      []*bridge
	bypassed, active, flows, added, removed      *prometheus.Desc
	frames, bytes, addErrs, noPort, forced, shed *prometheus.Desc
}

func newBypassCollector(bridges []*bridge) *bypassCollector {
	br := []string{"bridge"}
	dir := []string{"direction"}
	return &bypassCollector{
		bridges:  bridges,
		bypassed: prometheus.NewDesc("afbridge_bypassed_frames_total", "Frames the verdict said Bypass for (forwarded by the bridge, their flow handed to the fast path).", []string{"direction", "worker"}, nil),
		active:   prometheus.NewDesc("afbridge_bypass_active", "1 when the kernel fast path runs, 0 when Bypass means Pass.", br, nil),
		flows:    prometheus.NewDesc("afbridge_bypass_flows", "Flows on the fast path now (live or handing over).", br, nil),
		added:    prometheus.NewDesc("afbridge_bypass_flows_added_total", "Flows handed to the fast path.", br, nil),
		removed:  prometheus.NewDesc("afbridge_bypass_flows_removed_total", "Flows returned to the bridge, by reason (expired, closed by a TCP FIN or RST, evicted from a full map, withdrawn).", []string{"bridge", "reason"}, nil),
		frames:   prometheus.NewDesc("afbridge_bypass_frames_total", "Frames the fast path forwarded (never seen by a worker).", dir, nil),
		bytes:    prometheus.NewDesc("afbridge_bypass_bytes_total", "Bytes of the frames the fast path forwarded.", dir, nil),
		addErrs:  prometheus.NewDesc("afbridge_bypass_add_errors_total", "Flows the kernel refused to put on the fast path (they stayed on the bridge).", br, nil),
		noPort:   prometheus.NewDesc("afbridge_bypass_no_port_frames_total", "Frames kept out of the ring on a port with no peer in the port map.", br, nil),
		forced:   prometheus.NewDesc("afbridge_bypass_forced_handovers_total", "Flow directions handed over at the handover limit, out of order.", br, nil),
		shed:     prometheus.NewDesc("afbridge_bypass_shed_frames_total", "Frames of flows handing over dropped while their ring overflowed, so that the flows could leave it in order.", br, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *bypassCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.bypassed, c.active, c.flows, c.added, c.removed, c.frames, c.bytes, c.addErrs, c.noPort, c.forced, c.shed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *bypassCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, b := range c.bridges {
		st := b.br.Stats()
		for w := range st.Workers {
			for d := range st.Workers[w] {
				counter(c.bypassed, st.Workers[w][d].Bypassed, b.dirName(verdict.Direction(d)), fmt.Sprint(w))
			}
		}
		if !b.cfg.Bypass.Enable {
			continue
		}
		name := b.name()
		active := 0.0
		if st.BypassActive {
			active = 1
		}
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, active, name)
		s := st.Bypass
		ch <- prometheus.MustNewConstMetric(c.flows, prometheus.GaugeValue, float64(s.Current), name)
		counter(c.added, s.Total, name)
		for _, r := range []struct {
			reason string
			v      uint64
		}{{"expired", s.Expired}, {"closed", s.Closed}, {"evicted", s.Evicted}, {"withdrawn", s.Withdrawn}} {
			counter(c.removed, r.v, name, r.reason)
		}
		for side := range s.Frames {
			dir := b.dirName(verdict.Direction(side)) // bypass.Side A is the ingress of AToB
			counter(c.frames, s.Frames[side], dir)
			counter(c.bytes, s.Bytes[side], dir)
		}
		counter(c.addErrs, s.AddErrors, name)
		counter(c.noPort, s.NoPort, name)
		counter(c.forced, s.Forced, name)
		counter(c.shed, s.Shed, name)
	}
}
