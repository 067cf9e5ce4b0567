package rules

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// naiveContains is the reference the automaton is checked against.
func naiveContains(text, pat []byte, nocase bool) bool {
	if nocase {
		// ASCII only: bytes.ToLower would turn invalid UTF-8 into U+FFFD.
		return bytes.Contains(asciiLower(text), asciiLower(pat))
	}
	return bytes.Contains(text, pat)
}

func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = lower(c)
	}
	return out
}

func TestAutomatonAgainstNaiveSearch(t *testing.T) {
	// A tiny alphabet with case pairs makes overlaps, shared prefixes,
	// suffix links and fold collisions common.
	const alphabet = "aAbB\x00|Zz"
	rng := rand.New(rand.NewPCG(1, 2))
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return b
	}
	for round := range 600 {
		npat := 1 + rng.IntN(20)
		var pats [][]byte
		var nocase []bool
		seen := map[string]bool{}
		for len(pats) < npat {
			p := randBytes(1 + rng.IntN(5))
			nc := rng.IntN(2) == 0
			k := string(p) + map[bool]string{true: "/i", false: ""}[nc]
			if seen[k] {
				continue
			}
			seen[k] = true
			pats = append(pats, p)
			nocase = append(nocase, nc)
		}
		// From all states dense to only the root dense.
		a := newAutomatonDense(pats, nocase, []int{denseBudget, 40, 0}[round%3])
		for range 10 {
			text := randBytes(rng.IntN(120))
			checkScan(t, a, pats, nocase, text, rng.IntN(len(text)+1))
		}
	}
}

// checkScan compares one scan with the naive search.
func checkScan(t *testing.T, a *automaton, pats [][]byte, nocase []bool, text []byte, tailFrom int) {
	t.Helper()
	words := (len(pats) + 63) / 64
	all, tail := make([]uint64, words), make([]uint64, words)
	found := a.scan(text, tailFrom, all, tail, make([]int32, 0, len(pats)))
	var wantFound []int32
	for id, p := range pats {
		want := naiveContains(text, p, nocase[id])
		wantTail := naiveContains(text[tailFrom:], p, nocase[id])
		gotAll := all[id>>6]&(1<<(id&63)) != 0
		gotTail := tail[id>>6]&(1<<(id&63)) != 0
		require.Equal(t, want, gotAll, "pattern %q nocase=%v in %q", p, nocase[id], text)
		require.Equal(t, wantTail, gotTail, "pattern %q nocase=%v in %q from %d", p, nocase[id], text, tailFrom)
		if want {
			wantFound = append(wantFound, int32(id))
		}
	}
	slices.Sort(found)
	if wantFound == nil {
		wantFound = []int32{}
	}
	require.Equal(t, wantFound, found, "each occurring pattern is reported once")

	// With the memo, the same bits; and clearing the words of the found
	// ids zeroes all three bitsets, as Match relies on.
	all2, tail2, memo := make([]uint64, words), make([]uint64, words), make([]uint64, words)
	found2 := a.scanMemo(text, tailFrom, all2, tail2, memo, make([]int32, 0, len(pats)))
	require.Equal(t, all, all2, "memo: all")
	require.Equal(t, tail, tail2, "memo: tail")
	slices.Sort(found2)
	require.Equal(t, found, found2, "memo: found")
	clearHits(all2, tail2, memo, found2)
	require.Equal(t, make([]uint64, words), all2)
	require.Equal(t, make([]uint64, words), tail2)
	require.Equal(t, make([]uint64, words), memo)
}

// FuzzAutomaton checks the automaton against the naive search on random
// patterns and texts. The input is: a byte choosing the dense budget and
// where the tail starts, then patterns, each a length byte (low 3 bits: 1 to
// 8 bytes; bit 3: nocase) and its bytes, up to a zero length byte, and the
// rest is the text. Duplicate patterns are kept: ids must still be exact.
func FuzzAutomaton(f *testing.F) {
	f.Add([]byte("\x00\x02ab\x0aAB\x01b\x00xxabABbab"))
	f.Add([]byte("\x13\x00aaaaaaaaa\x08a\x09aa\x0aaaa\x03aaaa\x00AAAAAAaaaaa"))
	f.Add([]byte("\xff\x0bheLLo\x03lo\x0fhello wo\x00say Hello world, hello"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 1 {
			return
		}
		mode := in[0]
		in = in[1:]
		var pats [][]byte
		var nocase []bool
		for len(in) > 0 && in[0] != 0 && len(pats) < 64 {
			n := int(in[0]&7) + 1
			nc := in[0]&8 != 0
			if len(in) < 1+n {
				break
			}
			pats = append(pats, in[1:1+n])
			nocase = append(nocase, nc)
			in = in[1+n:]
		}
		if len(in) > 0 {
			in = in[1:]
		}
		if len(pats) == 0 {
			return
		}
		budget := []int{denseBudget, 0, 64, 400}[mode&3]
		a := newAutomatonDense(pats, nocase, budget)
		checkScan(t, a, pats, nocase, in, int(mode>>2)%(len(in)+1))
	})
}

// TestAutomatonNested is the worst case for output reporting: every prefix
// of a long run is a pattern, ignoring case or not, and the text is the run.
// Each occurrence must still be found exactly once.
func TestAutomatonNested(t *testing.T) {
	for _, nc := range []bool{true, false} {
		var pats [][]byte
		var nocase []bool
		for n := 1; n <= 200; n++ {
			pats = append(pats, bytes.Repeat([]byte("a"), n))
			nocase = append(nocase, nc)
		}
		for _, budget := range []int{denseBudget, 0} {
			a := newAutomatonDense(pats, nocase, budget)
			checkScan(t, a, pats, nocase, bytes.Repeat([]byte("a"), 300), 7)
			checkScan(t, a, pats, nocase, bytes.Repeat([]byte("aA"), 150), 0)
			checkScan(t, a, pats, nocase, bytes.Repeat([]byte("A"), 250), 3)
		}
	}
}

// TestAutomatonMemoryLinear is the finding of issue 14: one 1 MiB content
// took a 924 MiB DFA. Now memory is a small constant per pattern byte.
func TestAutomatonMemoryLinear(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := make([]byte, 1<<20)
	for i := range p {
		p[i] = byte(rng.IntN(256))
	}
	a := newAutomaton([][]byte{p}, []bool{false})
	assert.Equal(t, 1<<20+1, a.states())
	assert.Less(t, a.memBytes(), 28<<20, "about 21 bytes per state and 4 MiB of dense rows")
	all, tail := make([]uint64, 1), make([]uint64, 1)
	text := append(append([]byte("x"), p...), 'y')
	found := a.scan(text, 0, all, tail, make([]int32, 0, 1))
	assert.Equal(t, []int32{0}, found)
}

func TestAutomatonFoldsOnlyASCII(t *testing.T) {
	// Suricata's nocase folds ASCII letters only; 0xC4 and 0xE4 differ.
	a := newAutomaton([][]byte{{0xC4}, []byte("K")}, []bool{true, true})
	all, tail := make([]uint64, 1), make([]uint64, 1)
	found := a.scan([]byte{0xE4, 'k'}, 0, all, tail, make([]int32, 0, 2))
	assert.Equal(t, []int32{1}, found)
}
