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
	prev := snapshot{at: t0, stats: testStats([][2]peer.Counters{{{Received: 100, Forwarded: 100}, {Received: 10, Forwarded: 10}}})}
	cur := snapshot{
		at: t0.Add(10 * time.Second),
		stats: testStats([][2]peer.Counters{{
			{Received: 20100, Bytes: 125_000_000, Forwarded: 20090, Dropped: 10, KernelDrops: 3},
			{Received: 15, Bytes: 1_000, Forwarded: 12, WouldDrop: 3},
		}}),
	}
	assert.Equal(t, []string{
		"stats eth0->eth1: 2000 frames/s 100.0 Mbit/s, forwarded 19990 dropped 10 would-drop 0 kernel-drops 3 (last 10s)",
		"stats eth1->eth0: 0.5 frames/s 800 bit/s, forwarded 2 dropped 0 would-drop 3 kernel-drops 0 (last 10s)",
	}, b.intervalLines(prev, cur))
}

func TestFinalLines(t *testing.T) {
	b := newBridge(&engine{}, peer.Config{A: peer.Side{Interface: "eth0"}, B: peer.Side{Interface: "eth1"}}, "", nil)
	b.started = time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC)
	s := snapshot{
		at:    b.started.Add(2 * time.Second),
		stats: testStats([][2]peer.Counters{{{Received: 50, Bytes: 3 << 20, Forwarded: 48, Dropped: 1, Truncated: 1, KernelDrops: 7, KernelPackets: 50}, {Received: 5, Bytes: 300, Forwarded: 5}}}),
	}
	assert.EqualValues(t, 7, s.stats.Total[0].KernelDrops)
	assert.EqualValues(t, 48, s.stats.Total[0].Forwarded)
	assert.Equal(t, []string{
		"  eth0->eth1: received 50, forwarded 48, dropped 1, would-drop 0, kernel-drops 7, 3.0 MiB (12.6 Mbit/s), truncated 1",
		"  eth1->eth0: received 5, forwarded 5, dropped 0, would-drop 0, kernel-drops 0, 300 bytes (1.2 kbit/s)",
	}, b.finalLines(s))
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
