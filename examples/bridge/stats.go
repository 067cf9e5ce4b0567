//go:build linux

package main

import (
	"fmt"
	"strings"
	"time"

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
		out = append(out, fmt.Sprintf("stats %s: %s frames/s %s, forwarded %d dropped %d would-drop %d kernel-drops %d (last %s)",
			b.dirName(verdict.Direction(d)), rate(float64(frames)/dt), bitRate(bits/dt),
			c.Forwarded-p.Forwarded, c.Dropped-p.Dropped, c.WouldDrop-p.WouldDrop, c.KernelDrops-p.KernelDrops,
			cur.at.Sub(prev.at).Round(100*time.Millisecond)))
	}
	return append(out, b.bypassInterval(prev, cur)...)
}

// finalLines sums up a bridge's whole run, one line per direction; counters that are usually
// zero are shown only when they are not.
func (b *bridge) finalLines(s snapshot) []string {
	el := s.at.Sub(b.started)
	var out []string
	for d := range s.stats.Total {
		c := s.stats.Total[d]
		var w strings.Builder
		fmt.Fprintf(&w, "  %s: received %d, forwarded %d, dropped %d, would-drop %d, kernel-drops %d, %s (%s)",
			b.dirName(verdict.Direction(d)), c.Received, c.Forwarded, c.Dropped, c.WouldDrop, c.KernelDrops,
			byteCount(s.stats.Total[d].Bytes), bitRate(8*float64(s.stats.Total[d].Bytes)/max(el.Seconds(), 1e-9)))
		for _, x := range []struct {
			name string
			v    uint64
		}{
			{"truncated", c.Truncated}, {"malformed", c.Malformed}, {"oversize", c.Oversize},
			{"fragments", c.Fragments}, {"tx-errors", c.TXErrors}, {"flush-errors", c.FlushErrors},
			{"tx-ring-full", c.TXRingFull}, {"verdict-panics", c.Panics}, {"freezes", c.Freezes},
			{"bypassed", c.Bypassed},
		} {
			if x.v != 0 {
				fmt.Fprintf(&w, ", %s %d", x.name, x.v)
			}
		}
		out = append(out, w.String())
	}
	return append(out, b.bypassFinal(s)...)
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
