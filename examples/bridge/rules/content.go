package rules

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
