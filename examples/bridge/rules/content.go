package rules

import "bytes"

// LongestContent returns the length of the longest content pattern of the Set's rules, or 0 when
// no rule has content. A stream inspector that hands Match the last LongestContent()-1 bytes
// before each segment's new ones finds every pattern split across segments.
func (s *Set) LongestContent() int {
	n := 0
	for _, r := range s.rules {
		for _, c := range r.contents {
			n = max(n, len(c.pattern))
		}
	}
	return n
}

// HasContent reports whether the rule has a content option: whether its match depends on the
// payload at all.
func (r *Rule) HasContent() bool { return len(r.contents) > 0 }

// NewIn reports whether one of the rule's contents occurs in payload ending at or after offset
// from: whether a match in a stream view (bytes already inspected, then new ones from from on)
// involves new bytes. A rule without content is always new.
func (r *Rule) NewIn(payload []byte, from int) bool {
	if len(r.contents) == 0 {
		return true
	}
	for _, c := range r.contents {
		region := payload[max(0, min(from, len(payload))-len(c.pattern)+1):]
		if indexContent(region, c) >= 0 {
			return true
		}
	}
	return false
}

// indexContent is the index of c in b, or -1; nocase folds ASCII letters only, as Match does.
func indexContent(b []byte, c content) int {
	if !c.nocase {
		return bytes.Index(b, c.pattern)
	}
	for i := 0; i+len(c.pattern) <= len(b); i++ {
		j := 0
		for j < len(c.pattern) && foldASCII(b[i+j]) == foldASCII(c.pattern[j]) {
			j++
		}
		if j == len(c.pattern) {
			return i
		}
	}
	return -1
}

// foldASCII lowers an ASCII letter (its own copy: the automaton's may change).
func foldASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
