// Package bitnames prints a bit set as the names of its set bits, for the String methods of
// afbridge's flag types.
package bitnames

import "strings"

// Join returns the names of the bits set in bits, names[i] standing for bit i, joined by "|";
// "none" when no named bit is set. Bits beyond names are ignored.
func Join(bits uint64, names ...string) string {
	var b strings.Builder
	for i, n := range names {
		if bits&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
