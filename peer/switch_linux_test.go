//go:build linux

package peer_test

import (
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSwitchOnRunningBridge swaps the verdict while frames flow: every frame gets exactly one
// verdict, from the old factory or the new one, and none is lost in the swap.
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
	go func() { got <- server.CountTest(n, time.Second, nil, nil) }()
	for i, f := range frames {
		if i == n/2 {
			sw.Set(verdict.Shared(verdict.DropAll))
		}
		require.NoError(t, client.Send(f))
		if i%100 == 99 {
			time.Sleep(2 * time.Millisecond) // stay well below ring capacity
		}
	}
	arrived := <-got
	var c = br.Stats().Dir(verdict.AToB)
	require.Eventually(t, func() bool {
		c = br.Stats().Dir(verdict.AToB)
		return c.Received == n
	}, 2*time.Second, 10*time.Millisecond, "every frame reached the bridge")
	assert.Equal(t, uint64(n), c.Forwarded+c.Dropped, "every frame got exactly one verdict")
	assert.Equal(t, c.Forwarded, uint64(arrived), "what passed arrived")
	assert.GreaterOrEqual(t, c.Dropped, uint64(n/2), "after the swap everything is dropped")
	assert.GreaterOrEqual(t, c.Forwarded, uint64(n/2)-200, "before the swap everything passed")
	t.Logf("passed %d, dropped %d, arrived %d", c.Forwarded, c.Dropped, arrived)
}
