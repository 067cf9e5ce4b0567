package verdict_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
)

var (
	udp = []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x00, // Ethernet, IPv4
		0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4, UDP
		0x30, 0x39, 0, 53, 0, 8, 0, 0, // UDP 12345 -> 53
	}
	arp = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1}
)

func marker(b byte) verdict.Handler {
	return verdict.Func(func(p *verdict.Packet) verdict.Verdict {
		for _, c := range p.Data {
			if c == b {
				return verdict.Drop
			}
		}
		return verdict.Pass
	})
}

func TestReadyVerdicts(t *testing.T) {
	var asked atomic.Int32
	counting := verdict.Func(func(*verdict.Packet) verdict.Verdict { asked.Add(1); return verdict.Pass })
	ipv4Only, err := verdict.BPF([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
	require.NoError(t, err)
	tests := []struct {
		name  string
		h     verdict.Handler
		frame []byte
		want  verdict.Verdict
		asked int32 // times the counting handler ran
	}{
		{"pass all", verdict.PassAll, udp, verdict.Pass, 0},
		{"drop all", verdict.DropAll, udp, verdict.Drop, 0},
		{"empty chain", verdict.Chain(), udp, verdict.Pass, 0},
		{"chain all pass", verdict.Chain(counting, verdict.PassAll, counting), udp, verdict.Pass, 2},
		{"chain first drop wins", verdict.Chain(counting, verdict.DropAll, counting), udp, verdict.Drop, 1},
		{"chain marker", verdict.Chain(marker(0x35), counting), udp, verdict.Drop, 0},
		{"chain all bypass", verdict.Chain(bypassAll, bypassAll), udp, verdict.Bypass, 0},
		{"chain bypass needs everyone", verdict.Chain(bypassAll, counting), udp, verdict.Pass, 1},
		{"chain drop beats bypass", verdict.Chain(bypassAll, verdict.DropAll, counting), udp, verdict.Drop, 0},
		{"chain unknown value passes", verdict.Chain(bypassAll, verdict.Func(func(*verdict.Packet) verdict.Verdict { return 9 })), udp, verdict.Pass, 0},
		{"bpf passes ipv4", ipv4Only, udp, verdict.Pass, 0},
		{"bpf drops arp", ipv4Only, arp, verdict.Drop, 0},
		{"bpf drops on run error", mustBPF(t, bpf.LoadAbsolute{Off: 1000, Size: 4}, bpf.RetConstant{Val: 1}), udp, verdict.Drop, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked.Store(0)
			assert.Equal(t, tt.want, tt.h.Handle(&verdict.Packet{Data: tt.frame}))
			assert.Equal(t, tt.asked, asked.Load())
		})
	}
}

var bypassAll = verdict.Func(func(*verdict.Packet) verdict.Verdict { return verdict.Bypass })

func mustBPF(tb testing.TB, prog ...bpf.Instruction) verdict.Handler {
	h, err := verdict.BPF(prog)
	if err != nil {
		panic(err)
	}
	return h
}

func TestBPFErrors(t *testing.T) {
	_, err := verdict.BPF(nil)
	assert.ErrorContains(t, err, "empty")
	_, err = verdict.BPF([]bpf.Instruction{bpf.Jump{Skip: 3}})
	assert.Error(t, err)
}

func TestStrings(t *testing.T) {
	assert.Equal(t, "pass", verdict.Pass.String())
	assert.Equal(t, "drop", verdict.Drop.String())
	assert.Equal(t, "bypass", verdict.Bypass.String())
	assert.Equal(t, "verdict(9)", verdict.Verdict(9).String())
	assert.Equal(t, "A->B", verdict.AToB.String())
	assert.Equal(t, "B->A", verdict.BToA.String())
}

func TestFactoryPerWorker(t *testing.T) {
	var made []int
	f := verdict.FactoryFunc(func(w int) verdict.Handler {
		made = append(made, w)
		return verdict.Func(func(*verdict.Packet) verdict.Verdict { return verdict.Pass })
	})
	f.New(0)
	f.New(1)
	assert.Equal(t, []int{0, 1}, made)
	shared := verdict.Shared(verdict.DropAll)
	assert.Equal(t, verdict.Drop, shared.New(3).Handle(&verdict.Packet{}))
}

// lifecycle records Tick and Close calls and the goroutine-independent order of events.
type lifecycle struct {
	verdict.Handler
	ticks, closes atomic.Int32
}

func (l *lifecycle) Tick(time.Time) { l.ticks.Add(1) }
func (l *lifecycle) Close() error   { l.closes.Add(1); return nil }

type closeNoResult struct {
	verdict.Handler
	closed *bool
}

func (c closeNoResult) Close() { *c.closed = true }

func TestRetire(t *testing.T) {
	l := &lifecycle{Handler: verdict.PassAll}
	require.NoError(t, verdict.Retire(l))
	assert.Equal(t, int32(1), l.closes.Load())
	var closed bool
	require.NoError(t, verdict.Retire(closeNoResult{verdict.PassAll, &closed}))
	assert.True(t, closed, "Close() without a result is called too")
	require.NoError(t, verdict.Retire(verdict.PassAll), "a handler without Close")
	require.NoError(t, verdict.Retire(nil))
	err := verdict.Retire(closeNoResult{verdict.PassAll, nil})
	assert.ErrorContains(t, err, "Close panicked")
}

// TestChainLifecycle: a chain passes Tick and Close on to the handlers that implement them.
func TestChainLifecycle(t *testing.T) {
	a, b := &lifecycle{Handler: verdict.PassAll}, &lifecycle{Handler: verdict.PassAll}
	c := verdict.Chain(a, verdict.PassAll, b)
	tk, ok := c.(verdict.Ticker)
	require.True(t, ok, "a chain is a Ticker")
	tk.Tick(time.Now())
	require.NoError(t, verdict.Retire(c))
	for _, l := range []*lifecycle{a, b} {
		assert.Equal(t, int32(1), l.ticks.Load())
		assert.Equal(t, int32(1), l.closes.Load())
	}
	_, isTicker := verdict.Chain(verdict.PassAll, verdict.DropAll).(verdict.Ticker)
	assert.False(t, isTicker, "a chain of handlers without Tick is no Ticker: workers need not tick it")
}

// TestSwitchFactoryContract: Set calls the new Factory's New once per worker the Switch serves,
// on Set's goroutine (so a Factory that appends to a slice needs no lock, which -race checks
// while the workers run); each worker installs its handler at its next frame or tick, on its own
// goroutine, and retires the old one there; closing a worker's handler retires the current one.
func TestSwitchFactoryContract(t *testing.T) {
	var made []*lifecycle // no lock: New runs on one goroutine at a time
	factory := func(v verdict.Verdict) verdict.Factory {
		return verdict.FactoryFunc(func(int) verdict.Handler {
			l := &lifecycle{Handler: verdict.Func(func(*verdict.Packet) verdict.Verdict { return v })}
			made = append(made, l)
			return l
		})
	}
	s := verdict.NewSwitch(factory(verdict.Pass))
	const workers = 4
	hs := make([]verdict.Handler, workers)
	for w := range hs {
		hs[w] = s.New(w)
	}
	require.Len(t, made, workers)
	old := append([]*lifecycle(nil), made...)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &verdict.Packet{Data: udp, Worker: w}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if w%2 == 0 {
					h.Handle(p) // busy workers switch at a frame
				} else {
					h.(verdict.Ticker).Tick(time.Now()) // idle ones at a tick
				}
			}
		}()
	}
	require.NoError(t, s.Set(factory(verdict.Drop)))
	require.Len(t, made, 2*workers, "Set made every worker's new handler before returning")
	for w := range old {
		require.Eventually(t, func() bool { return old[w].closes.Load() == 1 }, 10*time.Second, time.Millisecond,
			"worker %d retired its old handler", w)
	}
	close(stop)
	wg.Wait()
	for w, h := range hs {
		assert.Equal(t, verdict.Drop, h.Handle(&verdict.Packet{}), "worker %d follows the new factory", w)
		require.NoError(t, verdict.Retire(h))
		assert.Equal(t, int32(1), made[workers+w].closes.Load(), "worker %d's current handler closed", w)
		assert.Equal(t, int32(1), old[w].closes.Load(), "the old one only once")
	}
	// A retired worker no longer follows the Switch: Set makes no handler for it.
	require.NoError(t, s.Set(factory(verdict.Pass)))
	assert.Len(t, made, 2*workers)
}

// TestSwitchSetFailure: a Factory that panics or returns nil leaves the Switch as it was.
func TestSwitchSetFailure(t *testing.T) {
	s := verdict.NewSwitch(verdict.Shared(verdict.DropAll))
	h := s.New(0)
	s.New(1)
	var made []*lifecycle
	err := s.Set(verdict.FactoryFunc(func(w int) verdict.Handler {
		if w == 1 {
			return nil
		}
		l := &lifecycle{Handler: verdict.PassAll}
		made = append(made, l)
		return l
	}))
	require.ErrorIs(t, err, verdict.ErrNilHandler)
	require.Len(t, made, 1)
	assert.Equal(t, int32(1), made[0].closes.Load(), "the handler made before the failure is retired")
	assert.Equal(t, verdict.Drop, h.Handle(&verdict.Packet{}), "the old factory still rules")
	err = s.Set(verdict.FactoryFunc(func(int) verdict.Handler { panic("boom") }))
	assert.ErrorContains(t, err, "panicked: boom")
	assert.Panics(t, func() {
		verdict.NewSwitch(verdict.FactoryFunc(func(int) verdict.Handler { return nil })).New(0)
	}, "New panics, as a Factory may; the bridge reports it from Start")
}

// TestSharedLifecycle: a shared Handler is ticked by every worker and closed once, by the last.
func TestSharedLifecycle(t *testing.T) {
	l := &lifecycle{Handler: verdict.DropAll}
	f := verdict.Shared(l)
	hs := []verdict.Handler{f.New(0), f.New(1), f.New(2)}
	for _, h := range hs {
		assert.Equal(t, verdict.Drop, h.Handle(&verdict.Packet{}))
		h.(verdict.Ticker).Tick(time.Now())
	}
	assert.Equal(t, int32(3), l.ticks.Load())
	for i, h := range hs {
		require.NoError(t, verdict.Retire(h))
		want := int32(0)
		if i == len(hs)-1 {
			want = 1
		}
		assert.Equal(t, want, l.closes.Load(), "after %d of %d workers retired it", i+1, len(hs))
	}
	_, isTicker := verdict.Shared(verdict.PassAll).New(0).(verdict.Ticker)
	assert.False(t, isTicker, "a handler without Tick is not made a Ticker")
	assert.Nil(t, verdict.Shared(nil).New(0), "nil stays nil, for the bridge to refuse")
}

// TestSwitchUnderLoad swaps the factory while workers run: every frame gets a verdict from either
// the old or the new factory, none is skipped, and after the swap all workers follow the new one.
func TestSwitchUnderLoad(t *testing.T) {
	s := verdict.NewSwitch(verdict.Shared(verdict.PassAll))
	const workers, frames = 4, 20000
	var passed, dropped atomic.Int64
	var wg sync.WaitGroup
	swapped := make(chan struct{})
	for w := range workers {
		h := s.New(w)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &verdict.Packet{Data: udp, Worker: w}
			for i := range frames {
				if i == frames/2 {
					<-swapped
				}
				if h.Handle(p) == verdict.Drop {
					dropped.Add(1)
				} else {
					passed.Add(1)
				}
			}
		}()
	}
	s.Set(verdict.Shared(verdict.DropAll))
	close(swapped)
	wg.Wait()
	assert.Equal(t, int64(workers*frames), passed.Load()+dropped.Load(), "every frame got exactly one verdict")
	assert.GreaterOrEqual(t, dropped.Load(), int64(workers*frames/2), "after the swap every frame is dropped")

	require.NoError(t, s.Set(nil))
	assert.Equal(t, verdict.Pass, s.New(0).Handle(&verdict.Packet{}), "nil means pass all")
}

func TestNoAllocations(t *testing.T) {
	bpfH := mustBPF(t, bpf.RetConstant{Val: 1})
	for name, h := range map[string]verdict.Handler{
		"chain":  verdict.Chain(verdict.PassAll, marker(0xee), bpfH),
		"switch": verdict.NewSwitch(verdict.Shared(verdict.PassAll)).New(0),
		"bpf":    bpfH,
	} {
		p := &verdict.Packet{Data: udp}
		assert.Zero(t, testing.AllocsPerRun(1000, func() { h.Handle(p) }), name)
	}
}

func BenchmarkChain(b *testing.B) {
	h := verdict.Chain(marker(0xee), mustBPF(nil, bpf.RetConstant{Val: 1}))
	p := &verdict.Packet{Data: udp}
	b.ReportAllocs()
	for b.Loop() {
		h.Handle(p)
	}
}
