package rules

import (
	"bytes"
	"slices"
)

// automaton is an Aho-Corasick matcher over every content pattern of a Set.
//
// Patterns are inserted ASCII-case-folded, and the byte class table folds the
// input the same way, so one pass finds nocase and case-sensitive patterns
// alike; a case-sensitive pattern is then verified against the original bytes
// where the folded one matched ("fold and verify"). That keeps one automaton
// instead of two and costs a compare only where a folded match occurred.
//
// Memory is linear in the pattern bytes. The first states in breadth-first
// order (the root and the shallow states, where a scan spends most of its
// time) have a dense row of complete DFA transitions, one int32 per byte
// class, within a fixed budget; every deeper state keeps only its trie edges,
// sorted, plus a failure link. A scan in a deep state that finds no edge
// follows failure links, which always lead to shallower states and end in a
// dense one, so the scan stays linear in the input. A deep state costs about
// 21 bytes plus 5 per edge, whatever the alphabet.
//
// Outputs are not copied along failure links (that is quadratic for nested
// patterns): each state lists only the patterns that end exactly there, and
// dict links to the next state on its failure chain that has any.
type automaton struct {
	// class maps an input byte, folded to lower case, to its edge label.
	class  [256]uint8
	nclass int32
	// Transition targets are stored as state<<1 | 1 if the state or a state
	// on its failure chain ends a pattern, so a scan tests one bit per byte.
	//
	// dense[s*nclass+c] is the target from dense state s (s < ndense).
	ndense int32
	dense  []int32
	// For a sparse state s (s >= ndense), with i = s-ndense, its edges are
	// label[edgeStart[i]:edgeStart[i+1]], sorted, with targets in to.
	edgeStart []int32
	label     []uint8
	to        []int32
	// fail[s] is the failure state of s: the state of the longest proper
	// suffix of its path that is also in the trie.
	fail []int32
	// outs[outStart[s]:outStart[s+1]] are the patterns that end exactly at
	// state s. dict[s] is the nearest state on the failure chain of s,
	// itself included, with patterns of its own, or -1.
	outStart []int32
	outs     []int32
	dict     []int32
	// closed[s] is set when every pattern on the dict chain below s ignores
	// case. When such a state's own patterns were already found in the tail
	// region, so were those below it, and a scan stops walking there.
	closed []uint64

	pats   [][]byte
	nocase []bool

	// skip, when not nil, lets a scan jump over most of the input (see
	// skipFilter); find uses it. newAutomaton sets it; a Set sets its own.
	skip *skipFilter
}

// denseBudget bounds the dense rows: 4 MiB holds every state of depth 2 or
// less for a 70-symbol alphabet (text rules), and 4096 rows for 256 classes.
const denseBudget = 4 << 20

// Build-time cost per trie state and per edge, in bytes, for the memory
// estimate that MaxAutomatonBytes bounds: the final arrays plus the trie that
// builds them, which are alive together.
const (
	stateCost = 4*6 + 1 + 4*5 // final: edgeStart, fail, outStart, dict, to (one edge in), label, closed bit; trie: child, sibling, fail, BFS slot, own
	patCost   = 4 + 24 + 1    // outs entry, pattern slice header, nocase
)

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func hasLetter(p []byte) bool {
	for _, c := range p {
		if lower(c) != c || (c >= 'a' && c <= 'z') {
			return true
		}
	}
	return false
}

// trie is an automaton under construction: a trie of folded patterns with
// children as sorted sibling lists, except the root's, which are an array.
type trie struct {
	root    [256]int32 // child of the root by folded byte, or 0
	child   []int32    // first child, or 0
	sibling []int32    // next sibling, in ascending label order, or 0
	lab     []uint8    // folded byte on the edge into the state
	own     []int32    // first pattern ending here +1, or 0; more in next
	next    []int32    // next[id]: the next pattern ending at the same state +1, or 0
	used    [256]bool  // folded bytes that occur in a pattern

	pats   [][]byte
	nocase []bool
	bytes  int // total pattern bytes

	denseBudget int // bytes of dense rows
}

// newTrie returns an empty trie with room for about size pattern bytes.
func newTrie(size int) *trie {
	t := &trie{denseBudget: denseBudget}
	t.child = make([]int32, 0, size+1)
	t.sibling = make([]int32, 0, size+1)
	t.lab = make([]uint8, 0, size+1)
	t.own = make([]int32, 0, size+1)
	t.newState(0)
	return t
}

func (t *trie) newState(c byte) int32 {
	t.child = append(t.child, 0)
	t.sibling = append(t.sibling, 0)
	t.lab = append(t.lab, c)
	t.own = append(t.own, 0)
	return int32(len(t.child) - 1)
}

// states returns how many states the trie has.
func (t *trie) states() int { return len(t.child) }

// memEstimate returns the bytes the automaton will take while it is built.
func (t *trie) memEstimate() int {
	nclass := 1
	for _, u := range t.used {
		if u {
			nclass++
		}
	}
	rows := min(t.states(), max(t.denseBudget/(4*nclass), 1))
	return t.states()*stateCost + len(t.pats)*patCost + t.bytes + rows*nclass*4
}

// add inserts a non-empty pattern and returns its id, its index in the order
// of insertion.
func (t *trie) add(p []byte, nocase bool) int32 {
	id := int32(len(t.pats))
	t.pats = append(t.pats, p)
	// Without ASCII letters, case does not matter: no verify, and the
	// pattern does not keep a chain from being closed.
	t.nocase = append(t.nocase, nocase || !hasLetter(p))
	t.next = append(t.next, 0)
	t.bytes += len(p)
	s := int32(0)
	for _, c := range p {
		c = lower(c)
		t.used[c] = true
		s = t.step(s, c)
	}
	t.next[id] = t.own[s]
	t.own[s] = id + 1
	return id
}

// step returns the child of s labelled c, creating it if needed.
func (t *trie) step(s int32, c byte) int32 {
	if s == 0 {
		if t.root[c] == 0 {
			t.root[c] = t.newState(c)
		}
		return t.root[c]
	}
	prev, k := int32(0), t.child[s]
	for k != 0 && t.lab[k] < c {
		prev, k = k, t.sibling[k]
	}
	if k != 0 && t.lab[k] == c {
		return k
	}
	n := t.newState(c)
	t.sibling[n] = k
	if prev == 0 {
		t.child[s] = n
	} else {
		t.sibling[prev] = n
	}
	return n
}

// newAutomaton compiles pats (nocase[i] says whether pats[i] ignores case).
// Pattern ids are indexes into pats. Empty patterns are not allowed.
func newAutomaton(pats [][]byte, nocase []bool) *automaton {
	return newAutomatonDense(pats, nocase, denseBudget)
}

// newAutomatonDense is newAutomaton with dense rows limited to budget bytes
// (at least the root's), so that tests can make nearly every state sparse.
func newAutomatonDense(pats [][]byte, nocase []bool, budget int) *automaton {
	t := newTrie(0)
	t.denseBudget = budget
	for i, p := range pats {
		t.add(p, nocase[i])
	}
	a := t.compile()
	a.skip = newSkipFilter(a, nil)
	return a
}

// compile turns the trie into an automaton. The trie is not usable after.
//
// One breadth-first pass numbers the states in BFS order (so the dense
// states are the shallowest) and fills every table. A state's failure state,
// dict link and closed bit are set when it is queued, from its parent's
// failure chain, which is shallower and so already complete; its dense row
// or its edges when it is taken off the queue. Failure links are found with
// the finished tables, as a scan would, which keeps the trie's sibling lists
// (scattered in memory) off that path.
func (t *trie) compile() *automaton {
	n := int32(t.states())
	a := &automaton{pats: t.pats, nocase: t.nocase, nclass: 1}
	var cls [256]uint8 // folded byte to class; class 0: bytes in no pattern
	for c := range 256 {
		if t.used[c] {
			cls[c] = uint8(a.nclass)
			a.nclass++
		}
	}
	for c := range 256 {
		a.class[c] = cls[lower(byte(c))]
	}
	nc := a.nclass
	a.ndense = min(n, int32(max(t.denseBudget/(4*int(nc)), 1)))
	a.dense = make([]int32, a.ndense*nc)
	a.edgeStart = make([]int32, n-a.ndense+1)
	a.label = make([]uint8, 0, n-1)
	a.to = make([]int32, 0, n-1)
	a.fail = make([]int32, n)
	a.outStart = make([]int32, n+1)
	a.outs = make([]int32, 0, len(t.pats))
	a.dict = make([]int32, n)
	a.closed = make([]uint64, (n+63)/64)

	order := make([]int32, 1, n) // BFS rank to trie state
	rank := make([]int32, n)     // trie state to BFS rank
	caseBelow := make([]bool, n) // by rank: a case-sensitive pattern on the dict chain from here
	a.dict[0] = -1
	a.closed[0] = 1
	// target encodes the transition to the state of the given rank.
	target := func(r int32) int32 {
		if a.dict[r] >= 0 {
			return r<<1 | 1
		}
		return r << 1
	}
	// enqueue numbers trie state k, child of rank p by folded byte c.
	enqueue := func(k, p int32, c byte) int32 {
		r := int32(len(order))
		order = append(order, k)
		rank[k] = r
		f := int32(0)
		if p != 0 {
			// The chain is shallower than p, so its states' rows and
			// edges are complete; a.step finds the transition, with the
			// failure links followed as in a scan.
			f = a.step(a.fail[p], cls[c]) >> 1
		}
		a.fail[r] = f
		hasCase := false
		for id := t.own[k]; id != 0; id = t.next[id-1] {
			hasCase = hasCase || !t.nocase[id-1]
		}
		if t.own[k] != 0 {
			a.dict[r] = r
		} else {
			a.dict[r] = a.dict[f]
		}
		below := a.dict[f] >= 0 && caseBelow[a.dict[f]]
		if !below {
			a.closed[r>>6] |= 1 << (uint(r) & 63)
		}
		caseBelow[r] = hasCase || below
		return r
	}
	for i := int32(0); i < int32(len(order)); i++ {
		s := order[i]
		a.outStart[i] = int32(len(a.outs))
		for id := t.own[s]; id != 0; id = t.next[id-1] {
			a.outs = append(a.outs, id-1)
		}
		if i < a.ndense {
			row := a.dense[i*nc : (i+1)*nc]
			if i != 0 {
				copy(row, a.dense[a.fail[i]*nc:(a.fail[i]+1)*nc])
			}
			if s == 0 {
				for c := range 256 {
					if k := t.root[c]; k != 0 {
						row[cls[c]] = target(enqueue(k, 0, byte(c)))
					}
				}
			} else {
				for k := t.child[s]; k != 0; k = t.sibling[k] {
					row[cls[t.lab[k]]] = target(enqueue(k, i, t.lab[k]))
				}
			}
			continue
		}
		a.edgeStart[i-a.ndense] = int32(len(a.to))
		for k := t.child[s]; k != 0; k = t.sibling[k] {
			a.label = append(a.label, cls[t.lab[k]])
			a.to = append(a.to, target(enqueue(k, i, t.lab[k])))
		}
	}
	a.outStart[n] = int32(len(a.outs))
	a.edgeStart[n-a.ndense] = int32(len(a.to))
	return a
}

// memBytes returns the memory the automaton holds, without the patterns.
func (a *automaton) memBytes() int {
	return 4*(len(a.dense)+len(a.edgeStart)+len(a.to)+len(a.fail)+len(a.outStart)+len(a.outs)+len(a.dict)) +
		len(a.label) + 8*len(a.closed)
}

// states returns the number of states.
func (a *automaton) states() int { return len(a.dict) }

// step returns the target (state<<1 | output bit) from state s on class c.
func (a *automaton) step(s int32, c uint8) int32 {
	for s >= a.ndense {
		i := s - a.ndense
		lo, hi := a.edgeStart[i], a.edgeStart[i+1]
		labels := a.label[lo:hi]
		if len(labels) <= 8 {
			for k, l := range labels {
				if l == c {
					return a.to[lo+int32(k)]
				}
			}
		} else if k, ok := slices.BinarySearch(labels, c); ok {
			return a.to[lo+int32(k)]
		}
		s = a.fail[s]
	}
	return a.dense[s*a.nclass+int32(c)]
}

// scan runs the automaton over data and sets bit id in all for every pattern
// id found, and also in tail for those whose occurrence starts at or after
// index tailFrom. That lets one pass serve both rules that search the whole
// IP payload and rules that search only the TCP or UDP payload after the L4
// header. Each id is appended to found the first time its bit is set in all,
// so the caller visits only the patterns that occurred. all and tail must
// hold len(pats) bits and be zero; found must have room for len(pats) ids.
func (a *automaton) scan(data []byte, tailFrom int, all, tail []uint64, found []int32) []int32 {
	return a.scanMemo(data, tailFrom, all, tail, nil, found)
}

// scanMemo is scan with memo, a zero bitset of len(pats) bits (or nil) in
// which the scan remembers the output states whose whole dict chain it has
// found in the tail, by the id of their first pattern, so that it never
// walks them again. That keeps nested patterns (a, aa, aaa, ...) linear
// whether they ignore case or not. The bits it sets are those of found ids,
// so clearing the words of found ids in all, tail and memo zeroes them.
func (a *automaton) scanMemo(data []byte, tailFrom int, all, tail, memo []uint64, found []int32) []int32 {
	dense, class, nc, nd := a.dense, &a.class, a.nclass, a.ndense
	s := int32(0)
	for i, b := range data {
		c := class[b]
		var v int32
		if s < nd {
			v = dense[s*nc+int32(c)]
		} else {
			v = a.step(s, c)
		}
		s = v >> 1
		if v&1 != 0 {
			found = a.report(data, i, s, tailFrom, all, tail, memo, found)
		}
	}
	return found
}

// next returns the next state below x on its dict chain, or -1.
func (a *automaton) next(x int32) int32 {
	if f := a.failOf(x); f >= 0 {
		return a.dict[f]
	}
	return -1
}

// report records the patterns that end at data[i] in state s.
func (a *automaton) report(data []byte, i int, s int32, tailFrom int, all, tail, memo []uint64, found []int32) []int32 {
	has := func(bits []uint64, id int32) bool { return bits[id>>6]&(1<<(uint(id)&63)) != 0 }
	top, x, lastOpen := a.dict[s], a.dict[s], int32(-1)
	for ; x >= 0; x = a.next(x) {
		ids := a.outs[a.outStart[x]:a.outStart[x+1]]
		if memo != nil && has(memo, ids[0]) {
			break // all found in the tail, down the chain
		}
		done := true
		for _, id := range ids {
			done = done && has(tail, id)
		}
		if done && a.closed[x>>6]&(1<<(uint(x)&63)) != 0 {
			// Found in the tail before, and with it every pattern below,
			// which ignore case: nothing left to learn here.
			break
		}
		open := false
		for _, id := range ids {
			p := a.pats[id]
			start := i + 1 - len(p)
			w, bit := id>>6, uint64(1)<<(uint(id)&63)
			if tail[w]&bit != 0 || (start < tailFrom && all[w]&bit != 0) {
				open = open || tail[w]&bit == 0
				continue
			}
			if !a.nocase[id] && !bytes.Equal(data[start:i+1], p) {
				open = true
				continue
			}
			if all[w]&bit == 0 {
				all[w] |= bit
				found = append(found, id)
			}
			if start >= tailFrom {
				tail[w] |= bit
			} else {
				open = true
			}
		}
		if open {
			lastOpen = x
		}
	}
	if memo == nil {
		return found
	}
	// Every state after the last open one, down to where the walk stopped,
	// has its chain found in the tail.
	y := top
	if lastOpen >= 0 {
		y = a.next(lastOpen)
	}
	for ; y >= 0 && y != x; y = a.next(y) {
		id := a.outs[a.outStart[y]]
		memo[id>>6] |= 1 << (uint(id) & 63)
	}
	return found
}

// failOf returns the failure state of s, or -1 for the root.
func (a *automaton) failOf(s int32) int32 {
	if s == 0 {
		return -1
	}
	return a.fail[s]
}
