package rules

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ParseError is a syntax or semantic error in one rule. Msg says what was
// expected and what was found instead.
type ParseError struct {
	// File is the name given to Parse, or the path given to ParseFile.
	File string
	// Line is 1-based.
	Line int
	// Col is the 1-based byte offset in the line of the offending text.
	Col int
	// Msg describes the problem, without the position.
	Msg string
}

// Error returns "FILE:LINE:COL: MSG", the form editors and compilers use.
func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ErrorList is every ParseError found in one input, in line order. Parsing
// goes on after a bad rule so that one run reports all of them.
// errors.As(err, &pe) with pe a *ParseError finds the first.
type ErrorList []*ParseError

// Error returns the first error, followed by how many more there are.
func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	if len(l) == 2 {
		return l[0].Error() + " (and 1 more error)"
	}
	return fmt.Sprintf("%s (and %d more errors)", l[0], len(l)-1)
}

// Unwrap returns the errors for errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// ParseFile reads the rules in the file at path. See [Parse].
func ParseFile(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads rules from r, one per line, and compiles them into a Set. file
// names the input in errors. If any rule is invalid, Parse returns a nil Set
// and an [ErrorList] holding a [*ParseError] for each invalid rule. An error
// reading r is returned wrapped, so errors.Is sees it.
func Parse(r io.Reader, file string) (*Set, error) {
	br := bufio.NewReader(r)
	var (
		rules []*Rule
		errs  ErrorList
		sids  = make(map[uint32]int)
	)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("rules: reading %s: %w", file, err)
		}
		if line == "" && err != nil {
			break
		}
		line = strings.TrimSuffix(line, "\n")
		line = strings.TrimSuffix(line, "\r")
		if lineNo == 1 {
			// Editors on Windows like to start files with a byte order mark.
			line = strings.TrimPrefix(line, "\ufeff")
		}
		p := parser{file: file, line: lineNo, s: line}
		rule, perr := p.rule()
		switch {
		case perr != nil:
			errs = append(errs, perr)
		case rule == nil:
			// Blank or comment.
		default:
			if first, dup := sids[rule.SID]; dup {
				errs = append(errs, p.errorf(p.sidPos, "duplicate sid %d (first used on line %d)", rule.SID, first))
				break
			}
			sids[rule.SID] = lineNo
			rules = append(rules, rule)
		}
		if err != nil {
			break
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	set, err := compile(rules)
	if err != nil {
		return nil, fmt.Errorf("rules: compiling %s: %w", file, err)
	}
	return set, nil
}

// parser reads one line. Every method leaves pos after what it consumed.
type parser struct {
	file   string
	line   int
	s      string
	pos    int
	sidPos int
}

func (p *parser) errorf(pos int, format string, args ...any) *ParseError {
	return &ParseError{File: p.file, Line: p.line, Col: pos + 1, Msg: fmt.Sprintf(format, args...)}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

func (p *parser) skipSpace() {
	for p.pos < len(p.s) && isSpace(p.s[p.pos]) {
		p.pos++
	}
}

func (p *parser) eol() bool { return p.pos >= len(p.s) }

// found describes the text at pos for an error message: the next
// whitespace-separated token, quoted and shortened, or "end of line".
func (p *parser) found(pos int) string {
	if pos >= len(p.s) {
		return "end of line"
	}
	end := pos
	for end < len(p.s) && !isSpace(p.s[end]) && end-pos < 32 {
		end++
	}
	if end == pos {
		end++
	}
	return strconv.Quote(p.s[pos:end])
}

// word reads a run of non-space bytes.
func (p *parser) word() string {
	start := p.pos
	for p.pos < len(p.s) && !isSpace(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// needSpace checks that a header field is followed by whitespace, so that
// "any->any" is reported where it goes wrong rather than as a bad token.
func (p *parser) needSpace(after string) *ParseError {
	if p.eol() {
		return p.errorf(p.pos, "expected %s after %s, found end of line", p.nextField(after), after)
	}
	if !isSpace(p.s[p.pos]) {
		return p.errorf(p.pos, "expected whitespace after %s, found %s", after, p.found(p.pos))
	}
	p.skipSpace()
	if p.eol() {
		return p.errorf(p.pos, "expected %s after %s, found end of line", p.nextField(after), after)
	}
	return nil
}

func (p *parser) nextField(after string) string {
	switch after {
	case "action":
		return "protocol"
	case "protocol":
		return "source address"
	case "source address":
		return "source port"
	case "source port":
		return `direction "->" or "<>"`
	case "direction":
		return "destination address"
	case "destination address":
		return "destination port"
	}
	return `"(" to open the rule options`
}

// rule parses one line. It returns nil, nil for a blank line or a comment.
func (p *parser) rule() (*Rule, *ParseError) {
	p.skipSpace()
	if p.eol() || p.s[p.pos] == '#' {
		return nil, nil
	}
	r := &Rule{File: p.file, Line: p.line}

	start := p.pos
	switch w := p.word(); strings.ToLower(w) {
	case "alert":
		r.Action = Alert
	case "drop":
		r.Action = Drop
	case "pass":
		r.Action = Pass
	case "reject":
		r.Action = Reject
	default:
		return nil, p.errorf(start, "expected action (alert, drop, pass or reject), found %q", w)
	}
	if err := p.needSpace("action"); err != nil {
		return nil, err
	}

	start = p.pos
	switch w := p.word(); strings.ToLower(w) {
	case "ip":
		r.Proto = ProtoIP
	case "tcp":
		r.Proto = ProtoTCP
	case "udp":
		r.Proto = ProtoUDP
	case "icmp":
		r.Proto = ProtoICMP
	case "icmpv6":
		r.Proto = ProtoICMPv6
	default:
		return nil, p.errorf(start, "expected protocol (ip, tcp, udp, icmp or icmpv6), found %q", w)
	}
	if err := p.needSpace("protocol"); err != nil {
		return nil, err
	}

	var err *ParseError
	if r.src, err = p.field(false, "source address"); err != nil {
		return nil, err
	}
	sportPos := p.pos
	if r.sport, err = p.field(true, "source port"); err != nil {
		return nil, err
	}

	start = p.pos
	switch w := p.word(); w {
	case "->":
	case "<>":
		r.bidir = true
	default:
		return nil, p.errorf(start, `expected "->" or "<>", found %q`, w)
	}
	if err := p.needSpace("direction"); err != nil {
		return nil, err
	}

	if r.dst, err = p.field(false, "destination address"); err != nil {
		return nil, err
	}
	dportPos := p.pos
	if r.dport, err = p.field(true, "destination port"); err != nil {
		return nil, err
	}
	if r.Proto == ProtoICMP || r.Proto == ProtoICMPv6 {
		// ICMP has no ports; a port here would make the rule never match.
		if !r.sport.any {
			return nil, p.errorf(sportPos, "%s rules have no ports: expected source port any", r.Proto)
		}
		if !r.dport.any {
			return nil, p.errorf(dportPos, "%s rules have no ports: expected destination port any", r.Proto)
		}
	}

	if err := p.options(r); err != nil {
		return nil, err
	}
	return r, nil
}

// field parses an address or port field and the whitespace after it.
func (p *parser) field(port bool, name string) (list, *ParseError) {
	it, err := p.item(port, name, 0)
	if err != nil {
		return list{}, err
	}
	var l list
	if it.sub != nil && !it.neg {
		l = *it.sub
	} else {
		l.items = []item{it}
	}
	l.finish()
	if name == "destination port" {
		// The options follow; "(" may come straight after the port.
		p.skipSpace()
		return l, nil
	}
	return l, p.needSpace(name)
}

// maxDepth bounds list nesting so that a hostile rule cannot exhaust the
// stack.
const maxDepth = 16

// item parses one list entry: [!](any | value | [item, ...]).
func (p *parser) item(port bool, name string, depth int) (item, *ParseError) {
	var it item
	if depth > maxDepth {
		return it, p.errorf(p.pos, "%s lists nested more than %d deep", name, maxDepth)
	}
	negPos := p.pos
	if p.pos < len(p.s) && p.s[p.pos] == '!' {
		it.neg = true
		p.pos++
		if p.pos < len(p.s) && p.s[p.pos] == '!' {
			return it, p.errorf(p.pos, "double negation in %s", name)
		}
	}
	if p.pos < len(p.s) && p.s[p.pos] == '[' {
		open := p.pos
		p.pos++
		sub := &list{}
		for {
			p.skipSpace()
			if p.pos < len(p.s) && p.s[p.pos] == ']' && len(sub.items) == 0 {
				return it, p.errorf(open, "empty %s list", name)
			}
			e, err := p.item(port, name, depth+1)
			if err != nil {
				return it, err
			}
			sub.items = append(sub.items, e)
			p.skipSpace()
			if p.eol() {
				return it, p.errorf(open, `unterminated %s list: expected "]"`, name)
			}
			c := p.s[p.pos]
			p.pos++
			if c == ']' {
				break
			}
			if c != ',' {
				return it, p.errorf(p.pos-1, `expected "," or "]" in %s list, found %s`, name, p.found(p.pos-1))
			}
		}
		sub.finish()
		it.sub = sub
		return it, nil
	}

	start := p.pos
	for p.pos < len(p.s) && !isSpace(p.s[p.pos]) && !strings.ContainsRune(",[]!()", rune(p.s[p.pos])) {
		p.pos++
	}
	tok := p.s[start:p.pos]
	if strings.EqualFold(tok, "any") {
		if it.neg {
			return it, p.errorf(negPos, "!any in %s matches nothing", name)
		}
		it.any = true
		return it, nil
	}
	if port {
		return it, p.portValue(&it, tok, start, name)
	}
	return it, p.addrValue(&it, tok, start, name)
}

func (p *parser) addrValue(it *item, tok string, start int, name string) *ParseError {
	if tok == "" {
		return p.errorf(start, "expected %s (IP address, CIDR, list or any), found %s", name, p.found(start))
	}
	if tok[0] == '$' {
		return p.errorf(start, "expected %s (IP address, CIDR, list or any), found variable %q: variables are not supported", name, tok)
	}
	if strings.Contains(tok, "/") {
		pfx, err := netip.ParsePrefix(tok)
		if err != nil {
			return p.errorf(start, "expected %s (IP address, CIDR, list or any), found %q", name, tok)
		}
		// Suricata accepts 10.1.2.3/8 and means 10.0.0.0/8.
		it.prefix = pfx.Masked()
		return nil
	}
	a, err := netip.ParseAddr(tok)
	if err != nil || a.Zone() != "" {
		return p.errorf(start, "expected %s (IP address, CIDR, list or any), found %q", name, tok)
	}
	it.prefix = netip.PrefixFrom(a, a.BitLen())
	return nil
}

func (p *parser) portValue(it *item, tok string, start int, name string) *ParseError {
	bad := func() *ParseError {
		if tok == "" {
			return p.errorf(start, "expected %s (number, range, list or any), found %s", name, p.found(start))
		}
		if tok[0] == '$' {
			return p.errorf(start, "expected %s (number, range, list or any), found variable %q: variables are not supported", name, tok)
		}
		return p.errorf(start, "expected %s (number, range, list or any), found %q", name, tok)
	}
	parsePort := func(s string) (uint16, bool) {
		if s == "" || len(s) > 5 {
			return 0, false
		}
		n := 0
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		if n > 65535 {
			return 0, false
		}
		return uint16(n), true
	}
	lo, hi, ok := tok, tok, true
	if i := strings.IndexByte(tok, ':'); i >= 0 {
		lo, hi = tok[:i], tok[i+1:]
		if lo == "" && hi == "" {
			return bad()
		}
		if lo == "" {
			lo = "0"
		}
		if hi == "" {
			hi = "65535"
		}
	}
	if it.lo, ok = parsePort(lo); !ok {
		return bad()
	}
	if it.hi, ok = parsePort(hi); !ok {
		return bad()
	}
	if it.lo > it.hi {
		return p.errorf(start, "%s range %q is empty: %d is greater than %d", name, tok, it.lo, it.hi)
	}
	return nil
}

// options parses "(key:value; key; ...)" and everything after it.
func (p *parser) options(r *Rule) *ParseError {
	open := p.pos
	if p.eol() || p.s[p.pos] != '(' {
		return p.errorf(p.pos, `expected "(" to open the rule options, found %s`, p.found(p.pos))
	}
	p.pos++
	var haveMsg, haveSID, haveRev, haveFlow, lastNocase, haveBypass bool
	for {
		p.skipSpace()
		if p.eol() {
			return p.errorf(p.pos, `expected ")" to close the rule options, found end of line`)
		}
		if p.s[p.pos] == ')' {
			p.pos++
			break
		}
		keyPos := p.pos
		for p.pos < len(p.s) && isKeyByte(p.s[p.pos]) {
			p.pos++
		}
		key := p.s[keyPos:p.pos]
		if key == "" {
			return p.errorf(keyPos, "expected option name, found %s", p.found(keyPos))
		}
		name := strings.ToLower(key)
		switch name {
		case "msg", "sid", "rev", "content", "nocase", "flow", "bypass":
		default:
			return p.errorf(keyPos, "unknown option %q (supported: msg, sid, rev, content, nocase, flow, bypass)", key)
		}
		p.skipSpace()
		hasValue := false
		switch {
		case p.eol():
			return p.errorf(p.pos, `expected ":" or ";" after option %q, found end of line`, key)
		case p.s[p.pos] == ':':
			hasValue = true
			p.pos++
			p.skipSpace()
		case p.s[p.pos] == ';':
		default:
			return p.errorf(p.pos, `expected ":" or ";" after option %q, found %s`, key, p.found(p.pos))
		}
		if name == "nocase" || name == "bypass" {
			if hasValue {
				return p.errorf(keyPos, "option %q takes no value", name)
			}
		} else if !hasValue {
			return p.errorf(keyPos, "option %q needs a value", key)
		}
		valPos := p.pos

		switch name {
		case "msg":
			if haveMsg {
				return p.errorf(keyPos, `duplicate option "msg"`)
			}
			haveMsg = true
			v, err := p.quoted(false, key)
			if err != nil {
				return err
			}
			r.Msg = string(v)
		case "content":
			if valPos < len(p.s) && p.s[valPos] == '!' {
				return p.errorf(valPos, "negated content is not supported")
			}
			v, err := p.quoted(true, key)
			if err != nil {
				return err
			}
			if len(v) == 0 {
				return p.errorf(valPos, "empty content")
			}
			r.contents = append(r.contents, content{pattern: v})
			lastNocase = false
		case "flow":
			if haveFlow {
				return p.errorf(keyPos, `duplicate option "flow"`)
			}
			haveFlow = true
			for p.pos < len(p.s) && p.s[p.pos] != ';' && p.s[p.pos] != ')' {
				p.pos++
			}
			f, err := parseFlow(p.s[valPos:p.pos])
			if err != nil {
				return p.errorf(valPos, "%v", err)
			}
			r.flow = f
		case "bypass":
			if haveBypass {
				return p.errorf(keyPos, `duplicate option "bypass"`)
			}
			if r.Action != Pass {
				return p.errorf(keyPos, `option "bypass" goes with pass rules only: a flow that alerts or drops stays inspected`)
			}
			haveBypass, r.Bypass = true, true
		case "nocase":
			if len(r.contents) == 0 {
				return p.errorf(keyPos, `option "nocase" must follow a content option`)
			}
			if lastNocase {
				return p.errorf(keyPos, `duplicate option "nocase" for the same content`)
			}
			r.contents[len(r.contents)-1].nocase = true
			lastNocase = true
		case "sid", "rev":
			if (name == "sid" && haveSID) || (name == "rev" && haveRev) {
				return p.errorf(keyPos, "duplicate option %q", name)
			}
			for p.pos < len(p.s) && p.s[p.pos] != ';' && p.s[p.pos] != ')' && !isSpace(p.s[p.pos]) {
				p.pos++
			}
			tok := p.s[valPos:p.pos]
			n, err := strconv.ParseUint(tok, 10, 32)
			if err != nil || (name == "sid" && n == 0) {
				what := "an integer from 1 to 4294967295"
				if name == "rev" {
					what = "an integer from 0 to 4294967295"
				}
				found := p.found(valPos)
				if tok != "" {
					found = strconv.Quote(tok)
				}
				return p.errorf(valPos, "expected %s to be %s, found %s", name, what, found)
			}
			if name == "sid" {
				haveSID = true
				r.SID = uint32(n)
				p.sidPos = valPos
			} else {
				haveRev = true
				r.Rev = uint32(n)
			}
		}

		p.skipSpace()
		if p.eol() || p.s[p.pos] != ';' {
			return p.errorf(p.pos, `expected ";" after option %q, found %s`, key, p.found(p.pos))
		}
		p.pos++
	}
	p.skipSpace()
	if !p.eol() {
		return p.errorf(p.pos, `expected end of line after ")", found %s`, p.found(p.pos))
	}
	if !haveSID {
		return p.errorf(open, `missing required option "sid"`)
	}
	return nil
}

func isKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// quoted parses a double-quoted option value at pos. Inside it, \" \; and \\
// are the only escapes and ";" must be escaped, as Suricata requires, so a
// rule accepted here is accepted there. With hex set (content), |..| holds
// hex bytes separated by optional spaces.
func (p *parser) quoted(hex bool, key string) ([]byte, *ParseError) {
	if p.eol() || p.s[p.pos] != '"' {
		return nil, p.errorf(p.pos, `expected quoted string after "%s:", found %s`, key, p.found(p.pos))
	}
	open := p.pos
	p.pos++
	var out []byte
	hexOpen := -1
	for {
		if p.eol() {
			if hexOpen >= 0 {
				return nil, p.errorf(hexOpen, `unterminated hex section: expected "|"`)
			}
			return nil, p.errorf(open, `unterminated quoted string: expected "\""`)
		}
		c := p.s[p.pos]
		if hexOpen >= 0 {
			switch {
			case c == '|':
				if p.pos == hexOpen+1 {
					return nil, p.errorf(hexOpen, "empty hex section")
				}
				hexOpen = -1
				p.pos++
			case isSpace(c):
				p.pos++
			case c == '"':
				return nil, p.errorf(hexOpen, `unterminated hex section: expected "|"`)
			case unhex(c) >= 0:
				if p.pos+1 >= len(p.s) || unhex(p.s[p.pos+1]) < 0 {
					return nil, p.errorf(p.pos, "expected two hex digits per byte in hex section, found %q", p.s[p.pos:min(p.pos+2, len(p.s))])
				}
				out = append(out, byte(unhex(c)<<4|unhex(p.s[p.pos+1])))
				p.pos += 2
			default:
				return nil, p.errorf(p.pos, "expected hex digit in hex section, found %q", string(c))
			}
			continue
		}
		switch c {
		case '"':
			p.pos++
			if out == nil {
				out = []byte{}
			}
			return out, nil
		case ';':
			return nil, p.errorf(p.pos, `unescaped ";" in quoted string: write \;`)
		case '\\':
			if p.pos+1 >= len(p.s) {
				return nil, p.errorf(open, `unterminated quoted string: expected "\""`)
			}
			switch e := p.s[p.pos+1]; e {
			case '"', ';', '\\':
				out = append(out, e)
				p.pos += 2
			default:
				return nil, p.errorf(p.pos, `invalid escape %q: only \", \; and \\ are allowed`, p.s[p.pos:p.pos+2])
			}
		case '|':
			if hex {
				hexOpen = p.pos
				p.pos++
				continue
			}
			out = append(out, c)
			p.pos++
		default:
			out = append(out, c)
			p.pos++
		}
	}
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
