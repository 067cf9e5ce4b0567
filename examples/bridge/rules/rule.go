package rules

import (
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one parsed rule. Its exported fields are what a caller needs to log
// a match; the header and contents stay unexported because a [Set] compiles
// them into its matcher, and changing them afterwards would not be seen.
type Rule struct {
	// Action is the rule's action keyword.
	Action Action
	// Proto is the rule's protocol keyword.
	Proto Proto
	// SID is the signature id, unique within a Set.
	SID uint32
	// Rev is the revision from rev:N, or 0 when the rule has none.
	Rev uint32
	// Msg is the text of msg:"...", unescaped, or "" when the rule has none.
	Msg string
	// Bypass is set by the bypass option (pass rules only): as in Suricata, the frames the
	// rule passes hand their flow to the kernel fast path, and inspection of it stops.
	Bypass bool
	// File and Line say where the rule was read, for log messages.
	File string
	Line int

	src, dst     list
	sport, dport list
	bidir        bool
	contents     []content
	flow         Flow // the flow option's requirement, 0 without one
	// patterns are the Set's pattern ids for contents and groups the
	// protocol groups the rule applies to, both filled in by compile.
	patterns []int32
	groups   uint8
}

// content is one content option: the bytes to find and whether case is
// ignored (ASCII letters only, as in Suricata).
type content struct {
	pattern []byte
	nocase  bool
}

// usesIPPayload reports whether the rule's contents are searched in the whole
// IP payload rather than the TCP or UDP payload.
func (r *Rule) usesIPPayload() bool {
	return r.Proto == ProtoIP || r.Proto == ProtoICMP || r.Proto == ProtoICMPv6
}

// String returns the rule in a canonical form: keywords in lower case,
// single spaces, ranges written out (1024: as 1024:65535), one-item lists
// without brackets, content bytes that are not printable ASCII in hex, and
// options in the order msg, content (with nocase), flow, bypass, sid, rev. Parsing it gives
// a rule that matches the same packets and prints the same.
func (r *Rule) String() string {
	var b strings.Builder
	b.WriteString(r.Action.String())
	b.WriteByte(' ')
	b.WriteString(r.Proto.String())
	b.WriteByte(' ')
	r.src.format(&b, false)
	b.WriteByte(' ')
	r.sport.format(&b, true)
	if r.bidir {
		b.WriteString(" <> ")
	} else {
		b.WriteString(" -> ")
	}
	r.dst.format(&b, false)
	b.WriteByte(' ')
	r.dport.format(&b, true)
	b.WriteString(" (")
	if r.Msg != "" {
		b.WriteString(`msg:"`)
		writeEscaped(&b, []byte(r.Msg), false)
		b.WriteString(`"; `)
	}
	for _, c := range r.contents {
		b.WriteString(`content:"`)
		writeEscaped(&b, c.pattern, true)
		b.WriteString(`"; `)
		if c.nocase {
			b.WriteString("nocase; ")
		}
	}
	if r.flow != 0 {
		b.WriteString("flow:")
		b.WriteString(r.flow.String())
		b.WriteString("; ")
	}
	if r.Bypass {
		b.WriteString("bypass; ")
	}
	b.WriteString("sid:")
	b.WriteString(strconv.FormatUint(uint64(r.SID), 10))
	b.WriteByte(';')
	if r.Rev != 0 {
		b.WriteString(" rev:")
		b.WriteString(strconv.FormatUint(uint64(r.Rev), 10))
		b.WriteByte(';')
	}
	b.WriteByte(')')
	return b.String()
}

// writeEscaped writes s as the inside of a quoted option value. With hex set,
// bytes that cannot appear literally go into |..| sections; without it (msg)
// they are written as they are, since msg has no hex syntax.
func writeEscaped(b *strings.Builder, s []byte, hex bool) {
	const digits = "0123456789ABCDEF"
	inHex := false
	for _, c := range s {
		literal := c >= 0x20 && c < 0x7f && c != '|'
		if !hex {
			literal = true
		}
		if !literal {
			if !inHex {
				b.WriteByte('|')
				inHex = true
			} else {
				b.WriteByte(' ')
			}
			b.WriteByte(digits[c>>4])
			b.WriteByte(digits[c&0xf])
			continue
		}
		if inHex {
			b.WriteByte('|')
			inHex = false
		}
		if c == '"' || c == ';' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	if inHex {
		b.WriteByte('|')
	}
}

// list is an address or port field: any, a single value, a range, a
// bracketed list, or a negation of any of these. A field that is not a list
// in the rule is a list of one item.
//
// A list matches a value when at least one non-negated item matches it (or
// there is none) and no negated item does, so [10.0.0.0/8,!10.0.0.1] is the
// /8 without one host and [!10.0.0.1] is everything but that host, as in
// Suricata.
type list struct {
	items  []item
	hasPos bool
	// any is set for the plain keyword any, so matching can skip the list.
	any bool
}

// item is one entry of a list. Exactly one of any, sub, or the leaf value is
// meaningful: prefix for address lists, lo and hi for port lists.
type item struct {
	neg    bool
	any    bool
	sub    *list
	prefix netip.Prefix
	lo, hi uint16
}

func (l *list) finish() {
	l.hasPos = false
	for i := range l.items {
		if !l.items[i].neg {
			l.hasPos = true
		}
	}
	l.any = len(l.items) == 1 && l.items[0].any && !l.items[0].neg
}

// containsAddr reports whether the address list matches a.
func (l *list) containsAddr(a netip.Addr) bool {
	if l.any {
		return true
	}
	matched := !l.hasPos
	for i := range l.items {
		it := &l.items[i]
		var in bool
		switch {
		case it.any:
			in = true
		case it.sub != nil:
			in = it.sub.containsAddr(a)
		default:
			in = it.prefix.Contains(a)
		}
		if it.neg {
			if in {
				return false
			}
		} else if in {
			matched = true
		}
	}
	return matched
}

// containsPort reports whether the port list matches p.
func (l *list) containsPort(p uint16) bool {
	if l.any {
		return true
	}
	matched := !l.hasPos
	for i := range l.items {
		it := &l.items[i]
		var in bool
		switch {
		case it.any:
			in = true
		case it.sub != nil:
			in = it.sub.containsPort(p)
		default:
			in = it.lo <= p && p <= it.hi
		}
		if it.neg {
			if in {
				return false
			}
		} else if in {
			matched = true
		}
	}
	return matched
}

// format writes the list in rule syntax. A list of one item is written
// without brackets: [x] and x mean the same.
func (l *list) format(b *strings.Builder, port bool) {
	if len(l.items) == 1 {
		l.items[0].format(b, port)
		return
	}
	l.formatBracketed(b, port)
}

func (l *list) formatBracketed(b *strings.Builder, port bool) {
	b.WriteByte('[')
	for i := range l.items {
		if i > 0 {
			b.WriteByte(',')
		}
		l.items[i].format(b, port)
	}
	b.WriteByte(']')
}

// startsWithNot reports whether format writes the list starting with "!".
func (l *list) startsWithNot() bool {
	if len(l.items) != 1 {
		return false
	}
	it := &l.items[0]
	return it.neg || (it.sub != nil && it.sub.startsWithNot())
}

func (it *item) format(b *strings.Builder, port bool) {
	if it.neg {
		b.WriteByte('!')
	}
	switch {
	case it.any:
		b.WriteString("any")
	case it.sub != nil && it.neg && it.sub.startsWithNot():
		// ![!x] must keep its brackets: !!x does not parse.
		it.sub.formatBracketed(b, port)
	case it.sub != nil:
		it.sub.format(b, port)
	case port:
		b.WriteString(strconv.Itoa(int(it.lo)))
		if it.lo != it.hi {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(int(it.hi)))
		}
	case it.prefix.IsSingleIP():
		b.WriteString(it.prefix.Addr().String())
	default:
		b.WriteString(it.prefix.String())
	}
}
