package rules

import (
	"bytes"
	"slices"
)

// skipFilter lets a scan jump over most of a payload instead of walking the
// automaton over every byte: a Wu-Manber SHIFT table over 2-byte blocks
// (or hashed 3-byte ones, see wide; the same reasoning holds).
//
// Every pattern in the table is at least m bytes long (see partial for the
// others). The scan looks at windows of m bytes, reading only the last two
// bytes of each (the block). shift[block]
// is how far the window can move without passing a window that starts an
// occurrence: the distance from the block's last position in the first m
// bytes of any pattern to position m-1, or m-1 when the block is in no
// pattern's first m bytes. A window whose block has shift 0 may start an
// occurrence; the patterns starting there are found by walking the trie
// (the automaton's goto edges) from the root, never by rescanning.
//
// Why nothing is skipped: say the window ending at pos has shift s > 0 and a
// pattern occurs at t with its window ending at e, pos < e < pos+s. Then
// t <= pos-1 (as e-pos < s <= m-1), so the block data[pos-1:pos+1] lies in
// the pattern's first m bytes with its last byte at index pos-t, and
// shift[block] <= m-1-(pos-t) = e-pos < s: a contradiction.
//
// The table is indexed by raw bytes and filled for every case variant of a
// pattern's folded blocks, so nocase patterns need no folding at scan time;
// a case-sensitive pattern is verified against the original bytes, as the
// automaton does.
//
// Random payloads (what a bulk transfer sends) hit a shift-0 block with a
// probability of about (patterns)/65536, so with a hundred 14-byte contents
// the scan reads about one byte in thirteen. Many patterns fill the table
// with small shifts, and short patterns cap the shift at m-1: then the skip
// does not pay, newSkipFilter returns nil, and Match keeps the plain
// automaton. The filter holds 64 KiB, and 4 bytes per byte of the longest
// pattern. A payload whose blocks often have shift 0 (text close to the
// patterns) makes a scan give up after a bounded amount of work and run
// the automaton instead, so the worst case is a constant factor over it.
type skipFilter struct {
	m int // window length: at most the shortest required pattern, and maxSkipWindow
	// shift is the SHIFT table over 2-byte blocks, or nil when wide is
	// used instead.
	shift *[1 << 16]uint8
	// wide is the SHIFT table over 3-byte blocks, hashed to wideBits bits
	// (see wideIndex), for many patterns: 2-byte blocks of thousands of
	// patterns cover most of the 65,536, so most shifts would be small. A
	// hash collision only lowers a shift, never raises one.
	wide     []uint8
	wideBits uint
	// levels[d] is the first automaton state of depth d, for d from 1 to
	// the longest pattern's length, and levels[len(levels)-1] the number
	// of states: states are numbered breadth first, so depth d is the range
	// levels[d]:levels[d+1]. A goto edge leads one deeper, every other
	// transition to a state no deeper; that tells them apart in a dense row.
	levels []int32
	// partial is set when the table leaves a pattern out (optional, or
	// shorter than m): a skip scan finds it only where it verifies a window
	// anyway.
	partial bool
	// optional are the patterns a scan may find in part, as given to
	// newSkipFilter (nil: none).
	optional []bool
	// tiny are required patterns too short for the table (under
	// minSkipWindow bytes, at most maxTinyPatterns, matched exactly by
	// bytes): a scan searches each with bytes.Index, which is vectorised.
	tiny []int32
	// perKiB is four times the table's estimated work per KiB of random
	// bytes (see skipCost): a scan whose work outruns it is on data the
	// skip does not suit, and gives up early (see hopeless).
	perKiB int
}

const (
	// maxSkipWindow caps the window: a longer one adds blocks to the table
	// (fewer large shifts) for little more distance per window.
	maxSkipWindow = 32
	// minSkipWindow is the shortest window worth skipping with: below it
	// the shift is at most 2 and the table lookups cost more than they save.
	minSkipWindow = 4
	// maxSkipPatterns bounds the patterns a table is built for (build
	// time: a few table entries per pattern byte).
	maxSkipPatterns = 256 << 10
	// minWidePatterns is the fewest required patterns for which a wide
	// table is tried: with fewer, the 2-byte one does as well in 64 KiB.
	minWidePatterns = 2048
	// wideBits is the size of a wide table: 1 MiB.
	wideBits = 20
	// maxSkipCost is the estimated cost per byte, in table lookups, above
	// which the filter is not used: the automaton costs about two to three
	// lookups per byte (see skipCost).
	maxSkipCost = 0.35
	// wideCostFactor weighs a wide table's lookups, which miss the L1
	// and often the L2 cache.
	wideCostFactor = 2
	// skipVerifyCost is the estimated cost of verifying a shift-0 window,
	// in table lookups.
	skipVerifyCost = 4
	// maxTinyPatterns is the most required patterns under minSkipWindow
	// bytes that a filter searches on its own; tinyCost is the estimated
	// cost of each search per byte, in table lookups.
	maxTinyPatterns = 2
	tinyCost        = 0.05
)

// newSkipFilter returns a skip filter for the automaton's patterns, or nil
// when none pays: a required pattern shorter than minSkipWindow, too many
// patterns, or an estimated cost per byte over maxSkipCost for every window
// and table tried. optional, when not nil, marks the patterns that a scan
// may find only in part (see find): the table holds the others alone.
//
// A Set passes the contents that are no rule's longest: a rule is looked at
// only when its longest content occurs, so "GET" beside a long content does
// not keep the skip from every frame, only from the frames where the long
// one occurs (Match then rescans with the automaton).
func newSkipFilter(a *automaton, optional []bool) *skipFilter {
	if len(a.pats) == 0 || len(a.pats) > maxSkipPatterns {
		return nil
	}
	minLen, required := -1, 0
	var tiny []int32
	for id, p := range a.pats {
		if optional != nil && optional[id] {
			continue
		}
		required++
		if len(p) < minSkipWindow {
			// Searched on its own when exact bytes: a nocase letter
			// would need a search per case variant.
			if len(tiny) == maxTinyPatterns || a.nocase[id] && hasLetter(p) {
				return nil
			}
			tiny = append(tiny, int32(id))
			continue
		}
		if minLen < 0 || len(p) < minLen {
			minLen = len(p)
		}
	}
	if minLen < minSkipWindow {
		return nil
	}
	var (
		bestM    int
		bestCost = maxSkipCost - tinyCost*float64(len(tiny))
		narrow   *[1 << 16]uint8
		wide     []uint8
	)
	for _, m := range []int{min(minLen, maxSkipWindow), min(minLen, 16), min(minLen, 8)} {
		if t := skipTable(a.pats, optional, m); skipCost(t[:]) < bestCost {
			bestM, bestCost, narrow, wide = m, skipCost(t[:]), t, nil
		}
		if required >= minWidePatterns {
			w := wideTable(a.pats, optional, m, wideBits)
			if c := wideCostFactor * skipCost(w); c < bestCost {
				bestM, bestCost, narrow, wide = m, c, nil, w
			}
		}
	}
	if narrow == nil && wide == nil {
		return nil
	}
	return newSkipFilterWindow(a, bestM, optional, tiny, narrow, wide, wideBits)
}

// newSkipFilterWindow returns the skip filter of window m (2 <= m <= 256,
// and m >= 3 for a wide table) with table narrow or wide, whatever it
// costs: tests use it to try every window. Patterns that are optional or
// shorter than m are left out of the table; those of tiny (shorter than m,
// exact bytes) are searched on their own.
func newSkipFilterWindow(a *automaton, m int, optional []bool, tiny []int32, narrow *[1 << 16]uint8, wide []uint8, bits uint) *skipFilter {
	longest := 0
	for _, p := range a.pats {
		longest = max(longest, len(p))
	}
	f := &skipFilter{m: m, shift: narrow, wide: wide, wideBits: bits, levels: make([]int32, longest+2), optional: optional, tiny: tiny}
	if narrow != nil {
		f.perKiB = int(4*1024*skipCost(narrow[:])) + 1
	} else {
		f.perKiB = int(4*1024*skipCost(wide)) + 1
	}
	n := int32(a.states())
	for d := range f.levels {
		f.levels[d] = n
	}
	f.levels[0] = 0
	// Every state is a prefix of a pattern, and following a pattern from
	// the root takes only goto edges, so the k-byte prefixes of the
	// patterns are the states of depth k.
	for id, p := range a.pats {
		f.partial = f.partial || !f.exactFor(int32(id), p)
		s := int32(0)
		for k, c := range p {
			s = a.step(s, a.class[c]) >> 1
			f.levels[k+1] = min(f.levels[k+1], s)
		}
	}
	return f
}

// exactFor reports whether a skip scan finds pattern id, p, exactly: the
// table holds it, or it is searched on its own.
func (f *skipFilter) exactFor(id int32, p []byte) bool {
	return !leftOut(p, int(id), f.optional, f.m) || slices.Contains(f.tiny, id)
}

// leftOut reports whether pattern id, p, stays out of a table of window m.
func leftOut(p []byte, id int, optional []bool, m int) bool {
	return len(p) < m || (optional != nil && optional[id])
}

// skipTable returns the SHIFT table over 2-byte blocks of window m for the
// patterns of pats that are not left out.
func skipTable(pats [][]byte, optional []bool, m int) *[1 << 16]uint8 {
	var folded [1 << 16]uint8
	for i := range folded {
		folded[i] = uint8(m - 1)
	}
	for id, p := range pats {
		if leftOut(p, id, optional, m) {
			continue
		}
		for j := 1; j < m; j++ {
			b := skipBlock(lower(p[j-1]), lower(p[j]))
			folded[b] = min(folded[b], uint8(m-1-j))
		}
	}
	t := new([1 << 16]uint8)
	for b := range t {
		t[b] = folded[skipBlock(lower(byte(b)), lower(byte(b>>8)))]
	}
	return t
}

// skipBlock is the table index of the block of bytes x, y: little-endian,
// so that a scan reads it with one 16-bit load.
func skipBlock(x, y byte) uint16 {
	return uint16(x) | uint16(y)<<8
}

// wideTable returns the SHIFT table over 3-byte blocks, hashed to bits
// bits, of window m (m >= 3) for the patterns of pats that are not left
// out. Each block is entered in every case variant of its letters, as a
// scan hashes raw bytes.
func wideTable(pats [][]byte, optional []bool, m int, bits uint) []uint8 {
	t := make([]uint8, 1<<bits)
	for i := range t {
		t[i] = uint8(m - 2)
	}
	for id, p := range pats {
		if leftOut(p, id, optional, m) {
			continue
		}
		for j := 2; j < m; j++ {
			sh := uint8(m - 1 - j)
			xs, nx := caseVariants(p[j-2])
			ys, ny := caseVariants(p[j-1])
			zs, nz := caseVariants(p[j])
			for _, x := range xs[:nx] {
				for _, y := range ys[:ny] {
					for _, z := range zs[:nz] {
						h := wideIndex(uint32(x)|uint32(y)<<8|uint32(z)<<16, bits)
						t[h] = min(t[h], sh)
					}
				}
			}
		}
	}
	return t
}

// caseVariants returns c in lower and upper case (2), or c alone (1).
func caseVariants(c byte) ([2]byte, int) {
	c = lower(c)
	if c >= 'a' && c <= 'z' {
		return [2]byte{c, c - 'a' + 'A'}, 2
	}
	return [2]byte{c}, 1
}

// wideIndex hashes a 3-byte block (little-endian in x) to bits bits.
func wideIndex(x uint32, bits uint) uint32 { return x * 0x9e3779b1 >> (32 - bits) }

// skipCost estimates the cost per byte of a skip scan over uniformly random
// bytes, in table lookups: per window one lookup, plus a verification when
// the shift is 0, over the mean distance a window moves.
func skipCost(t []uint8) float64 {
	var adv, zero int
	for _, s := range t {
		adv += max(int(s), 1)
		if s == 0 {
			zero++
		}
	}
	p0 := float64(zero) / float64(len(t))
	return (1 + skipVerifyCost*p0) / (float64(adv) / float64(len(t)))
}

// skipBudget is the work (windows looked up, windows verified and trie
// steps) a skip scan of n bytes may do before it gives up for the
// automaton. Each unit is a dependent load, as an automaton step per byte
// is, so a scan that gives up has spent about a quarter of what the
// automaton then spends: the worst case costs 1.25 times the automaton
// alone. Text made of the patterns' bytes usually gives up much sooner
// (see hopeless).
func skipBudget(n int) int { return n/4 + 16 }

// find is scanMemo, through the skip filter when the automaton has one: it
// sets the same bits in all and tail and returns the same ids in found,
// though not necessarily in the same order, for every pattern the table
// holds. It reports whether that holds for every pattern (exact); when
// not, the bits of the others (see skipFilter.partial) are a subset of the
// truth.
func (a *automaton) find(data []byte, tailFrom int, all, tail, memo []uint64, found []int32) ([]int32, bool) {
	return a.findBudget(data, tailFrom, all, tail, memo, found, skipBudget(len(data)))
}

// findBudget is find with the skip scan's budget given.
func (a *automaton) findBudget(data []byte, tailFrom int, all, tail, memo []uint64, found []int32, budget int) ([]int32, bool) {
	if a.skip != nil {
		base := len(found)
		var ok bool
		if found, ok = a.scanSkip(data, tailFrom, all, tail, found, budget, true); ok {
			return a.findTiny(data, tailFrom, all, tail, found), !a.skip.partial
		}
		// Too many candidate windows: start again with the automaton,
		// which needs the bitsets as it left them, zero.
		clearHits(all, tail, memo, found[base:])
		found = found[:base]
	}
	return a.scanMemo(data, tailFrom, all, tail, memo, found), true
}

// scanSkip is scan through the skip filter. It reports false, with
// whatever it found so far, when it took more than budget steps (see
// skipBudget), or with early when it turned out hopeless.
//
// Each window's lookup waits for the one before it (the shift says where
// the next window is), so one scan is a chain of dependent loads. Four
// scans run interleaved instead, each over the windows ending in a quarter
// of data, so that the processor overlaps their loads. The proof of
// skipFilter holds for each: a scan starts at the first window of its
// quarter and stops at its end, and every window end lies in one quarter.
func (a *automaton) scanSkip(data []byte, tailFrom int, all, tail []uint64, found []int32, budget int, early bool) ([]int32, bool) {
	start := budget
	if a.skip.wide != nil {
		return a.scanWide(data, tailFrom, all, tail, found, budget, early)
	}
	shift := a.skip.shift
	n := len(data)
	first := a.skip.m - 1
	if first >= n {
		return found, true
	}
	// Lane k covers the window ends [e_k, e_k+1).
	w := (n - first) / 4
	e1, e2, e3 := first+w, first+2*w, first+3*w
	p0, p1, p2, p3 := first, e1, e2, e3
	if w >= 16 {
		for p0 < e1 && p1 < e2 && p2 < e3 && p3 < n {
			s0 := shift[uint16(data[p0-1])|uint16(data[p0])<<8]
			s1 := shift[uint16(data[p1-1])|uint16(data[p1])<<8]
			s2 := shift[uint16(data[p2-1])|uint16(data[p2])<<8]
			s3 := shift[uint16(data[p3-1])|uint16(data[p3])<<8]
			budget -= 4
			if s0 != 0 && s1 != 0 && s2 != 0 && s3 != 0 && budget >= 0 {
				p0 += int(s0)
				p1 += int(s1)
				p2 += int(s2)
				p3 += int(s3)
				continue
			}
			// Advance the lanes with a candidate by one window each and
			// the others by their shift, as a single scan would.
			var steps int
			if s0 == 0 {
				found, steps = a.descend(data, p0+1-a.skip.m, tailFrom, all, tail, found)
				budget -= 1 + steps
				s0 = 1
			}
			if s1 == 0 {
				found, steps = a.descend(data, p1+1-a.skip.m, tailFrom, all, tail, found)
				budget -= 1 + steps
				s1 = 1
			}
			if s2 == 0 {
				found, steps = a.descend(data, p2+1-a.skip.m, tailFrom, all, tail, found)
				budget -= 1 + steps
				s2 = 1
			}
			if s3 == 0 {
				found, steps = a.descend(data, p3+1-a.skip.m, tailFrom, all, tail, found)
				budget -= 1 + steps
				s3 = 1
			}
			if budget < 0 || early && a.skip.hopeless(start-budget, p0-first+p1-e1+p2-e2+p3-e3) {
				return found, false
			}
			p0 += int(s0)
			p1 += int(s1)
			p2 += int(s2)
			p3 += int(s3)
		}
	} else {
		p0, p1, p2, p3 = first, n, n, n
		e1, e2, e3 = n, n, n
	}
	var ok bool
	// Finish each lane alone, still watching the work against the bytes
	// covered by all four.
	covered := p0 - first + p1 - e1 + p2 - e2 + p3 - e3
	for _, l := range [...][2]int{{p0, e1}, {p1, e2}, {p2, e3}, {p3, n}} {
		var moved int
		if found, budget, moved, ok = a.skipLane(data, l[0], l[1], tailFrom, all, tail, found, budget, early, start, covered); !ok {
			return found, false
		}
		covered += moved
	}
	return found, true
}

// scanWide is scanSkip with the wide table: the same four lanes, each
// window looked up by the hash of its last three bytes.
func (a *automaton) scanWide(data []byte, tailFrom int, all, tail []uint64, found []int32, budget int, early bool) ([]int32, bool) {
	start := budget
	wide, bits := a.skip.wide, a.skip.wideBits
	n := len(data)
	first := a.skip.m - 1
	if first >= n {
		return found, true
	}
	w := (n - first) / 4
	e1, e2, e3 := first+w, first+2*w, first+3*w
	p0, p1, p2, p3 := first, e1, e2, e3
	if w >= 16 {
		for p0 < e1 && p1 < e2 && p2 < e3 && p3 < n {
			s0 := wide[wideIndex(uint32(data[p0-2])|uint32(data[p0-1])<<8|uint32(data[p0])<<16, bits)]
			s1 := wide[wideIndex(uint32(data[p1-2])|uint32(data[p1-1])<<8|uint32(data[p1])<<16, bits)]
			s2 := wide[wideIndex(uint32(data[p2-2])|uint32(data[p2-1])<<8|uint32(data[p2])<<16, bits)]
			s3 := wide[wideIndex(uint32(data[p3-2])|uint32(data[p3-1])<<8|uint32(data[p3])<<16, bits)]
			budget -= 4
			if s0 != 0 && s1 != 0 && s2 != 0 && s3 != 0 && budget >= 0 {
				p0 += int(s0)
				p1 += int(s1)
				p2 += int(s2)
				p3 += int(s3)
				continue
			}
			var steps int
			if s0 == 0 {
				found, steps = a.descend(data, p0+1-a.skip.m, tailFrom, all, tail, found)
				budget -= 1 + steps
				s0 = 1
			}
			if s1 == 0 {
				found, steps = a.descend(data, p1+1-a.skip.m, tailFrom, all, tail, found)
				budget -= 1 + steps
				s1 = 1
			}
			if s2 == 0 {
				found, steps = a.descend(data, p2+1-a.skip.m, tailFrom, all, tail, found)
				budget -= 1 + steps
				s2 = 1
			}
			if s3 == 0 {
				found, steps = a.descend(data, p3+1-a.skip.m, tailFrom, all, tail, found)
				budget -= 1 + steps
				s3 = 1
			}
			if budget < 0 || early && a.skip.hopeless(start-budget, p0-first+p1-e1+p2-e2+p3-e3) {
				return found, false
			}
			p0 += int(s0)
			p1 += int(s1)
			p2 += int(s2)
			p3 += int(s3)
		}
	} else {
		p0, p1, p2, p3 = first, n, n, n
		e1, e2, e3 = n, n, n
	}
	covered := p0 - first + p1 - e1 + p2 - e2 + p3 - e3
	for _, l := range [...][2]int{{p0, e1}, {p1, e2}, {p2, e3}, {p3, n}} {
		from, end := l[0], min(l[1], n)
		for p := from; p < end; {
			s := wide[wideIndex(uint32(data[p-2])|uint32(data[p-1])<<8|uint32(data[p])<<16, bits)]
			if budget--; s != 0 && budget >= 0 {
				p += int(s)
				continue
			}
			var steps int
			found, steps = a.descend(data, p+1-a.skip.m, tailFrom, all, tail, found)
			if budget -= 1 + steps; budget < 0 || early && a.skip.hopeless(start-budget, covered+p-from) {
				return found, false
			}
			p++
		}
		covered += max(end-from, 0)
	}
	return found, true
}

// findTiny sets the bits of the skip filter's tiny patterns, which the
// skip scan finds only where it verifies a window anyway.
func (a *automaton) findTiny(data []byte, tailFrom int, all, tail []uint64, found []int32) []int32 {
	for _, id := range a.skip.tiny {
		p := a.pats[id]
		w, bit := id>>6, uint64(1)<<(uint(id)&63)
		if tail[w]&bit != 0 {
			continue // and so in all
		}
		i := bytes.Index(data, p)
		if i < 0 {
			continue
		}
		if all[w]&bit == 0 {
			all[w] |= bit
			found = append(found, id)
		}
		if i >= tailFrom || bytes.Contains(data[tailFrom:], p) {
			tail[w] |= bit
		}
	}
	return found
}

// hopeless reports whether a scan that has done used units of work (see
// skipBudget) over covered bytes is far over the estimate for random
// bytes: then the data is not what the skip suits (text made of the
// patterns' bytes), and giving up early saves most of the budget.
func (f *skipFilter) hopeless(used, covered int) bool {
	return used*1024 > f.perKiB*covered+16*1024
}

// skipLane is one scan over the window ends [p, end), after the scan
// covered bytes with a budget of start at first. It returns the bytes it
// moved over.
func (a *automaton) skipLane(data []byte, p, end, tailFrom int, all, tail []uint64, found []int32, budget int,
	early bool, start, covered int) ([]int32, int, int, bool) {
	shift := a.skip.shift
	from := p
	end = min(end, len(data))
	for p < end {
		s := shift[uint16(data[p-1])|uint16(data[p])<<8]
		if budget--; s != 0 && budget >= 0 {
			p += int(s)
			continue
		}
		var steps int
		found, steps = a.descend(data, p+1-a.skip.m, tailFrom, all, tail, found)
		if budget -= 1 + steps; budget < 0 || early && a.skip.hopeless(start-budget, covered+p-from) {
			return found, budget, 0, false
		}
		p++
	}
	return found, budget, max(end-from, 0), true
}

// descend walks the trie from the root over data[start:] and records every
// pattern that occurs at start. It returns the number of steps taken.
func (a *automaton) descend(data []byte, start, tailFrom int, all, tail []uint64, found []int32) ([]int32, int) {
	levels := a.skip.levels
	s := int32(0)
	i := start
	for ; i < len(data); i++ {
		c := a.class[data[i]]
		d := i - start + 1 // the depth of a goto edge's target
		if d >= len(levels)-1 {
			break // no pattern is longer
		}
		if s < a.ndense {
			s = a.dense[s*a.nclass+int32(c)] >> 1
			if s < levels[d] || s >= levels[d+1] {
				break
			}
		} else if s = a.edge(s, c); s < 0 {
			break
		}
		for _, id := range a.outs[a.outStart[s]:a.outStart[s+1]] {
			w, bit := id>>6, uint64(1)<<(uint(id)&63)
			if tail[w]&bit != 0 || (start < tailFrom && all[w]&bit != 0) {
				continue // nothing new to learn from this occurrence
			}
			if !a.nocase[id] && !bytes.Equal(data[start:i+1], a.pats[id]) {
				continue
			}
			if all[w]&bit == 0 {
				all[w] |= bit
				found = append(found, id)
			}
			if start >= tailFrom {
				tail[w] |= bit
			}
		}
	}
	return found, i - start
}

// edge returns the trie child of sparse state s on class c, or -1.
func (a *automaton) edge(s int32, c uint8) int32 {
	i := s - a.ndense
	lo, hi := a.edgeStart[i], a.edgeStart[i+1]
	for k, l := range a.label[lo:hi] {
		if l == c {
			return a.to[lo+int32(k)] >> 1
		}
	}
	return -1
}
