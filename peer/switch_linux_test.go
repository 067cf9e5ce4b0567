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
	go func() { got <- server.CountTest(n/2, 10*time.Second, nil, nil) }()
	var c peer.Counters
	for i, f := range frames {
		if i == n/2 {
			require.Eventually(t, func() bool {
				c = br.Stats().Dir(verdict.AToB)
				return c.Received == n/2
			}, 20*time.Second, 5*time.Millisecond, "the first half reached the bridge")
			require.NoError(t, sw.Set(verdict.Shared(verdict.DropAll)))
		}
		require.NoError(t, client.Send(f))
		if i%100 == 99 {
			time.Sleep(2 * time.Millisecond) // stay well below ring capacity
		}
	}
	require.Eventually(t, func() bool {
		c = br.Stats().Dir(verdict.AToB)
		return c.Received == n
	}, 20*time.Second, 5*time.Millisecond, "every frame reached the bridge")
	arrived := <-got
	assert.Equal(t, uint64(n/2), c.Forwarded, "before the swap everything passed")
	assert.Equal(t, uint64(n/2), c.Dropped, "after the swap everything is dropped")
	assert.Equal(t, n/2, arrived, "what passed arrived")
}
