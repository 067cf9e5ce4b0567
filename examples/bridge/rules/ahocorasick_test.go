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
		return bytes.Contains(bytes.ToLower(text), bytes.ToLower(pat))
	}
	return bytes.Contains(text, pat)
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
	for round := range 500 {
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
		a, err := newAutomaton(pats, nocase)
		require.NoError(t, err)
		words := (npat + 63) / 64
		for range 10 {
			text := randBytes(rng.IntN(120))
			tailFrom := rng.IntN(len(text) + 1)
			all, tail := make([]uint64, words), make([]uint64, words)
			found := a.scan(text, tailFrom, all, tail, make([]int32, 0, npat))

			var wantFound []int32
			for id, p := range pats {
				want := naiveContains(text, p, nocase[id])
				wantTail := naiveContains(text[tailFrom:], p, nocase[id])
				gotAll := all[id>>6]&(1<<(id&63)) != 0
				gotTail := tail[id>>6]&(1<<(id&63)) != 0
				require.Equal(t, want, gotAll, "round %d: pattern %q nocase=%v in %q", round, p, nocase[id], text)
				require.Equal(t, wantTail, gotTail, "round %d: pattern %q nocase=%v in %q from %d", round, p, nocase[id], text, tailFrom)
				if want {
					wantFound = append(wantFound, int32(id))
				}
			}
			slices.Sort(found)
			if wantFound == nil {
				wantFound = []int32{}
			}
			require.Equal(t, wantFound, found, "each occurring pattern is reported once")
		}
	}
}

func TestAutomatonFoldsOnlyASCII(t *testing.T) {
	// Suricata's nocase folds ASCII letters only; 0xC4 and 0xE4 differ.
	a, err := newAutomaton([][]byte{{0xC4}, []byte("K")}, []bool{true, true})
	require.NoError(t, err)
	all, tail := make([]uint64, 1), make([]uint64, 1)
	found := a.scan([]byte{0xE4, 'k'}, 0, all, tail, make([]int32, 0, 2))
	assert.Equal(t, []int32{1}, found)
}
