//go:build linux

package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/afbridge/afbridge/examples/bridge/eve"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
)

// snapshot is one reading of a bridge's counters.
type snapshot struct {
	at    time.Time
	stats peer.Stats
}

func (b *bridge) snapshot() snapshot { return snapshot{at: time.Now(), stats: b.br.Stats()} }

// intervalLines is the -stats output: one line per direction, rates and counts over the interval
// between prev and cur.
func (b *bridge) intervalLines(prev, cur snapshot) []string {
	dt := cur.at.Sub(prev.at).Seconds()
	if dt <= 0 {
		dt = 1e-9
	}
	var out []string
	for d := range cur.stats.Total {
		c, p := cur.stats.Total[d], prev.stats.Total[d]
		frames := c.Received - p.Received
		bits := 8 * float64(cur.stats.Total[d].Bytes-prev.stats.Total[d].Bytes)
		var lost strings.Builder
		cr, pr := b.dropReasons(&c), b.dropReasons(&p)
		for i, r := range cr {
			// The reasons counted above (rules, kernel-ring-full) are not repeated.
			if n := r.n - pr[i].n; n > 0 && r.name != reasonRules && r.name != reasonKernel {
				fmt.Fprintf(&lost, " %s %d", r.name, n)
			}
		}
		out = append(out, fmt.Sprintf("stats %s: %s frames/s %s, forwarded %d dropped %d would-drop %d kernel-packets %d kernel-drops %d%s (last %s)",
			b.dirName(verdict.Direction(d)), rate(float64(frames)/dt), bitRate(bits/dt),
			c.Forwarded-p.Forwarded, c.Dropped-p.Dropped, c.WouldDrop-p.WouldDrop,
			c.KernelPackets-p.KernelPackets, c.KernelDrops-p.KernelDrops, lost.String(),
			cur.at.Sub(prev.at).Round(100*time.Millisecond)))
	}
	out = append(out, b.bypassInterval(prev, cur)...)
	return append(out, b.portLine([2]peer.Port{cur.stats.A, cur.stats.B}))
}

// portLine is the -stats line for the two ports (side A, side B): link state, and the downs, removals and
// re-binds since the start, so a flapping link shows even when it is up at the moment.
func (b *bridge) portLine(ports [2]peer.Port) string {
	var w strings.Builder
	w.WriteString("stats ports:")
	for i, p := range ports {
		state := "up"
		if !p.Up {
			state = "DOWN"
		}
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(&w, "%s %s %s (downs %d, removals %d, rebinds %d)", sep, b.ifname[i], state, p.Downs, p.Removals, p.Rebinds)
	}
	return w.String()
}

// Drop reasons, as shown by -stats and in the afbridge_drops_total metric.
const (
	reasonRules     = "rules"
	reasonPanic     = "verdict-panic"
	reasonPortDown  = "port-down"
	reasonTXError   = "tx-error"
	reasonTruncated = "truncated"
	reasonMalformed = "malformed"
	reasonOversize  = "oversize"
	reasonKernel    = "kernel-ring-full"
)

// reason is one drop reason and its count.
type reason struct {
	name string
	n    uint64
}

// dropReasons splits the frames of one direction that did not leave the bridge by reason, each
// frame in exactly one: dropped by the rules; by a verdict that panicked under fail-closed;
// kept back because a port was down (peer counts those in Dropped with fail-closed, in
// TXErrors with fail-open); refused by the kernel on send; truncated, malformed or oversize;
// and lost in the kernel because the ingress ring was full (never received).
func (b *bridge) dropReasons(c *peer.Counters) []reason {
	rules, txErr := c.Dropped, c.TXErrors
	var panics uint64
	if b.cfg.OnPanic == peer.FailClosed {
		panics = min(c.Panics, rules)
		rules -= panics
	}
	if b.cfg.OnLinkDown == peer.FailClosed {
		rules -= min(c.PortDown, rules)
	} else {
		txErr -= min(c.PortDown, txErr)
	}
	return []reason{
		{reasonRules, rules}, {reasonPanic, panics}, {reasonPortDown, c.PortDown}, {reasonTXError, txErr},
		{reasonTruncated, c.Truncated}, {reasonMalformed, c.Malformed}, {reasonOversize, c.Oversize},
		{reasonKernel, c.KernelDrops},
	}
}

// finalLines sums up a bridge's whole run, one line per direction; counters that are usually
// zero are shown only when they are not.
func (b *bridge) finalLines(s snapshot) []string {
	el := s.at.Sub(b.started)
	var out []string
	for d := range s.stats.Total {
		c := s.stats.Total[d]
		var w strings.Builder
		fmt.Fprintf(&w, "  %s: received %d, forwarded %d, dropped %d, would-drop %d, kernel-packets %d, kernel-drops %d, %s (%s)",
			b.dirName(verdict.Direction(d)), c.Received, c.Forwarded, c.Dropped, c.WouldDrop, c.KernelPackets, c.KernelDrops,
			byteCount(s.stats.Total[d].Bytes), bitRate(8*float64(s.stats.Total[d].Bytes)/max(el.Seconds(), 1e-9)))
		for _, x := range []struct {
			name string
			v    uint64
		}{
			{"truncated", c.Truncated}, {"malformed", c.Malformed}, {"oversize", c.Oversize},
			{"fragments", c.Fragments}, {"tx-errors", c.TXErrors}, {"flush-errors", c.FlushErrors},
			{"tx-ring-full", c.TXRingFull}, {"verdict-panics", c.Panics}, {"port-down", c.PortDown}, {"freezes", c.Freezes},
			{"bypassed", c.Bypassed},
		} {
			if x.v != 0 {
				fmt.Fprintf(&w, ", %s %d", x.name, x.v)
			}
		}
		out = append(out, w.String())
	}
	out = append(out, b.bypassFinal(s)...)
	return append(out, " "+strings.TrimPrefix(b.portLine([2]peer.Port{s.stats.A, s.stats.B}), "stats"))
}

// eveStats builds the EVE stats event of all bridges at now: totals since the start.
func (a *app) eveStats(now time.Time) eve.Event {
	st := &eve.Stats{IPS: eve.StatsIPS{DropReason: map[string]uint64{}}}
	start := now
	for _, b := range a.bridges {
		if !b.started.IsZero() && b.started.Before(start) {
			start = b.started
		}
		s := b.br.Stats()
		for d := range s.Total {
			c := &s.Total[d]
			st.Capture.KernelPackets += c.KernelPackets
			st.Capture.KernelDrops += c.KernelDrops
			st.Decoder.Pkts += c.Received
			st.Decoder.Bytes += c.Bytes
			st.IPS.Accepted += c.Forwarded
			for _, r := range b.dropReasons(c) {
				if r.name == reasonKernel {
					continue // never received: capture.kernel_drops
				}
				st.IPS.Blocked += r.n
				st.IPS.DropReason[strings.ReplaceAll(r.name, "-", "_")] += r.n
			}
		}
	}
	st.IPS.Rejected = a.eng.rejected.Load()
	st.Uptime = int64(now.Sub(start) / time.Second)
	return eve.Event{Timestamp: eve.Time(now), EventType: "stats", Stats: st}
}

// writeEVEStats queues a stats event when there is an EVE log.
func (a *app) writeEVEStats() {
	if a.eng.eve != nil {
		a.eng.eve.Write(a.eveStats(time.Now()))
	}
}

// rate formats a per-second rate with three significant digits.
func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// bitRate formats bits per second in SI units, as network rates are.
func bitRate(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f Gbit/s", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1f Mbit/s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f kbit/s", v/1e3)
	}
	return fmt.Sprintf("%.0f bit/s", v)
}

// byteCount formats a byte count in binary units, as sizes are.
func byteCount(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
