//go:build linux

package main

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/afbridge/afbridge/bypass"
	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHandlerBypass: the worker's handler bypasses a flow once it has passed -bypass-after bytes
// (both directions, frame bytes), at once for a pass rule with the bypass option, and never a
// flow that raised an alert or had a drop.
func TestHandlerBypass(t *testing.T) {
	const (
		P = verdict.Pass
		D = verdict.Drop
		B = verdict.Bypass
	)
	type frame struct {
		dir     verdict.Direction
		payload string
		want    verdict.Verdict
	}
	pad := strings.Repeat("x", 46) // 100-byte frames (longer with a rule's content)
	for _, tc := range []struct {
		name   string
		rules  string
		after  int64 // -1: no -bypass-after
		frames []frame
	}{
		{"after 0: the first frame", "", 0, []frame{{0, pad, B}, {1, pad, B}}},
		{"after 250: both directions count", "", 250, []frame{{0, pad, P}, {1, pad, P}, {0, pad, B}, {1, pad, B}}},
		{"off", "", -1, []frame{{0, pad, P}, {1, pad, P}, {0, pad, P}}},
		{"an alert keeps the flow inspected", `alert tcp any any -> any any (msg:"a"; content:"hello"; sid:1;)`, 0,
			[]frame{{0, "hello" + pad, P}, {1, pad, P}, {0, pad, P}}},
		{"a drop keeps it dropped", `drop tcp any any -> any any (msg:"d"; content:"bad"; sid:1;)`, 0,
			[]frame{{0, "bad" + pad, D}, {1, pad, D}}},
		{"passed before a drop rule matches", `drop tcp any any -> any any (msg:"d"; content:"bad"; sid:1;)`, 250,
			[]frame{{0, pad, P}, {1, "bad" + pad, D}, {0, pad, D}}},
		{"bypass rule", `pass tcp any any <> any 80 (bypass; sid:1;)`, -1, []frame{{0, pad, B}, {1, pad, B}}},
		{"bypass rule for another port", `pass tcp any any <> any 443 (bypass; sid:1;)`, -1, []frame{{0, pad, P}}},
		{"pass rule without bypass", `pass tcp any any <> any 80 (sid:1;)`, -1, []frame{{0, pad, P}, {1, pad, P}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := rules.Parse(strings.NewReader(tc.rules), "test.rules")
			require.NoError(t, err)
			b := newBridge(&engine{}, peer.Config{A: peer.Side{Interface: "b0"}, B: peer.Side{Interface: "b1"}}, "", set)
			if tc.after >= 0 {
				b.bypassAfter = tc.after
				b.setRules(set)
			}
			h := b.rulesFactory(set).New(0)
			seq := [2]uint32{1000, 5000}
			for i, f := range tc.frames {
				var data []byte
				if f.dir == verdict.AToB {
					data = tcpFrame(macClient, macServer, ipClient, ipServer, 40000, 80, f.payload)
				} else {
					data = tcpFrame(macServer, macClient, ipServer, ipClient, 80, 40000, f.payload)
				}
				binary.BigEndian.PutUint32(data[14+20+4:], seq[f.dir])
				binary.BigEndian.PutUint32(data[14+20+8:], seq[1-f.dir])
				seq[f.dir] += uint32(len(f.payload))
				assert.Equal(t, f.want, h.Handle(packet(data, f.dir)), "frame %d", i)
			}
		})
	}
}

// TestHandlerBypassAllocs: deciding to bypass allocates nothing per frame.
func TestHandlerBypassAllocs(t *testing.T) {
	b := newBridge(&engine{}, peer.Config{A: peer.Side{Interface: "b0"}, B: peer.Side{Interface: "b1"}}, "", nil)
	b.bypassAfter = 1 << 40
	b.setRules(nil)
	h := b.rulesFactory(nil).New(0)
	p := packet(fromClient(""), verdict.AToB) // no payload: nothing for the stream to keep
	h.Handle(p)
	assert.Zero(t, testing.AllocsPerRun(1000, func() { h.Handle(p) }))
}

// TestBypassLines: the fast path's -stats line (rates and flow changes over the interval) and
// final line (totals); a bridge without bypass prints neither, one whose fast path did not run
// says so.
func TestBypassLines(t *testing.T) {
	cfg := peer.Config{A: peer.Side{Interface: "eth0"}, B: peer.Side{Interface: "eth1"}, Bypass: peer.BypassConfig{Enable: true}}
	b := newBridge(&engine{}, cfg, "", nil)
	b.started = time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC)
	counters := [][2]peer.Counters{{{Received: 10, Forwarded: 10, Bypassed: 2}, {Received: 4, Forwarded: 4}}}
	prev := snapshot{at: b.started, stats: testStats(counters)}
	prev.stats.BypassActive = true
	prev.stats.Bypass = bypass.Stats{Current: 1, Total: 1, Frames: [2]uint64{10, 20}, Bytes: [2]uint64{1000, 30000}}
	cur := snapshot{at: b.started.Add(10 * time.Second), stats: testStats(counters)}
	cur.stats.BypassActive = true
	cur.stats.Bypass = bypass.Stats{Current: 2, Total: 5, Expired: 1, Closed: 1, Withdrawn: 1, Frames: [2]uint64{1010, 20020}, Bytes: [2]uint64{101000, 125_030_000}}
	assert.Equal(t, "stats bypass eth0 <-> eth1: flows 2, new 4, expired 1, closed 1, evicted 0, withdrawn 1; fast path eth0->eth1 100 frames/s 80.0 kbit/s; fast path eth1->eth0 2000 frames/s 100.0 Mbit/s",
		b.intervalLines(prev, cur)[2])
	final := b.finalLines(cur)
	require.Len(t, final, 4) // and the ports' line
	assert.Equal(t, "  eth0->eth1: received 10, forwarded 10, dropped 0, would-drop 0, kernel-packets 0, kernel-drops 0, 0 bytes (0 bit/s), bypassed 2", final[0])
	assert.Equal(t, "  bypass: flows 5 (current 2, expired 1, closed 1, evicted 0, withdrawn 1), fast path eth0->eth1 1010 frames 98.6 KiB, fast path eth1->eth0 20020 frames 119.2 MiB", final[2])

	cur.stats.BypassActive = false
	assert.Len(t, b.intervalLines(prev, cur), 3, "no line when the fast path does not run (directions, ports)")
	assert.Contains(t, b.finalLines(cur)[2], "the kernel fast path did not run")

	off := newBridge(&engine{}, peer.Config{A: peer.Side{Interface: "eth0"}, B: peer.Side{Interface: "eth1"}}, "", nil)
	assert.Len(t, off.finalLines(cur), 3, "no bypass line without bypass (directions, ports)")
}
