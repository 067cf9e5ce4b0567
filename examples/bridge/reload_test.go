package main

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reloadRules returns n rules with distinct 12-byte contents, so that a
// compiled set is large enough (about 8 MiB for 20,000) to see on the heap.
func reloadRules(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "alert tcp any any -> any %d (msg:\"r%d\"; content:\"pat-%08x\"; sid:%d;)\n", 1+i%1000, i, i*2654435761, i+1)
	}
	return b.String()
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestReloadFreesOldSet follows the SIGHUP path (app.reload): the new set is
// parsed while the old one is in force, handed to the Switch with setRules,
// and each worker installs it at its next frame and retires its old handler,
// which held the only references to the old set (and its Result). After a
// forced GC, three reloads leave one set on the heap, not two or four.
func TestReloadFreesOldSet(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles 20,000 rules four times")
	}
	text := reloadRules(20_000)
	b, _, _ := testBridge(t, "", peer.IPS, peer.IPS)
	workers := []verdict.Handler{b.cfg.Verdict.New(0), b.cfg.Verdict.New(1)}
	frame := packet(fromClient("GET / HTTP/1.1"), verdict.AToB)

	load := func() {
		set, err := rules.Parse(strings.NewReader(text), "reload.rules")
		require.NoError(t, err)
		b.setRules(set)
		for _, h := range workers {
			h.Handle(frame) // installs the new handler, retires the old one
		}
	}
	// A first round and a swap back to no rules warm up everything else
	// (EVE writer, Switch, handler chain), so the baseline holds no set.
	load()
	b.setRules(nil)
	for _, h := range workers {
		h.Handle(frame)
	}
	base := int64(liveHeap())
	load()
	one := int64(liveHeap()) - base
	for range 3 {
		load()
	}
	after := int64(liveHeap()) - base
	t.Logf("one set in force: %.1f MiB; after three reloads: %.1f MiB", float64(one)/(1<<20), float64(after)/(1<<20))
	assert.Greater(t, one, int64(2<<20), "the set is big enough to measure")
	assert.Less(t, float64(after), 1.5*float64(one), "old sets are freed once the workers moved on")
	assert.Greater(t, float64(after), 0.5*float64(one), "the set in force is still there")
	runtime.KeepAlive(b)
	runtime.KeepAlive(workers)
}
