//go:build linux

package peer_test

import (
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openFDs lists the process's open sockets and eventfds, what a bridge opens (its namespace
// handle is closed with its eventfd), by descriptor.
func openFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	m := map[string]string{}
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if strings.HasPrefix(l, "socket:") || l == "anon_inode:[eventfd]" {
			m[e.Name()] = l
		}
	}
	return m
}

// startWithin runs br.Start in the bridge namespace and fails the test if it does not return
// within a generous bound (a deadlock).
func startWithin(t *testing.T, tp *topo, br *peer.Bridge) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- tp.bridge.Do(br.Start) }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Start did not return: deadlock")
		return nil
	}
}

// TestFactoryContract: New is called once per worker, in order, on the goroutine that calls Start,
// with no bridge lock held (it may call Stats); a New that panics or returns nil fails Start with
// a FactoryError, retires the handlers already made, and leaves no descriptor open.
func TestFactoryContract(t *testing.T) {
	tp := newTopo(t, nil)

	t.Run("calls Stats", func(t *testing.T) {
		cfg := tp.config(3)
		var br *peer.Bridge
		var made []int // appended without a lock: -race proves New is never concurrent
		var workersSeen []int
		cfg.Verdict = verdict.FactoryFunc(func(w int) verdict.Handler {
			made = append(made, w)
			workersSeen = append(workersSeen, len(br.Stats().Workers))
			return verdict.PassAll
		})
		br, err := peer.New(cfg)
		require.NoError(t, err)
		require.NoError(t, startWithin(t, tp, br))
		defer br.Close()
		assert.Equal(t, []int{0, 1, 2}, made)
		assert.Equal(t, []int{3, 3, 3}, workersSeen, "Stats has one entry per worker from New on")
		assert.ErrorIs(t, br.Start(), peer.ErrStarted)
	})

	retired := func(n *atomic.Int32) verdict.Handler {
		return closeFunc{Handler: verdict.PassAll, close: func() { n.Add(1) }}
	}
	for _, tc := range []struct {
		name  string
		fail  func(w int) verdict.Handler
		check func(t *testing.T, err error)
	}{
		{"panics", func(int) verdict.Handler { panic("boom") }, func(t *testing.T, err error) {
			var fe *peer.FactoryError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, 1, fe.Worker)
			assert.Equal(t, "boom", fe.Panic)
			assert.Contains(t, err.Error(), "Config.Verdict.New(1) panicked: boom")
		}},
		{"panics with an error", func(int) verdict.Handler { panic(os.ErrInvalid) }, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, os.ErrInvalid)
		}},
		{"returns nil", func(int) verdict.Handler { return nil }, func(t *testing.T, err error) {
			assert.ErrorIs(t, err, verdict.ErrNilHandler)
			var fe *peer.FactoryError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, 1, fe.Worker)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var closed atomic.Int32
			cfg := tp.config(2)
			cfg.Verdict = verdict.FactoryFunc(func(w int) verdict.Handler {
				if w == 0 {
					return retired(&closed)
				}
				return tc.fail(w)
			})
			before := openFDs(t)
			br, err := peer.New(cfg)
			require.NoError(t, err)
			err = startWithin(t, tp, br)
			require.Error(t, err)
			tc.check(t, err)
			assert.Equal(t, int32(1), closed.Load(), "the handler made before the failure is retired")
			assert.Equal(t, before, openFDs(t), "no descriptor left open")
			// No lock is left held: Stats and Close return, and the bridge can still be closed.
			_ = br.Stats()
			require.NoError(t, br.Close())
			assert.ErrorIs(t, br.Start(), peer.ErrClosed)
			assert.ErrorIs(t, br.Start(), os.ErrClosed)
		})
	}
}

// TestFactoryContractSwitch: a Switch whose Factory fails makes Start fail the same way.
func TestFactoryContractSwitch(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	cfg.Verdict = verdict.NewSwitch(verdict.FactoryFunc(func(w int) verdict.Handler {
		if w == 1 {
			return nil
		}
		return verdict.PassAll
	}))
	br, err := peer.New(cfg)
	require.NoError(t, err)
	err = startWithin(t, tp, br)
	assert.ErrorIs(t, err, verdict.ErrNilHandler)
	var fe *peer.FactoryError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, 1, fe.Worker)
	require.NoError(t, br.Close())
}

type closeFunc struct {
	verdict.Handler
	close func()
}

func (c closeFunc) Close() { c.close() }

// tickRecorder records the goroutine-visible facts of each Tick.
type tickRecorder struct {
	verdict.Handler
	ticks  atomic.Int32
	closed atomic.Int32
	cpuOK  atomic.Bool
	cpu    int
}

func (r *tickRecorder) Tick(time.Time) {
	r.ticks.Add(1)
	if r.cpu >= 0 {
		var set unix.CPUSet
		if unix.SchedGetaffinity(0, &set) == nil {
			r.cpuOK.Store(set.Count() == 1 && set.IsSet(r.cpu))
		}
	}
}

func (r *tickRecorder) Close() error { r.closed.Add(1); return nil }

// TestTickIdleWorker: with no traffic at all, every worker's Tick is called, on its own
// goroutine; Close is called once per handler when the bridge closes.
func TestTickIdleWorker(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	cfg.TickInterval = 20 * time.Millisecond
	recs := []*tickRecorder{{Handler: verdict.PassAll, cpu: -1}, {Handler: verdict.PassAll, cpu: -1}}
	cfg.Verdict = verdict.FactoryFunc(func(w int) verdict.Handler { return recs[w] })
	br := tp.start(t, cfg)
	for w, r := range recs {
		require.Eventually(t, func() bool { return r.ticks.Load() >= 3 }, 10*time.Second, 5*time.Millisecond,
			"worker %d ticks while idle", w)
	}
	st := br.Stats()
	assert.Zero(t, st.Dir(verdict.AToB).Received+st.Dir(verdict.BToA).Received, "no traffic: the ticks came from idle workers")
	require.NoError(t, br.Close())
	for w, r := range recs {
		assert.Equal(t, int32(1), r.closed.Load(), "worker %d's handler closed once", w)
	}
}

// TestPinnedWorkers: with Config.CPUs, each worker's goroutine runs on a thread whose affinity is
// its one CPU.
func TestPinnedWorkers(t *testing.T) {
	var allowed unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &allowed))
	var cpus []int
	for c := 0; len(cpus) < 2 && c < 1024; c++ {
		if allowed.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	tp := newTopo(t, nil)
	cfg := tp.config(3)
	cfg.CPUs = cpus
	cfg.TickInterval = 10 * time.Millisecond
	var recs []*tickRecorder
	for w := range 3 {
		recs = append(recs, &tickRecorder{Handler: verdict.PassAll, cpu: cpus[w%len(cpus)]})
	}
	cfg.Verdict = verdict.FactoryFunc(func(w int) verdict.Handler { return recs[w] })
	tp.start(t, cfg)
	for w, r := range recs {
		require.Eventually(t, r.cpuOK.Load, 10*time.Second, 5*time.Millisecond, "worker %d pinned to CPU %d", w, r.cpu)
	}

	bad := tp.config(1)
	bad.CPUs = []int{-1}
	err := peer.Validate(bad)
	var ce *peer.ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "CPUs", ce.Field)
	assert.Contains(t, err.Error(), "CPU -1 is not one this process may run on")
}

// TestSwitchRetiresOnIdleWorker: after Set, an idle worker installs its new handler at its next
// tick and closes the old one on its own goroutine; the new handlers are closed at Close.
func TestSwitchRetiresOnIdleWorker(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	cfg.TickInterval = 10 * time.Millisecond
	var mu sync.Mutex
	gens := map[string][]*tickRecorder{}
	factory := func(gen string) verdict.Factory {
		return verdict.FactoryFunc(func(int) verdict.Handler {
			r := &tickRecorder{Handler: verdict.PassAll, cpu: -1}
			mu.Lock()
			gens[gen] = append(gens[gen], r)
			mu.Unlock()
			return r
		})
	}
	sw := verdict.NewSwitch(factory("old"))
	cfg.Verdict = sw
	br := tp.start(t, cfg)
	require.NoError(t, sw.Set(factory("new")))
	mu.Lock()
	old, cur := gens["old"], gens["new"]
	mu.Unlock()
	require.Len(t, old, 2)
	require.Len(t, cur, 2, "Set made one handler per worker, eagerly")
	for w := range old {
		require.Eventually(t, func() bool { return old[w].closed.Load() == 1 }, 10*time.Second, 5*time.Millisecond,
			"idle worker %d retired its old handler", w)
		require.Eventually(t, func() bool { return cur[w].ticks.Load() > 0 }, 10*time.Second, 5*time.Millisecond,
			"idle worker %d ticks its new handler", w)
	}
	require.NoError(t, br.Close())
	for w := range cur {
		assert.Equal(t, int32(1), cur[w].closed.Load(), "worker %d's new handler closed at Close", w)
		assert.Equal(t, int32(1), old[w].closed.Load(), "the old one only once")
	}
}

// TestBypassForwards: until a fast path exists, Bypass forwards like Pass and is counted in
// Bypassed, within Forwarded.
func TestBypassForwards(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(1)
	cfg.Verdict = verdict.Shared(verdict.Func(func(*verdict.Packet) verdict.Verdict { return verdict.Bypass }))
	br := tp.start(t, cfg)
	client, server := tp.open(t)
	const n = 50
	for i := range n {
		require.NoError(t, client.Send(pktgen.Frame(nil, tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr, uint32(i), 64)))
	}
	// The server's socket queues what arrives; it is counted once the bridge has forwarded it
	// all, so no idle timeout runs before the traffic exists.
	var c peer.Counters
	require.Eventually(t, func() bool { c = br.Stats().Dir(verdict.AToB); return c.Forwarded == n }, 20*time.Second, 5*time.Millisecond)
	assert.Equal(t, n, server.CountTest(n, 2*time.Second, nil, nil))
	assert.Equal(t, uint64(n), c.Bypassed)
	assert.Equal(t, c.Received, c.Forwarded+c.Dropped+c.Truncated+c.Malformed+c.Oversize+c.TXErrors)
}

type panickyTicker struct{ verdict.Handler }

func (panickyTicker) Tick(time.Time) { panic("tick") }

// TestHandlerMisbehaves: a Tick that panics is contained and counted, and a Handle that returns
// a value that is no Verdict gets the failure policy, like a panic.
func TestHandlerMisbehaves(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(1)
	cfg.TickInterval = 10 * time.Millisecond
	cfg.OnPanic = peer.FailClosed
	cfg.Verdict = verdict.Shared(panickyTicker{verdict.Func(func(*verdict.Packet) verdict.Verdict { return 42 })})
	br := tp.start(t, cfg)
	require.Eventually(t, func() bool { return br.Stats().Dir(verdict.AToB).Panics >= 2 }, 20*time.Second, 5*time.Millisecond,
		"Tick panics are counted, and the worker goes on ticking")
	client, _ := tp.open(t)
	const n = 10
	for i := range n {
		require.NoError(t, client.Send(pktgen.Frame(nil, tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr, uint32(i), 64)))
	}
	var c peer.Counters
	require.Eventually(t, func() bool { c = br.Stats().Dir(verdict.AToB); return c.Received == n }, 20*time.Second, 5*time.Millisecond)
	assert.Equal(t, uint64(n), c.Dropped, "fail-closed: an unknown verdict drops")
	assert.Zero(t, c.Forwarded)
}
