//go:build linux

package bypass

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"
)

// ErrFilter is matched (errors.Is) by the errors of [Path.Filter] when the user's classic BPF
// program cannot be carried into the socket filter. The message names the instruction.
var ErrFilter = errors.New("bypass: the cBPF filter cannot be translated")

// maxCBPF is BPF_MAXINSNS, the kernel's limit on a classic program.
const maxCBPF = 4096

// Registers of the translated cBPF program, as the kernel's own bpf_convert_filter assigns them:
// A in R0 (where LD_ABS and LD_IND leave their result), X in R7, a temporary in R8, the context in
// R6.
const (
	regA   = asm.R0
	regX   = asm.R7
	regTmp = asm.R8
)

// translateCBPF turns a classic BPF socket filter into eBPF instructions that run inline. The
// result is in R0 when control reaches the label done: 0 means the frame is refused, anything else
// is the snap length. A packet load out of bounds ends the whole program with 0, as it does in
// classic BPF. prefix keeps the labels apart from the rest of the program.
func translateCBPF(prog []bpf.Instruction, prefix, done string) (asm.Instructions, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFilter, err)
	}
	if len(raw) == 0 || len(raw) > maxCBPF {
		return nil, fmt.Errorf("%w: %d instructions (1 to %d allowed)", ErrFilter, len(raw), maxCBPF)
	}
	label := func(i int) string { return fmt.Sprintf("%su%d", prefix, i) }
	bad := func(i int, why string) error {
		return fmt.Errorf("%w: instruction %d (%v): %s", ErrFilter, i, prog[i], why)
	}
	target := func(i int, skip uint32) (string, error) {
		t := i + 1 + int(skip)
		if t >= len(raw) {
			return "", bad(i, "jumps past the end of the program")
		}
		return label(t), nil
	}
	out := asm.Instructions{
		asm.Mov.Imm(regA, 0),
		asm.Mov.Imm(regX, 0),
	}
	// Classic BPF scratch memory starts zeroed; the verifier also insists on it.
	for i := int16(0); i < 8; i++ {
		out = append(out, asm.StoreMem(asm.RFP, scratchM+8*i, regA, asm.DWord))
	}
	last := raw[len(raw)-1]
	if last.Op&0x07 != 0x06 { // BPF_RET
		return nil, fmt.Errorf("%w: the last instruction must be a return", ErrFilter)
	}
	// The eBPF verifier refuses unreachable instructions, which classic BPF allows: leave them out.
	reach := make([]bool, len(raw))
	reach[0] = true
	for i, r := range raw {
		if !reach[i] {
			continue
		}
		switch in := r.Disassemble().(type) {
		case bpf.Jump:
			if t := i + 1 + int(in.Skip); t < len(raw) {
				reach[t] = true
			}
		case bpf.JumpIf:
			for _, s := range []uint8{in.SkipTrue, in.SkipFalse} {
				if t := i + 1 + int(s); t < len(raw) {
					reach[t] = true
				}
			}
		case bpf.JumpIfX:
			for _, s := range []uint8{in.SkipTrue, in.SkipFalse} {
				if t := i + 1 + int(s); t < len(raw) {
					reach[t] = true
				}
			}
		case bpf.RetA, bpf.RetConstant:
		default:
			if i+1 < len(raw) {
				reach[i+1] = true
			}
		}
	}
	divides := false
	for i, r := range raw {
		if !reach[i] {
			continue
		}
		var ins asm.Instructions
		d := r.Disassemble()
		switch in := d.(type) {
		case bpf.LoadConstant:
			ins = asm.Instructions{asm.Mov.Imm32(reg(in.Dst), int32(in.Val))}
		case bpf.LoadScratch:
			ins = asm.Instructions{asm.LoadMem(reg(in.Dst), asm.RFP, scratchM+int16(4*in.N), asm.Word)}
		case bpf.StoreScratch:
			ins = asm.Instructions{asm.StoreMem(asm.RFP, scratchM+int16(4*in.N), reg(in.Src), asm.Word)}
		case bpf.LoadAbsolute:
			ins = asm.Instructions{asm.LoadAbs(int32(in.Off), size(in.Size))}
		case bpf.LoadIndirect:
			ins = asm.Instructions{asm.LoadInd(regA, regX, int32(in.Off), size(in.Size))}
		case bpf.LoadMemShift:
			ins = asm.Instructions{
				asm.Mov.Reg(regTmp, regA),
				asm.LoadAbs(int32(in.Off), asm.Byte),
				asm.And.Imm32(regA, 0x0f),
				asm.LSh.Imm32(regA, 2),
				asm.Mov.Reg32(regX, regA),
				asm.Mov.Reg(regA, regTmp),
			}
		case bpf.LoadExtension:
			ins, err = extension(in.Num)
			if err != nil {
				return nil, bad(i, err.Error())
			}
		case bpf.ALUOpConstant:
			op, err := aluOp(in.Op)
			if err != nil {
				return nil, bad(i, err.Error())
			}
			if (in.Op == bpf.ALUOpDiv || in.Op == bpf.ALUOpMod) && in.Val == 0 {
				return nil, bad(i, "divides by the constant 0")
			}
			if (in.Op == bpf.ALUOpShiftLeft || in.Op == bpf.ALUOpShiftRight) && in.Val >= 32 {
				return nil, bad(i, "shifts by 32 or more")
			}
			ins = asm.Instructions{op.Imm32(regA, int32(in.Val))}
		case bpf.ALUOpX:
			op, err := aluOp(in.Op)
			if err != nil {
				return nil, bad(i, err.Error())
			}
			if in.Op == bpf.ALUOpDiv || in.Op == bpf.ALUOpMod {
				// Classic BPF refuses the frame on a division by zero.
				ins = append(ins, asm.JEq.Imm32(regX, 0, prefix+"zero"))
				divides = true
			}
			ins = append(ins, op.Reg32(regA, regX))
		case bpf.NegateA:
			ins = asm.Instructions{asm.Neg.Imm32(regA, 0)}
		case bpf.Jump:
			t, err := target(i, in.Skip)
			if err != nil {
				return nil, err
			}
			ins = asm.Instructions{asm.Ja.Label(t)}
		case bpf.JumpIf:
			ins, err = condJump(i, in.Cond, false, in.Val, in.SkipTrue, in.SkipFalse, target)
			if err != nil {
				return nil, err
			}
		case bpf.JumpIfX:
			ins, err = condJump(i, in.Cond, true, 0, in.SkipTrue, in.SkipFalse, target)
			if err != nil {
				return nil, err
			}
		case bpf.RetA:
			ins = asm.Instructions{asm.Mov.Reg32(asm.R0, regA), asm.Ja.Label(done)}
		case bpf.RetConstant:
			ins = asm.Instructions{asm.Mov.Imm32(asm.R0, int32(in.Val)), asm.Ja.Label(done)}
		case bpf.TAX:
			ins = asm.Instructions{asm.Mov.Reg32(regX, regA)}
		case bpf.TXA:
			ins = asm.Instructions{asm.Mov.Reg32(regA, regX)}
		default:
			return nil, bad(i, "not a classic BPF instruction this translation knows")
		}
		ins[0] = ins[0].WithSymbol(label(i))
		out = append(out, ins...)
	}
	if divides {
		out = append(out,
			asm.Mov.Imm(asm.R0, 0).WithSymbol(prefix+"zero"),
			asm.Ja.Label(done),
		)
	}
	return out, nil
}

func reg(r bpf.Register) asm.Register {
	if r == bpf.RegX {
		return regX
	}
	return regA
}

func size(n int) asm.Size {
	switch n {
	case 1:
		return asm.Byte
	case 2:
		return asm.Half
	}
	return asm.Word
}

func aluOp(op bpf.ALUOp) (asm.ALUOp, error) {
	switch op {
	case bpf.ALUOpAdd:
		return asm.Add, nil
	case bpf.ALUOpSub:
		return asm.Sub, nil
	case bpf.ALUOpMul:
		return asm.Mul, nil
	case bpf.ALUOpDiv:
		return asm.Div, nil
	case bpf.ALUOpOr:
		return asm.Or, nil
	case bpf.ALUOpAnd:
		return asm.And, nil
	case bpf.ALUOpShiftLeft:
		return asm.LSh, nil
	case bpf.ALUOpShiftRight:
		return asm.RSh, nil
	case bpf.ALUOpMod:
		return asm.Mod, nil
	case bpf.ALUOpXor:
		return asm.Xor, nil
	}
	return 0, fmt.Errorf("unknown ALU operation %d", op)
}

func condJump(i int, cond bpf.JumpTest, x bool, val uint32, skipTrue, skipFalse uint8,
	target func(int, uint32) (string, error)) (asm.Instructions, error) {
	tTrue, err := target(i, uint32(skipTrue))
	if err != nil {
		return nil, err
	}
	tFalse, err := target(i, uint32(skipFalse))
	if err != nil {
		return nil, err
	}
	var op asm.JumpOp
	negate := false
	switch cond {
	case bpf.JumpEqual:
		op = asm.JEq
	case bpf.JumpNotEqual:
		op = asm.JNE
	case bpf.JumpGreaterThan:
		op = asm.JGT
	case bpf.JumpLessThan:
		op = asm.JLT
	case bpf.JumpGreaterOrEqual:
		op = asm.JGE
	case bpf.JumpLessOrEqual:
		op = asm.JLE
	case bpf.JumpBitsSet:
		op = asm.JSet
	case bpf.JumpBitsNotSet:
		op, negate = asm.JSet, true
	default:
		return nil, fmt.Errorf("%w: instruction %d: unknown jump condition %d", ErrFilter, i, cond)
	}
	if negate {
		tTrue, tFalse = tFalse, tTrue
	}
	var j asm.Instruction
	if x {
		j = op.Reg32(regA, regX, tTrue)
	} else {
		j = op.Imm32(regA, int32(val), tTrue)
	}
	return asm.Instructions{j, asm.Ja.Label(tFalse)}, nil
}

// extension loads a classic BPF ancillary value (SKF_AD_*) into A from the __sk_buff context or a
// helper, as the kernel's conversion does.
func extension(e bpf.Extension) (asm.Instructions, error) {
	field := func(off int16) asm.Instructions {
		return asm.Instructions{asm.LoadMem(regA, asm.R6, off, asm.Word)}
	}
	switch e {
	case bpf.ExtLen:
		return field(skbLen), nil
	case bpf.ExtProto:
		return append(field(16), asm.HostTo(asm.BE, regA, asm.Half)), nil
	case bpf.ExtType:
		return field(skbPktType), nil
	case bpf.ExtMark:
		return field(8), nil
	case bpf.ExtQueue:
		return field(12), nil
	case bpf.ExtInterfaceIndex:
		return field(40), nil
	case bpf.ExtRXHash:
		return field(68), nil
	case bpf.ExtVLANTag:
		return field(skbVLANTCI), nil
	case bpf.ExtVLANTagPresent:
		return field(skbVLANPresent), nil
	case bpf.ExtVLANProto:
		return append(field(28), asm.HostTo(asm.BE, regA, asm.Half)), nil
	case bpf.ExtCPUID:
		return asm.Instructions{asm.FnGetSmpProcessorId.Call()}, nil
	case bpf.ExtRand:
		return asm.Instructions{asm.FnGetPrandomU32.Call()}, nil
	}
	return nil, fmt.Errorf("ancillary load %d has no eBPF equivalent here (supported: len, proto, type, mark, queue, ifindex, rxhash, vlan tag/present/proto, cpu, rand)", e)
}
