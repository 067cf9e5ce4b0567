package pcapfilter

import (
	"net/netip"
	"strings"
)

// maxNesting bounds bracket depth, and with it the parser's recursion and backtracking.
const maxNesting = 100

type tokKind uint8

const (
	tEOF    tokKind = iota
	tWord           // keyword, number, address or (refused) host name
	tEscape         // \name: a protocol name where a keyword would not do (proto \tcp)
	tPunct          // operator or bracket
)

type token struct {
	kind tokKind
	text string
	col  int // 1-based column of the first byte
}

func (t token) is(s string) bool { return t.kind != tEOF && t.kind != tEscape && t.text == s }

func (t token) String() string {
	if t.kind == tEOF {
		return "end of expression"
	}
	return `"` + t.text + `"`
}

// lex splits expr into tokens. Like libpcap's scanner, a word runs over letters, digits and
// '_', '.', '-' and ':', so "tcp-syn", "1000-2000", "198.18.0.1" and "2001:2::1" are one token
// each; a ':' that does not make the word an IPv6 or MAC address ends it, so "ip[2:2]" slices.
func lex(expr string) ([]token, error) {
	var toks []token
	i, depth := 0, 0
	for i < len(expr) {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case isWordStart(c) || (c == ':' && strings.HasPrefix(expr[i:], "::")):
			j := i
			for j < len(expr) && isWordChar(expr[j]) {
				j++
			}
			w := expr[i:j]
			if k := strings.IndexByte(w, ':'); k >= 0 && !isColonAddr(w) {
				w = w[:k]
			}
			if w == "" { // "::" that is no address: the slice colon
				toks = append(toks, token{tPunct, ":", i + 1})
				i++
				continue
			}
			toks = append(toks, token{tWord, w, i + 1})
			i += len(w)
		case c == '\\':
			j := i + 1
			for j < len(expr) && isWordChar(expr[j]) && expr[j] != ':' {
				j++
			}
			if j == i+1 {
				return nil, errorf(ErrSyntax, i+1, `expected a protocol name after "\"`)
			}
			toks = append(toks, token{tEscape, expr[i+1 : j], i + 1})
			i = j
		default:
			op := ""
			for _, p := range []string{"&&", "||", "==", "!=", "<=", ">=", "<<", ">>"} {
				if strings.HasPrefix(expr[i:], p) {
					op = p
					break
				}
			}
			if op == "" && strings.IndexByte("()[]:+-*/%&|^!=<>", c) >= 0 {
				op = string(c)
			}
			if op == "" {
				return nil, errorf(ErrSyntax, i+1, "unexpected character %q", c)
			}
			switch op {
			case "(", "[":
				if depth++; depth > maxNesting {
					return nil, errorf(ErrTooComplex, i+1, "brackets nested more than %d deep", maxNesting)
				}
			case ")", "]":
				depth--
			}
			toks = append(toks, token{tPunct, op, i + 1})
			i += len(op)
		}
	}
	return append(toks, token{tEOF, "", len(expr) + 1}), nil
}

func isWordStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isWordChar(c byte) bool { return isWordStart(c) || c == '.' || c == '-' || c == ':' }

// isColonAddr reports whether w is an IPv6 address or a colon-separated MAC address.
func isColonAddr(w string) bool {
	if _, ok := parseMAC(w); ok {
		return true
	}
	a, err := netip.ParseAddr(w)
	return err == nil && a.Is6() && a.Zone() == ""
}

// parseMAC reads xx:xx:xx:xx:xx:xx, xx-xx-xx-xx-xx-xx or xxxx.xxxx.xxxx (one-digit groups are
// allowed in the first two forms, as libpcap allows them).
func parseMAC(w string) ([6]byte, bool) {
	var mac [6]byte
	var parts []string
	for _, sep := range []string{":", "-"} {
		if p := strings.Split(w, sep); len(p) == 6 {
			parts = p
			break
		}
	}
	if parts != nil {
		for i, p := range parts {
			v, ok := hexVal(p, 2)
			if !ok {
				return mac, false
			}
			mac[i] = byte(v)
		}
		return mac, true
	}
	if p := strings.Split(w, "."); len(p) == 3 {
		for i, g := range p {
			if len(g) != 4 {
				return mac, false
			}
			v, ok := hexVal(g, 4)
			if !ok {
				return mac, false
			}
			mac[2*i], mac[2*i+1] = byte(v>>8), byte(v)
		}
		return mac, true
	}
	return mac, false
}

func hexVal(s string, max int) (uint32, bool) {
	if s == "" || len(s) > max {
		return 0, false
	}
	var v uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint32(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// parseNum reads a number as libpcap does: 0x… hexadecimal, 0… octal, otherwise decimal,
// at most 32 bits.
func parseNum(s string) (uint32, bool, bool) { // value, is a number, fits in 32 bits
	base, digits := uint64(10), s
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	var v uint64
	fits := true
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false, false
		}
		if d >= base {
			return 0, false, false
		}
		v = v*base + d
		if v > 0xffffffff {
			fits = false
			v = 0xffffffff + 1 // keep scanning digits without overflowing
		}
	}
	return uint32(v), true, fits
}
