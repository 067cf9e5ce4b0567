package verdict_test

import (
	"sync"
	"sync/atomic"
	"testing"

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

	s.Set(nil)
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
