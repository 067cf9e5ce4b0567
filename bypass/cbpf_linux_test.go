//go:build linux

package bypass

import (
	"math/rand/v2"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
)

// cbpfFilters exercise every kind of classic instruction the translation handles.
var cbpfFilters = map[string][]bpf.Instruction{
	"tcp dst port 80": {
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 8},
		bpf.LoadAbsolute{Off: 23, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipFalse: 6},
		bpf.LoadAbsolute{Off: 20, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 4},
		bpf.LoadMemShift{Off: 14},
		bpf.LoadIndirect{Off: 16, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 80, SkipFalse: 1},
		bpf.RetConstant{Val: 262144},
		bpf.RetConstant{Val: 0},
	},
	"scratch and alu": {
		bpf.LoadExtension{Num: bpf.ExtLen},
		bpf.StoreScratch{Src: bpf.RegA, N: 3},
		bpf.LoadScratch{Dst: bpf.RegX, N: 3},
		bpf.TXA{},
		bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 3},
		bpf.ALUOpX{Op: bpf.ALUOpDiv},
		bpf.ALUOpConstant{Op: bpf.ALUOpSub, Val: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 4},
		bpf.ALUOpConstant{Op: bpf.ALUOpXor, Val: 0x5a},
		bpf.ALUOpConstant{Op: bpf.ALUOpOr, Val: 0x100},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xfff},
		bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: 1000},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 7},
		bpf.RetA{},
	},
	"divide by a zero byte": {
		bpf.LoadAbsolute{Off: 14, Size: 1},
		bpf.TAX{},
		bpf.LoadConstant{Dst: bpf.RegA, Val: 60000},
		bpf.ALUOpX{Op: bpf.ALUOpDiv},
		bpf.RetA{},
	},
	"x jumps and negate": {
		bpf.LoadAbsolute{Off: 6, Size: 1},
		bpf.TAX{},
		bpf.LoadAbsolute{Off: 7, Size: 1},
		bpf.JumpIfX{Cond: bpf.JumpGreaterThan, SkipTrue: 2},
		bpf.JumpIfX{Cond: bpf.JumpBitsNotSet, SkipTrue: 3},
		bpf.RetConstant{Val: 11},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xffff},
		bpf.RetA{},
		bpf.JumpIf{Cond: bpf.JumpLessOrEqual, Val: 3, SkipTrue: 1},
		bpf.RetConstant{Val: 22},
		bpf.LoadConstant{Dst: bpf.RegX, Val: 9},
		bpf.ALUOpX{Op: bpf.ALUOpMod},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: 1},
		bpf.RetConstant{Val: 33},
		bpf.Jump{Skip: 1},
		bpf.RetConstant{Val: 44}, // unreachable
		bpf.RetA{},
	},
	"indirect out of bounds": {
		bpf.LoadAbsolute{Off: 13, Size: 1},
		bpf.TAX{},
		bpf.LoadIndirect{Off: 40, Size: 4},
		bpf.RetConstant{Val: 100},
	},
}

// TestCBPFTranslation compares the translated user filter, run by the kernel inside the socket
// filter, with x/net/bpf's classic BPF interpreter on random frames. No flow is in the map, so the
// socket filter returns exactly what the user's program returns.
func TestCBPFTranslation(t *testing.T) {
	p := openPath(t, nil)
	for name, prog := range cbpfFilters {
		t.Run(name, func(t *testing.T) {
			vm, err := bpf.NewVM(prog)
			require.NoError(t, err)
			f, err := p.Filter(B, 0, prog)
			require.NoError(t, err)
			defer f.Close()
			r := rand.New(rand.NewPCG(3, 4))
			seen := map[int]bool{}
			for range 2000 {
				frame := genFrame(r)
				want, err := vm.Run(frame)
				require.NoError(t, err)
				data := append(make([]byte, 14), frame...)
				got, err := f.prog.Run(&ebpf.RunOptions{Data: data, Context: skbCtx{}})
				require.NoError(t, err)
				if !assert.Equal(t, want, int(got), "frame % x", frame) {
					return
				}
				seen[want] = true
			}
			assert.Greater(t, len(seen), 1, "the frames must give more than one result")
		})
	}
}

// TestCBPFNegate covers the one instruction x/net/bpf's interpreter lacks.
func TestCBPFNegate(t *testing.T) {
	p := openPath(t, nil)
	f, err := p.Filter(A, 0, []bpf.Instruction{
		bpf.LoadConstant{Dst: bpf.RegA, Val: 5},
		bpf.NegateA{},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xffff},
		bpf.RetA{},
	})
	require.NoError(t, err)
	defer f.Close()
	got, err := f.prog.Run(&ebpf.RunOptions{Data: make([]byte, 64), Context: skbCtx{}})
	require.NoError(t, err)
	assert.Equal(t, uint32(0xfffb), got)
}

func TestCBPFRefused(t *testing.T) {
	p := openPath(t, nil)
	for name, prog := range map[string][]bpf.Instruction{
		"no return at the end": {bpf.LoadConstant{Dst: bpf.RegA, Val: 1}},
		"jump past the end":    {bpf.Jump{Skip: 5}, bpf.RetA{}},
		"unknown extension":    {bpf.LoadExtension{Num: bpf.ExtLinkLayerType}, bpf.RetA{}},
		"divide by constant 0": {bpf.ALUOpConstant{Op: bpf.ALUOpDiv, Val: 0}, bpf.RetA{}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := p.Filter(A, 0, prog)
			require.ErrorIs(t, err, ErrFilter)
			t.Log(err)
		})
	}
}
