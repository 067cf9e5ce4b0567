package pcapfilter

import "golang.org/x/net/bpf"

var aluOps = map[string]bpf.ALUOp{
	"+": bpf.ALUOpAdd, "-": bpf.ALUOpSub, "*": bpf.ALUOpMul, "/": bpf.ALUOpDiv, "%": bpf.ALUOpMod,
	"&": bpf.ALUOpAnd, "|": bpf.ALUOpOr, "^": bpf.ALUOpXor, "<<": bpf.ALUOpShiftLeft, ">>": bpf.ALUOpShiftRight,
}

// fold evaluates a if it is a constant; it fails, as libpcap does, on a constant division by
// zero or a constant shift by more than 31 bits.
func fold(a arith) (uint32, bool, error) {
	switch a := a.(type) {
	case aConst:
		return a.v, true, nil
	case aNeg:
		v, ok, err := fold(a.a)
		return -v, ok, err
	case aBin:
		x, okx, err := fold(a.a)
		if err != nil {
			return 0, false, err
		}
		y, oky, err := fold(a.b)
		if err != nil {
			return 0, false, err
		}
		if oky {
			if err := checkConstOperand(a, y); err != nil {
				return 0, false, err
			}
		}
		if !okx || !oky {
			return 0, false, nil
		}
		switch a.op {
		case "+":
			return x + y, true, nil
		case "-":
			return x - y, true, nil
		case "*":
			return x * y, true, nil
		case "/":
			return x / y, true, nil
		case "%":
			return x % y, true, nil
		case "&":
			return x & y, true, nil
		case "|":
			return x | y, true, nil
		case "^":
			return x ^ y, true, nil
		case "<<":
			return x << y, true, nil
		case ">>":
			return x >> y, true, nil
		}
	}
	return 0, false, nil
}

func checkConstOperand(a aBin, y uint32) error {
	switch {
	case y == 0 && a.op == "/":
		return errorf(ErrSyntax, a.col, "division by zero")
	case y == 0 && a.op == "%":
		return errorf(ErrSyntax, a.col, "modulus by zero")
	case y > 31 && (a.op == "<<" || a.op == ">>"):
		return errorf(ErrSyntax, a.col, "shift by more than 31 bits")
	}
	return nil
}

// checks lists the protocol tests that must hold before a's loads are made, in libpcap's order:
// tcp[i] needs IPv4, then i's own checks, then TCP in a first (or only) fragment.
func (c *compiler) checks(a arith) []node {
	switch a := a.(type) {
	case aLoad:
		inner := c.checks(a.idx)
		switch a.proto {
		case pLink:
			return inner
		case pIP, pIP6, pARP, pRARP, pICMP6:
			return append(inner, c.protoCheck(a.proto))
		}
		return append(append([]node{c.etherType(0x800)}, inner...), c.protoCheck(a.proto), c.notFrag())
	case aBin:
		return append(c.checks(a.a), c.checks(a.b)...)
	case aNeg:
		return c.checks(a.a)
	}
	return nil
}

// eval appends code that leaves a's value in A, using scratch slots from s on.
func (c *compiler) eval(a arith, s int, out []bpf.Instruction) ([]bpf.Instruction, error) {
	if v, ok, err := fold(a); err != nil {
		return nil, err
	} else if ok {
		return append(out, bpf.LoadConstant{Dst: bpf.RegA, Val: v}), nil
	}
	switch a := a.(type) {
	case aLen:
		return append(out, bpf.LoadExtension{Num: bpf.ExtLen}), nil
	case aNeg:
		out, err := c.eval(a.a, s, out)
		// A * 0xffffffff is -A modulo 2^32; x/net/bpf's VM does not run bpf.NegateA.
		return append(out, bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0xffffffff}), err
	case aBin:
		out, err := c.eval(a.a, s, out)
		if err != nil {
			return nil, err
		}
		op := aluOps[a.op]
		if y, ok, _ := fold(a.b); ok {
			return append(out, bpf.ALUOpConstant{Op: op, Val: y}), nil
		}
		if s > lastScratch {
			return nil, errorf(ErrTooComplex, a.col, "arithmetic expression nested too deeply (cBPF has %d scratch registers)", lastScratch-firstScratch+1)
		}
		out = append(out, bpf.StoreScratch{Src: bpf.RegA, N: s})
		if out, err = c.eval(a.b, s+1, out); err != nil {
			return nil, err
		}
		return append(out, bpf.TAX{}, bpf.LoadScratch{Dst: bpf.RegA, N: s}, bpf.ALUOpX{Op: op}), nil
	case aLoad:
		base := uint32(offPayload) + c.off
		transport := false
		switch a.proto {
		case pLink:
			base = 0
		case pIP, pIP6, pARP, pRARP:
		case pICMP6:
			base += ipv6HdrLen
		default:
			transport = true
		}
		shifted := a.proto != pLink && c.variable
		if k, ok, _ := fold(a.idx); ok && base+k >= base && base+k < 1<<31 {
			switch {
			case transport:
				out = append(out, c.ldxIPHdr()...)
				return append(out, bpf.LoadIndirect{Off: base + k, Size: a.size}), nil
			case shifted:
				return append(out, bpf.LoadScratch{Dst: bpf.RegX, N: vlanSlot}, bpf.LoadIndirect{Off: base + k, Size: a.size}), nil
			}
			return append(out, bpf.LoadAbsolute{Off: base + k, Size: a.size}), nil
		}
		out, err := c.eval(a.idx, s, out)
		if err != nil {
			return nil, err
		}
		if transport || shifted {
			if s > lastScratch {
				return nil, errorf(ErrTooComplex, 0, "arithmetic expression nested too deeply")
			}
			out = append(out, bpf.StoreScratch{Src: bpf.RegA, N: s})
			if transport {
				out = append(out, c.ldxIPHdr()...)
			} else {
				out = append(out, bpf.LoadScratch{Dst: bpf.RegX, N: vlanSlot})
			}
			out = append(out, bpf.LoadScratch{Dst: bpf.RegA, N: s}, bpf.ALUOpX{Op: bpf.ALUOpAdd})
		}
		return append(out, bpf.TAX{}, bpf.LoadIndirect{Off: base, Size: a.size}), nil
	}
	panic("pcapfilter: unknown arithmetic node") // unreachable: the parser builds only these
}

// relation compiles "a op b": the protocol checks of a then b, then the comparison.
func (c *compiler) relation(r nRel) (node, error) {
	ns := append(c.checks(r.a), c.checks(r.b)...)
	stmts, err := c.eval(r.a, firstScratch, nil)
	if err != nil {
		return nil, err
	}
	var test atom
	if y, ok, err := fold(r.b); err != nil {
		return nil, err
	} else if ok {
		test = atom{stmts: stmts, val: y}
	} else {
		stmts = append(stmts, bpf.StoreScratch{Src: bpf.RegA, N: firstScratch})
		if stmts, err = c.eval(r.b, firstScratch+1, stmts); err != nil {
			return nil, err
		}
		stmts = append(stmts, bpf.TAX{}, bpf.LoadScratch{Dst: bpf.RegA, N: firstScratch})
		test = atom{stmts: stmts, x: true}
	}
	var n node
	switch r.op {
	case "=":
		test.cond = bpf.JumpEqual
		n = test
	case "!=":
		test.cond = bpf.JumpEqual
		n = nNot{test}
	case ">":
		test.cond = bpf.JumpGreaterThan
		n = test
	case ">=":
		test.cond = bpf.JumpGreaterOrEqual
		n = test
	case "<":
		test.cond = bpf.JumpGreaterOrEqual
		n = nNot{test}
	case "<=":
		test.cond = bpf.JumpGreaterThan
		n = nNot{test}
	}
	if len(ns) > 0 {
		n = and(append(ns, n)...)
	}
	return n, nil
}
