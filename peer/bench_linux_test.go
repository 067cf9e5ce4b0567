//go:build linux

package peer_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pushFrames sends n copies of frame from the client and counts them at the server, keeping at
// most window frames in flight so that no ring overflows; it returns how many arrived.
func pushFrames(tb testing.TB, tp *topo, n, window int, frame []byte) int {
	client, server := tp.open(tb)
	var got atomic.Int64
	done := make(chan int, 1)
	go func() {
		done <- server.CountTest(n, time.Second, nil, func(k int) { got.Store(int64(k)) })
	}()
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < n; i++ {
		for int64(i)-got.Load() >= int64(window) {
			if time.Now().After(deadline) {
				tb.Fatalf("sink stalled at %d of %d frames", got.Load(), i)
			}
			runtime.Gosched()
		}
		require.NoError(tb, client.Send(frame))
	}
	return <-done
}

// BenchmarkForward measures frames per second and allocations through a one-worker bridge on a
// veth pair: the generator and sink allocate nothing, so allocs/op is the bridge's own. The
// cluster=ebpf case runs every frame through the IP-pair fanout program.
func BenchmarkForward(b *testing.B) {
	for _, bc := range []struct {
		size int
		typ  fanout.Mode
	}{{60, fanout.Hash}, {1514, fanout.Hash}, {60, fanout.EBPF}} {
		size := bc.size
		b.Run(fmt.Sprintf("size=%d/cluster=%s", size, bc.typ), func(b *testing.B) {
			tp := newTopo(b, nil)
			cfg := tp.config(1)
			cfg.ClusterType = bc.typ
			br := tp.start(b, cfg)
			frame := pktgen.Frame(nil, tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr, 1, size)
			pushFrames(b, tp, 100, 100, frame) // warm up
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			got := pushFrames(b, tp, b.N, 128, frame)
			el := time.Since(start)
			b.StopTimer()
			if got != b.N {
				b.Fatalf("%d of %d frames arrived; %+v", got, b.N, br.Stats().Dir(verdict.AToB))
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "frames/s")
		})
	}
}

// TestForwardAllocatesNothing checks the hot path's promise: forwarding 20,000 frames (copy,
// VLAN restore, verdict, commit, flush) allocates nothing per frame.
func TestForwardAllocatesNothing(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(1)
	cfg.Verdict = verdict.Shared(verdict.Chain(verdict.PassAll, verdict.Func(func(p *verdict.Packet) verdict.Verdict {
		if len(p.Data) == 0 {
			return verdict.Drop
		}
		return verdict.Pass
	})))
	tp.start(t, cfg)
	frame := pktgen.Tag(pktgen.Frame(nil, tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr, 1, 200), 0x8100, 7)
	pushFrames(t, tp, 200, 100, frame) // warm up: first-use allocations, goroutine stacks
	const n = 20000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got := pushFrames(t, tp, n, 128, frame)
	runtime.ReadMemStats(&after)
	require.Equal(t, n, got)
	perFrame := float64(after.Mallocs-before.Mallocs) / n
	t.Logf("%d allocations for %d frames (%.4f per frame), test harness included", after.Mallocs-before.Mallocs, n, perFrame)
	assert.Less(t, perFrame, 0.01, "the forwarding path allocates per frame")
}
