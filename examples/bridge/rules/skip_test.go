package rules

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// skipSpec says which skip filter checkSkip builds: window m, a 2-byte
// table or (bits > 0) a wide one of 1<<bits entries, the optional
// patterns, and whether short exact patterns are searched on their own.
type skipSpec struct {
	m        int
	bits     uint
	optional []bool
	tiny     bool // search up to maxTinyPatterns patterns shorter than m on their own
}

// checkSkip compares the skip scan of text with the filter of sp against
// the naive search, with an unlimited budget and through findBudget with
// the given budget (a small one makes it give up and fall back to the
// automaton). Patterns in the table must be found exactly; those it leaves
// out (optional, or shorter than m) in part, a subset of the truth, unless
// find says its answer is exact.
func checkSkip(t *testing.T, a *automaton, sp skipSpec, pats [][]byte, nocase []bool, text []byte, tailFrom, budget int) {
	t.Helper()
	saved := a.skip
	defer func() { a.skip = saved }()
	m := sp.m
	var tiny []int32
	if sp.tiny {
		for id, p := range pats {
			if len(p) < m && len(tiny) < maxTinyPatterns && (!nocase[id] || !hasLetter(p)) {
				tiny = append(tiny, int32(id))
			}
		}
	}
	if sp.bits == 0 {
		a.skip = newSkipFilterWindow(a, m, sp.optional, tiny, skipTable(a.pats, sp.optional, m), nil, 0)
	} else {
		a.skip = newSkipFilterWindow(a, m, sp.optional, tiny, nil, wideTable(a.pats, sp.optional, m, sp.bits), sp.bits)
	}

	words := (len(pats) + 63) / 64
	wantAll, wantTail := make([]bool, len(pats)), make([]bool, len(pats))
	for id, p := range pats {
		wantAll[id] = naiveContains(text, p, nocase[id])
		wantTail[id] = naiveContains(text[tailFrom:], p, nocase[id])
	}
	desc := fmt.Sprintf("m=%d bits=%d optional=%v tailFrom=%d budget=%d pats=%q nocase=%v text=%q", m, sp.bits, sp.optional, tailFrom, budget, pats, nocase, text)
	check := func(what string, all, tail []uint64, found []int32, exact bool) {
		t.Helper()
		seen := map[int32]bool{}
		for _, id := range found {
			require.False(t, seen[id], "%s: %d found twice: %s", what, id, desc)
			seen[id] = true
		}
		for id, p := range pats {
			gotAll := all[id>>6]&(1<<(id&63)) != 0
			gotTail := tail[id>>6]&(1<<(id&63)) != 0
			require.Equal(t, gotAll, seen[int32(id)], "%s: found matches all for %d: %s", what, id, desc)
			if exact || a.skip.exactFor(int32(id), p) {
				require.Equal(t, wantAll[id], gotAll, "%s: all %q: %s", what, p, desc)
				require.Equal(t, wantTail[id], gotTail, "%s: tail %q: %s", what, p, desc)
			} else {
				require.True(t, !gotAll || wantAll[id], "%s: all %q only if there: %s", what, p, desc)
				require.True(t, !gotTail || wantTail[id], "%s: tail %q only if there: %s", what, p, desc)
			}
		}
	}

	all, tail := make([]uint64, words), make([]uint64, words)
	found, ok := a.scanSkip(text, tailFrom, all, tail, make([]int32, 0, len(pats)), math.MaxInt, false)
	require.True(t, ok, desc)
	found = a.findTiny(text, tailFrom, all, tail, found)
	check("scanSkip", all, tail, found, false)

	// Through findBudget, with the memo the automaton uses when it falls
	// back; clearing the words of the found ids zeroes every bitset.
	all, tail, memo := make([]uint64, words), make([]uint64, words), make([]uint64, words)
	found, exact := a.findBudget(text, tailFrom, all, tail, memo, make([]int32, 0, len(pats)), budget)
	check("findBudget", all, tail, found, exact)
	clearHits(all, tail, memo, found)
	require.Equal(t, make([]uint64, words), all)
	require.Equal(t, make([]uint64, words), tail)
	require.Equal(t, make([]uint64, words), memo)
}

// TestSkipAgainstNaive is the differential test of the skip filter: random
// pattern sets (nocase or not, sharing prefixes and suffixes, overlapping,
// of 2 to 20 bytes) and random texts with patterns planted at random places,
// at both ends and overlapping each other, in random case, for every window
// from 2 to the shortest pattern, dense and sparse automata, and budgets
// from none (the automaton at once) to unlimited.
func TestSkipAgainstNaive(t *testing.T) {
	alphabets := []string{"aAbB\x00|Zz", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", ""}
	rng := rand.New(rand.NewPCG(9, 10))
	for round := range 500 {
		alphabet := alphabets[round%len(alphabets)]
		randByte := func() byte {
			if alphabet == "" {
				return byte(rng.Uint32())
			}
			return alphabet[rng.IntN(len(alphabet))]
		}
		minLen := 2 + rng.IntN(8)
		var pats [][]byte
		var nocase []bool
		for range 1 + rng.IntN(30) {
			var p []byte
			if len(pats) > 0 && rng.IntN(3) == 0 {
				// Share a prefix or suffix with an earlier pattern.
				q := pats[rng.IntN(len(pats))]
				k := rng.IntN(len(q) + 1)
				if rng.IntN(2) == 0 {
					p = append(p, q[:k]...)
				} else {
					p = append(p, q[len(q)-k:]...)
				}
			}
			for len(p) < minLen+rng.IntN(12) {
				p = append(p, randByte())
			}
			pats = append(pats, p)
			nocase = append(nocase, rng.IntN(2) == 0)
		}
		a := newAutomatonDense(pats, nocase, []int{denseBudget, 40, 0}[round%3])
		shortest, longest := len(pats[0]), 0
		for _, p := range pats {
			shortest, longest = min(shortest, len(p)), max(longest, len(p))
		}
		for range 6 {
			var text []byte
			for len(text) < rng.IntN(200) {
				if rng.IntN(4) == 0 {
					// A pattern, in random case, maybe overlapping the
					// bytes before it.
					p := pats[rng.IntN(len(pats))]
					if k := rng.IntN(4); k < len(text) && rng.IntN(2) == 0 {
						text = text[:len(text)-k]
					}
					for _, c := range p {
						if rng.IntN(3) == 0 {
							c ^= 0x20 * byte(rng.IntN(2))
						}
						text = append(text, c)
					}
					continue
				}
				text = append(text, randByte())
			}
			tailFrom := rng.IntN(len(text) + 1)
			budget := []int{0, 3, skipBudget(len(text)), math.MaxInt}[rng.IntN(4)]
			// Windows longer than the shortest pattern leave some out,
			// and so do optional patterns. Wide tables of 64 and 1,024
			// entries make hash collisions common.
			var optional []bool
			if rng.IntN(3) == 0 {
				optional = make([]bool, len(pats))
				for id := range optional {
					optional[id] = rng.IntN(3) == 0
				}
			}
			for _, m := range []int{2, shortest, 2 + rng.IntN(shortest-1), 2 + rng.IntN(longest-1)} {
				tiny := rng.IntN(2) == 0
				checkSkip(t, a, skipSpec{m, 0, optional, tiny}, pats, nocase, text, tailFrom, budget)
				if m >= 3 {
					checkSkip(t, a, skipSpec{m, []uint{6, 10}[rng.IntN(2)], optional, tiny}, pats, nocase, text, tailFrom, budget)
				}
			}
		}
	}
}

// TestSkipEdges covers what random texts rarely hit: patterns at the very
// start and end of the text, texts shorter than the window, a text that is
// exactly a pattern, nested and periodic patterns, and bytes that fold.
func TestSkipEdges(t *testing.T) {
	for _, tc := range []struct {
		pats   []string
		nocase []bool
		texts  []string
	}{
		{[]string{"abcd", "bcde", "cdef"}, []bool{false, true, false}, []string{"abcdef", "ABCDEF", "abcd", "xabcd", "abc", "", "cdefab", "bcde"}},
		{[]string{"aaaa", "aaaaa", "aaaaaaaaaaa"}, []bool{false, true, true}, []string{strings.Repeat("a", 40), strings.Repeat("aA", 20), "aaa", "Aaaa"}},
		{[]string{"abab", "baba", "ababab"}, []bool{true, false, false}, []string{"abababab", "BABA", "xxababx", "ab"}},
		{[]string{"\x00\xff\x00\xff", "\xc4\xe4\xc4\xe4"}, []bool{true, true}, []string{"\x00\xff\x00\xff", "\xe4\xc4\xe4\xc4\xe4", "\xc4\xe4\xc4\xe4"}},
		{[]string{"User-Agent: curl", "user-agent"}, []bool{false, true}, []string{"user-agent: curl", "USER-AGENT: curl", "xUser-Agent: curl"}},
	} {
		var pats [][]byte
		longest := 0
		for _, p := range tc.pats {
			pats = append(pats, []byte(p))
			longest = max(longest, len(p))
		}
		for _, budget := range []int{0, math.MaxInt} {
			a := newAutomaton(pats, tc.nocase)
			for m := 2; m <= longest; m++ {
				for _, text := range tc.texts {
					for from := 0; from <= len(text); from++ {
						checkSkip(t, a, skipSpec{m, 0, nil, m%2 == 0}, pats, tc.nocase, []byte(text), from, budget)
						if m >= 3 {
							checkSkip(t, a, skipSpec{m, 8, nil, m%2 == 1}, pats, tc.nocase, []byte(text), from, budget)
						}
					}
				}
			}
		}
	}
}

// FuzzSkip checks the skip filter against the naive search. The input is: a
// byte choosing the window (low 5 bits, reduced to 2 up to the longest
// pattern), whether to budget, and a dense budget; a byte for where the tail
// starts (low 6 bits) and a wide table of 64 entries instead of the 2-byte
// one (bit 6, for windows of 3 or more); bit 7 of the first byte searches
// short exact patterns on their own; then patterns, each a length byte (low 4 bits: 2 to 17 bytes; bit
// 4: nocase) and its bytes, up to a zero length byte; the rest is the text.
func FuzzSkip(f *testing.F) {
	f.Add([]byte("\x03\x00\x03abcd\x13ABCDe\x00xxabcdeABCD"))
	f.Add([]byte("\xff\x05\x02aaaa\x12aaaaa\x00aaaaaaaaaaaaaaaaaa"))
	f.Add([]byte("\x41\x00\x0ezq-needle-0001\x0ezq-needle-0002\x00random zq-needle-0002zq-needle-0001"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2 {
			return
		}
		mode, from, wide := in[0], int(in[1]&63), in[1]&64 != 0
		in = in[2:]
		var pats [][]byte
		var nocase []bool
		longest := 0
		for len(in) > 0 && in[0] != 0 && len(pats) < 64 {
			n := int(in[0]&15) + 2
			nc := in[0]&16 != 0
			if len(in) < 1+n {
				break
			}
			pats = append(pats, in[1:1+n])
			nocase = append(nocase, nc)
			longest = max(longest, n)
			in = in[1+n:]
		}
		if len(in) > 0 {
			in = in[1:]
		}
		if len(pats) == 0 {
			return
		}
		m := 2 + int(mode&31)%(longest-1)
		budget := math.MaxInt
		if mode&32 != 0 {
			budget = skipBudget(len(in))
		}
		a := newAutomatonDense(pats, nocase, []int{denseBudget, 0}[mode>>6&1])
		sp := skipSpec{m: m, tiny: mode&128 != 0}
		if wide && m >= 3 {
			sp.bits = 6
		}
		checkSkip(t, a, sp, pats, nocase, in, from%(len(in)+1), budget)
	})
}

// TestSkipChosen keeps newSkipFilter's choice honest: it is used for the
// bench harness's rules and ET-shaped sets, with short contents left out
// when they are no rule's fast pattern and searched on their own when up to
// two are; not for a short nocase fast pattern, three short ones, more than
// maxSkipPatterns patterns, or a table full of small shifts; and the wide
// table for thousands of binary contents.
func TestSkipChosen(t *testing.T) {
	bench := mustParse(t, benchHarnessRules(100))
	require.NotNil(t, bench.ac.skip)
	assert.Equal(t, 14, bench.ac.skip.m)
	assert.NotNil(t, mustParse(t, etRules(100, 1)).ac.skip)
	// Up to two short contents that are rules' fast patterns are searched
	// on their own, unless nocase.
	short := mustParse(t, benchHarnessRules(100)+`alert tcp any any -> any any (content:"abc"; sid:1;)
alert tcp any any -> any any (content:"|00 01|"; sid:2;)`)
	require.NotNil(t, short.ac.skip)
	assert.Len(t, short.ac.skip.tiny, 2)
	assert.True(t, mustParse(t, benchHarnessRules(100)+`alert tcp any any -> any any (content:"abc"; nocase; sid:1;)`).ac.skip == nil, "a 3-byte nocase content")
	assert.True(t, mustParse(t, benchHarnessRules(100)+`alert tcp any any -> any any (content:"abc"; sid:1;)
alert tcp any any -> any any (content:"|00 01|"; sid:2;)
alert tcp any any -> any any (content:"a"; sid:3;)`).ac.skip == nil, "three short contents")
	// Short contents beside a longer one in every rule: the skip leaves
	// them out, and a frame with the longer one is scanned again.
	many := mustParse(t, manyRules(100))
	require.NotNil(t, many.ac.skip)
	assert.True(t, many.ac.skip.partial)
	assert.NotNil(t, many.rescan)
	assert.True(t, bench.rescan == nil)

	// More patterns than maxSkipPatterns.
	var pats [][]byte
	for i := range maxSkipPatterns + 1 {
		pats = append(pats, fmt.Appendf(nil, "pattern-%08d", i))
	}
	assert.True(t, newAutomaton(pats, make([]bool, len(pats))).skip == nil)
	// Fewer, but filling the table with small shifts: 12,000 random
	// 4-byte patterns put a shift of 0 on a sixth of the blocks.
	rng := rand.New(rand.NewPCG(1, 1))
	pats = pats[:0]
	for range 12000 {
		p := make([]byte, 4)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		pats = append(pats, p)
	}
	assert.True(t, newAutomaton(pats, make([]bool, len(pats))).skip == nil)

	// Thousands of binary 12-byte patterns fill the 2-byte table but not
	// the wide one.
	pats = pats[:0]
	for range 5000 {
		p := make([]byte, 12)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		pats = append(pats, p)
	}
	wide := newAutomaton(pats, make([]bool, len(pats))).skip
	require.NotNil(t, wide)
	assert.NotNil(t, wide.wide)
	assert.Equal(t, 12, wide.m)
}

// TestMatchSkipAgainstNaive runs Match with rule sets that use the skip
// filter (with short contents beside long ones, which it leaves out) on frames with their contents planted in random bytes, split,
// case-flipped and at both ends of the payload, and on payloads that make
// the skip scan give up, against the naive matcher; and shows that Match
// still allocates nothing.
func TestMatchSkipAgainstNaive(t *testing.T) {
	rules := benchHarnessRules(100) + etRules(100, 4) + manyRules(100) +
		"alert ip any any -> any any (content:\"IpPayLoad\"; nocase; sid:9001;)\n" +
		"drop tcp any any -> any 80 (content:\"GET /forbidden\"; content:\"Host: evil\"; nocase; sid:9002;)\n" +
		"drop tcp any any -> any any (content:\"GET\"; content:\"/forbidden-too\"; content:\"|0d 0a|\"; sid:9003;)\n" +
		"alert tcp any any -> any 5201 (content:\"|00 ff|\"; sid:9004;)\n" +
		"alert udp any any -> any any (content:\"Zq\"; content:\"|0d 0a|\"; sid:9005;)\n"
	set := mustParse(t, rules)
	require.Len(t, set.ac.skip.tiny, 2, "two short fast patterns")
	require.NotNil(t, set.ac.skip)
	require.Nil(t, set.ac.skip.wide)
	require.NotNil(t, set.rescan, "short contents beside long ones")
	checkMatchSkip(t, set, 400)

	// Thousands of binary contents: the wide table.
	rng := rand.New(rand.NewPCG(13, 14))
	var b strings.Builder
	for i := range 5000 {
		b.WriteString(`alert tcp any any -> any any (content:"|`)
		for range 12 {
			fmt.Fprintf(&b, "%02x ", rng.IntN(256))
		}
		fmt.Fprintf(&b, "|\"; content:\"ab\"; sid:%d;)\n", 10000+i)
	}
	wide := mustParse(t, b.String()+benchHarnessRules(100))
	require.NotNil(t, wide.ac.skip)
	require.NotNil(t, wide.ac.skip.wide)
	checkMatchSkip(t, wide, 200)
}

// checkMatchSkip runs Match with set on rounds random frames (and their
// UDP twins) with the set's contents planted in random bytes, split and
// case-flipped, against the naive matcher, and shows that Match allocates
// nothing.
func checkMatchSkip(t *testing.T, set *Set, rounds int) {
	var contents [][]byte
	for _, r := range set.rules {
		for _, c := range r.contents {
			contents = append(contents, c.pattern)
		}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	r := set.NewResult()
	for round := range rounds {
		var pay []byte
		switch round % 8 {
		case 0:
			// Every window a candidate: the skip scan gives up.
			pay = bytes.Repeat([]byte("0101"), 300)
			pay = append(pay, "zq-needle-0042"...)
		case 1:
			// A long content found by the skip, its short companions
			// not: Match scans again.
			pay = []byte("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxGET x\r\n/forbidden-too yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy")
			if rng.IntN(2) == 0 {
				pay = bytes.Replace(pay, []byte("\r\n"), []byte("\r."), 1)
			}
		case 4:
			// The short contents searched on their own, in random
			// bytes.
			for _, c := range []string{"\x00\xff", "Zq", "\r\n"} {
				for range 30 + rng.IntN(60) {
					pay = append(pay, byte(rng.Uint32()))
				}
				pay = append(pay, c...)
			}
		case 2, 3:
			// Every content of one rule, in random bytes: the rule
			// matches only if the contents the table leaves out are
			// found too.
			rule := set.rules[rng.IntN(len(set.rules))]
			for _, c := range rule.contents {
				pay = append(pay, bytes.Repeat([]byte{'~'}, rng.IntN(40))...)
				pay = append(pay, c.pattern...)
			}
			for i := range pay {
				if pay[i] == '~' {
					pay[i] = byte(rng.Uint32())
				}
			}
		default:
			for len(pay) < rng.IntN(1500) {
				if rng.IntN(6) == 0 {
					c := contents[rng.IntN(len(contents))]
					if rng.IntN(4) == 0 {
						c = c[:rng.IntN(len(c))] // a piece only
					}
					for _, b := range c {
						if rng.IntN(4) == 0 {
							b ^= 0x20
						}
						pay = append(pay, b)
					}
					continue
				}
				pay = append(pay, byte(rng.Uint32()))
			}
		}
		port := []uint16{80, 443, 5201}[rng.IntN(3)]
		for _, f := range []frameSpec{tcp4("10.0.0.1", "10.0.0.2", 40000, port, string(pay)), udp4("10.0.0.1", "10.0.0.2", 40000, port, string(pay))} {
			fr := f.build()
			set.Match(fr, r)
			checkAgainstNaive(t, set, fr, r)
		}
	}
	for _, f := range randomPayloadFrames() {
		assert.Zero(t, testing.AllocsPerRun(50, func() { set.Match(f.frame, r) }), f.name)
	}
}

// FuzzMatchSkip is FuzzMatch's comparison with the naive matcher for a rule
// set that uses the skip table and leaves contents out of it (rules with
// two or three contents, and short ones beside long ones).
func FuzzMatchSkip(f *testing.F) {
	set, err := Parse(strings.NewReader(benchHarnessRules(100)+etRules(100, 4)+manyRules(100)), "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	if set.ac.skip == nil || set.rescan == nil {
		f.Fatal("the set does not use the skip table with rescans")
	}
	for _, fr := range randomPayloadFrames()[:2] {
		f.Add(fr.frame)
	}
	rng := rand.New(rand.NewPCG(15, 16))
	for _, r := range set.rules[100:200] { // the ET-shaped ones
		var pay []byte
		for _, c := range r.contents {
			for range 20 {
				pay = append(pay, byte(rng.Uint32()))
			}
			pay = append(pay, c.pattern...)
		}
		f.Add(tcp4("10.0.0.1", "10.0.0.2", 40000, 80, string(pay)).build())
	}
	res := set.NewResult()
	f.Fuzz(func(t *testing.T, frame []byte) {
		set.Match(frame, res)
		checkAgainstNaive(t, set, frame, res)
	})
}
