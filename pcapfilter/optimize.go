package pcapfilter

import "golang.org/x/net/bpf"

// optimize shortens the program without changing any verdict, on any frame, truncated ones
// included: it never skips a load that could fail where the unoptimized program would make it.
//
// When a jump leads to a test whose statements are the same as its own (the same loads, so
// the same value in A, and in X), the second test's outcome is often known from the first
// one's: the jump then goes straight to that outcome. When it is not known, the jump still
// skips the second test's statements, which would only compute the same value again. Code no
// jump reaches any more is removed.
func (c *compiler) optimize() {
	// labelAt[i]: a label placed at instruction i, made on demand.
	labelAt := map[int]int{}
	at := func(i int) int {
		if l, ok := labelAt[i]; ok {
			return l
		}
		l := c.newLabel()
		c.labels[l] = i
		labelAt[i] = l
		return l
	}
	// testAt reports the jump of the test whose statements begin at instruction p.
	testAt := func(p int) (int, bool) {
		for j := p; j < len(c.prog); j++ {
			switch c.prog[j].kind {
			case insJump, insJumpX:
				return j, c.prog[j].start == p
			case insJA:
				return 0, false
			}
		}
		return 0, false
	}
	// The program only jumps forward, so one pass from the end sees every target settled.
	for i := len(c.prog) - 1; i >= 0; i-- {
		in := c.prog[i]
		if in.kind != insJump && in.kind != insJumpX {
			continue
		}
		for _, branch := range []bool{true, false} {
			l := in.f
			if branch {
				l = in.t
			}
			for steps := 0; steps < len(c.prog); steps++ {
				p := c.labels[l]
				j := p
				if k := c.prog[p].kind; k != insJump && k != insJumpX {
					// A test that computes A again: only the same statements give the same A.
					var ok bool
					if j, ok = testAt(p); !ok || !sameStmts(c.prog[in.start:i], c.prog[p:j]) {
						break
					}
				}
				// A (and X) at jump j hold what they held at jump i.
				next := c.prog[j]
				if outcome, known := implied(in, branch, next); known {
					if outcome {
						l = next.t
					} else {
						l = next.f
					}
					continue
				}
				l = at(j) // skip the reload
				break
			}
			if branch {
				in.t = l
			} else {
				in.f = l
			}
		}
		c.prog[i] = in
	}
	c.dropUnreachable()
}

func sameStmts(a, b []ins) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		if a[i].kind != insPlain || b[i].kind != insPlain || a[i].plain != b[i].plain {
			return false
		}
	}
	return true
}

// implied reports the outcome of test next when A holds the value that made test prev take
// branch (both compute A with the same statements).
func implied(prev ins, branch bool, next ins) (outcome, known bool) {
	if prev.kind != next.kind {
		return false, false
	}
	if prev.kind == insJumpX {
		// A against the same X: the same comparison has the same outcome.
		return branch, prev.cond == next.cond
	}
	if prev.cond == next.cond && prev.val == next.val {
		return branch, true
	}
	if prev.cond == bpf.JumpEqual && branch {
		v := prev.val // A is v
		switch next.cond {
		case bpf.JumpEqual:
			return v == next.val, true
		case bpf.JumpGreaterThan:
			return v > next.val, true
		case bpf.JumpGreaterOrEqual:
			return v >= next.val, true
		case bpf.JumpBitsSet:
			return v&next.val != 0, true
		}
	}
	return false, false
}

// dropUnreachable removes the instructions no path from the start reaches.
func (c *compiler) dropUnreachable() {
	reach := make([]bool, len(c.prog))
	for i := range c.prog {
		if i > 0 && !reach[i] {
			continue
		}
		reach[i] = true
		switch in := c.prog[i]; in.kind {
		case insPlain:
			if _, ret := in.plain.(bpf.RetConstant); !ret && i+1 < len(c.prog) {
				reach[i+1] = true
			}
		case insJA:
			reach[c.labels[in.t]] = true
		default:
			reach[c.labels[in.t]] = true
			reach[c.labels[in.f]] = true
		}
	}
	newPos := make([]int, len(c.prog)+1)
	var out []ins
	for i, in := range c.prog {
		newPos[i] = len(out)
		if reach[i] {
			out = append(out, in)
		}
	}
	newPos[len(c.prog)] = len(out)
	for l, p := range c.labels {
		if p >= 0 {
			c.labels[l] = newPos[p]
		}
	}
	for i := range out {
		if out[i].kind == insJump || out[i].kind == insJumpX {
			out[i].start = -1 // statement positions are stale now
		}
	}
	c.prog = out
}
