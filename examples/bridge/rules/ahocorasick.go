package rules

import (
	"bytes"
	"errors"
	"math"
)

// errTooManyPatterns is returned when the DFA would not fit int32 offsets,
// hundreds of megabytes of content patterns.
var errTooManyPatterns = errors.New("content patterns too large for one automaton")

// automaton is an Aho-Corasick matcher over every content pattern of a Set,
// compiled into a DFA so that scanning costs one table load per payload byte.
//
// Patterns are inserted ASCII-case-folded, and the byte class table folds the
// input the same way, so one pass finds nocase and case-sensitive patterns
// alike; a case-sensitive pattern is then verified against the original bytes
// where the folded one matched ("fold and verify"). That keeps one automaton
// instead of two and costs a compare only where a folded match occurred.
//
// The DFA has one row of nclass int32 per trie node. Input bytes that occur in
// no pattern share class 0, so a typical rule set needs a few dozen columns
// rather than 256: about 100 patterns of 10 bytes take well under 1 MiB.
type automaton struct {
	// class maps an input byte, folded to lower case, to its column.
	class  [256]uint8
	nclass int
	// delta[s*nclass+c] is the state after reading a byte of class c in
	// state s, stored as its row offset t*nclass, negated if t has outputs.
	delta []int32
	// outs[outStart[s]:outStart[s+1]] are the ids of the patterns that end
	// in state s, including those reached through failure links.
	outStart []int32
	outs     []int32

	pats   [][]byte
	nocase []bool
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// newAutomaton compiles pats (nocase[i] says whether pats[i] ignores case).
// Pattern ids are indexes into pats. Empty patterns are not allowed.
func newAutomaton(pats [][]byte, nocase []bool) (*automaton, error) {
	a := &automaton{pats: pats, nocase: nocase}

	var used [256]bool
	for _, p := range pats {
		for _, c := range p {
			used[lower(c)] = true
		}
	}
	a.nclass = 1 // class 0: bytes in no pattern
	var foldedClass [256]uint8
	for c := range 256 {
		if used[c] {
			foldedClass[c] = uint8(a.nclass)
			a.nclass++
		}
	}
	for c := range 256 {
		a.class[c] = foldedClass[lower(byte(c))]
	}

	// Build the trie; -1 marks a missing edge until the failure pass.
	nc := a.nclass
	newState := func() int32 {
		s := int32(len(a.delta) / nc)
		for range nc {
			a.delta = append(a.delta, -1)
		}
		return s
	}
	newState()
	var own [][]int32 // own[s]: patterns whose trie path ends exactly at s
	own = append(own, nil)
	for id, p := range pats {
		s := int32(0)
		for _, c := range p {
			i := int(s)*nc + int(a.class[c])
			if a.delta[i] < 0 {
				ns := newState()
				own = append(own, nil)
				a.delta[i] = ns
			}
			s = a.delta[i]
		}
		own[s] = append(own[s], int32(id))
	}
	n := len(own)

	// Breadth-first: fill missing edges from the failure state and merge the
	// failure state's outputs, which are complete because it is shallower.
	fail := make([]int32, n)
	outsOf := make([][]int32, n)
	queue := make([]int32, 0, n)
	for c := range nc {
		if t := a.delta[c]; t < 0 {
			a.delta[c] = 0
		} else {
			fail[t] = 0
			queue = append(queue, t)
		}
	}
	outsOf[0] = own[0]
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		outsOf[s] = append(append([]int32(nil), own[s]...), outsOf[fail[s]]...)
		for c := range nc {
			i := int(s)*nc + c
			f := a.delta[int(fail[s])*nc+c]
			if t := a.delta[i]; t < 0 {
				a.delta[i] = f
			} else {
				fail[t] = f
				queue = append(queue, t)
			}
		}
	}

	a.outStart = make([]int32, n+1)
	for s := range n {
		a.outStart[s] = int32(len(a.outs))
		a.outs = append(a.outs, outsOf[s]...)
	}
	a.outStart[n] = int32(len(a.outs))

	if len(a.delta) > math.MaxInt32 {
		return nil, errTooManyPatterns
	}

	// Store each target as its row offset, negated when the target state
	// has outputs, so the scan loop does one load and one sign test per
	// byte. The root has no outputs (there are no empty patterns), so no
	// target is ambiguous.
	for i, t := range a.delta {
		v := t * int32(nc)
		if a.outStart[t] != a.outStart[t+1] {
			v = -v
		}
		a.delta[i] = v
	}
	return a, nil
}

// scan runs the automaton over data and sets bit id in all for every pattern
// id found, and also in tail for those whose occurrence starts at or after
// index tailFrom. That lets one pass serve both rules that search the whole
// IP payload and rules that search only the TCP or UDP payload after the L4
// header. Each id is appended to found the first time its bit is set in all,
// so the caller visits only the patterns that occurred. all and tail must
// hold len(pats) bits and be zero; found must have room for len(pats) ids.
func (a *automaton) scan(data []byte, tailFrom int, all, tail []uint64, found []int32) []int32 {
	delta, class := a.delta, &a.class
	s := int32(0)
	for i, c := range data {
		s = delta[s+int32(class[c])]
		if s >= 0 {
			continue
		}
		s = -s
		st := s / int32(a.nclass)
		for _, id := range a.outs[a.outStart[st]:a.outStart[st+1]] {
			p := a.pats[id]
			start := i + 1 - len(p)
			if !a.nocase[id] && !bytes.Equal(data[start:i+1], p) {
				continue
			}
			w, bit := id>>6, uint64(1)<<(uint(id)&63)
			if all[w]&bit == 0 {
				all[w] |= bit
				found = append(found, id)
			}
			if start >= tailFrom {
				tail[w] |= bit
			}
		}
	}
	return found
}
