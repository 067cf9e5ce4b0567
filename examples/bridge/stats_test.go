//go:build linux

package main

import (
	"testing"
	"time"

	"github.com/afbridge/afbridge/peer"
	"github.com/stretchr/testify/assert"
)

// testStats sums one worker's counters into totals, as peer.Bridge.Stats does.
func testStats(workers [][2]peer.Counters) peer.Stats {
	st := peer.Stats{Workers: workers}
	for d := range st.Total {
		st.Total[d] = workers[0][d]
	}
	return st
}

func TestIntervalLines(t *testing.T) {
	b := newBridge(&engine{}, peer.Config{A: peer.Side{Interface: "eth0"}, B: peer.Side{Interface: "eth1"}}, "", nil)
	t0 := time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC)
	prev := snapshot{at: t0, stats: testStats([][2]peer.Counters{{{Received: 100, Forwarded: 100, KernelPackets: 100}, {Received: 10, Forwarded: 10}}})}
	cur := snapshot{
		at: t0.Add(10 * time.Second),
		stats: testStats([][2]peer.Counters{{
			{Received: 20100, Bytes: 125_000_000, Forwarded: 20085, Dropped: 10, Truncated: 1, TXErrors: 4, PortDown: 3, KernelPackets: 20103, KernelDrops: 3},
			{Received: 15, Bytes: 1_000, Forwarded: 12, WouldDrop: 3},
		}}),
	}
	cur.stats.A, cur.stats.B = peer.Port{Name: "eth0", Up: true, Downs: 1, Ups: 1}, peer.Port{Name: "eth1", Up: false, Downs: 2, Removals: 1, Rebinds: 1}
	assert.Equal(t, []string{
		"stats eth0->eth1: 2000 frames/s 100.0 Mbit/s, forwarded 19985 dropped 10 would-drop 0 kernel-packets 20003 kernel-drops 3 port-down 3 tx-error 1 truncated 1 (last 10s)",
		"stats eth1->eth0: 0.5 frames/s 800 bit/s, forwarded 2 dropped 0 would-drop 3 kernel-packets 0 kernel-drops 0 (last 10s)",
		"stats ports: eth0 up (downs 1, removals 0, rebinds 0), eth1 DOWN (downs 2, removals 1, rebinds 1)",
	}, b.intervalLines(prev, cur))
}

func TestFinalLines(t *testing.T) {
	b := newBridge(&engine{}, peer.Config{A: peer.Side{Interface: "eth0"}, B: peer.Side{Interface: "eth1"}}, "", nil)
	b.started = time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC)
	s := snapshot{
		at:    b.started.Add(2 * time.Second),
		stats: testStats([][2]peer.Counters{{{Received: 50, Bytes: 3 << 20, Forwarded: 48, Dropped: 1, Truncated: 1, KernelDrops: 7, KernelPackets: 57}, {Received: 5, Bytes: 300, Forwarded: 5}}}),
	}
	s.stats.A, s.stats.B = peer.Port{Up: true}, peer.Port{Up: true}
	assert.EqualValues(t, 7, s.stats.Total[0].KernelDrops)
	assert.EqualValues(t, 48, s.stats.Total[0].Forwarded)
	assert.Equal(t, []string{
		"  eth0->eth1: received 50, forwarded 48, dropped 1, would-drop 0, kernel-packets 57, kernel-drops 7, 3.0 MiB (12.6 Mbit/s), truncated 1",
		"  eth1->eth0: received 5, forwarded 5, dropped 0, would-drop 0, kernel-packets 0, kernel-drops 0, 300 bytes (1.2 kbit/s)",
		"  ports: eth0 up (downs 0, removals 0, rebinds 0), eth1 up (downs 0, removals 0, rebinds 0)",
	}, b.finalLines(s))
}

// TestDropReasons: every frame that did not leave is in exactly one reason, whichever way the
// failure policies count it.
func TestDropReasons(t *testing.T) {
	c := peer.Counters{Dropped: 20, TXErrors: 7, Panics: 4, PortDown: 5, Truncated: 1, Malformed: 2, Oversize: 3, KernelDrops: 9}
	for _, tc := range []struct {
		name          string
		panic, link   peer.Policy
		rules, txErr  uint64
		panicsDropped uint64
	}{
		// Fail-open: panicked frames were forwarded; port-down frames are in TXErrors.
		{"fail-open", peer.FailOpen, peer.FailOpen, 20, 2, 0},
		// Fail-closed: both are in Dropped.
		{"fail-closed", peer.FailClosed, peer.FailClosed, 11, 7, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBridge(&engine{}, peer.Config{A: peer.Side{Interface: "a"}, B: peer.Side{Interface: "b"}, OnPanic: tc.panic, OnLinkDown: tc.link}, "", nil)
			got := map[string]uint64{}
			for _, r := range b.dropReasons(&c) {
				got[r.name] = r.n
			}
			assert.Equal(t, map[string]uint64{
				reasonRules: tc.rules, reasonPanic: tc.panicsDropped, reasonPortDown: 5, reasonTXError: tc.txErr,
				reasonTruncated: 1, reasonMalformed: 2, reasonOversize: 3, reasonKernel: 9,
			}, got)
			var sum uint64
			for name, n := range got {
				if name != reasonKernel {
					sum += n
				}
			}
			assert.Equal(t, c.Dropped+c.TXErrors+c.Truncated+c.Malformed+c.Oversize, sum, "a partition of what was received and not forwarded")
		})
	}
}

func TestUnits(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{rate(0), "0"}, {rate(1.234), "1.23"}, {rate(150), "150"}, {rate(12_345), "12.3k"}, {rate(2_500_000), "2.5M"},
		{bitRate(999), "999 bit/s"}, {bitRate(1500), "1.5 kbit/s"}, {bitRate(2.25e9), "2.25 Gbit/s"},
		{byteCount(1023), "1023 bytes"}, {byteCount(1536), "1.5 KiB"}, {byteCount(5 << 30), "5.00 GiB"},
	} {
		assert.Equal(t, c.want, c.got)
	}
}
