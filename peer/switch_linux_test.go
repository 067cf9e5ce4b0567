//go:build linux

package peer_test

import (
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSwitchOnRunningBridge swaps the verdict while the bridge runs: every frame gets exactly one
// verdict, from the old factory before the swap and from the new one after it, and none is lost.
// The swap waits until the first half has been judged, so the test asserts no timing.
func TestSwitchOnRunningBridge(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	sw := verdict.NewSwitch(verdict.Shared(verdict.PassAll))
	cfg.Verdict = sw
	br := tp.start(t, cfg)
	client, server := tp.open(t)

	const n = 3000
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = pktgen.Frame(nil, tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr, uint32(i), 64+i%200)
	}
	got := make(chan int, 1)
	// The sink's idle timeout only bounds a failure: each frame restarts it.
	go func() { got <- server.CountTest(n/2, 30*time.Second, nil, nil) }()
	var c peer.Counters
	// received waits until the bridge has taken want frames from side A. Sending waits for it
	// after every batch, so the RX ring never holds more than one batch however slowly the
	// workers run (-race, a loaded machine): a frame the ring dropped would never be Received.
	received := func(want int, msg string) {
		t.Helper()
		for end := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
			c = br.Stats().Dir(verdict.AToB)
			if c.Received >= uint64(want) || time.Now().After(end) {
				break
			}
		}
		require.Equal(t, uint64(want), c.Received, "%s: %+v", msg, c)
	}
	const batch = 100
	for i, f := range frames {
		if i == n/2 {
			received(n/2, "the first half reached the bridge")
			require.NoError(t, sw.Set(verdict.Shared(verdict.DropAll)))
		}
		require.NoError(t, client.Send(f))
		if i%batch == batch-1 && i != n/2-1 {
			received(i+1, "a batch reached the bridge")
		}
	}
	received(n, "every frame reached the bridge")
	arrived := <-got
	assert.Equal(t, uint64(n/2), c.Forwarded, "before the swap everything passed")
	assert.Equal(t, uint64(n/2), c.Dropped, "after the swap everything is dropped")
	assert.Equal(t, n/2, arrived, "what passed arrived")
}
