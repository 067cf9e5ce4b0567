package rules

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseOne(t *testing.T, text string) *Rule {
	t.Helper()
	s, err := Parse(strings.NewReader(text), "test.rules")
	require.NoError(t, err)
	require.Equal(t, 1, s.Len())
	return s.Rules()[0]
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // canonical String(); "" means the input itself
	}{
		{name: "minimal", in: `alert tcp any any -> any any (sid:1;)`},
		{name: "drop", in: `drop udp any any -> any any (sid:1;)`},
		{name: "pass", in: `pass icmp any any -> any any (sid:1;)`},
		{name: "reject", in: `reject icmpv6 any any -> any any (sid:1;)`},
		{name: "ip", in: `alert ip any any -> any any (sid:1;)`},
		{name: "msg sid rev", in: `alert tcp any any -> any any (msg:"hello world"; sid:42; rev:3;)`},
		{name: "ipv4", in: `alert tcp 10.0.0.1 any -> 192.168.1.1 any (sid:1;)`},
		{name: "ipv6", in: `alert tcp 2001:db8::1 any -> fe80::1 any (sid:1;)`},
		{name: "cidr", in: `alert tcp 10.0.0.0/8 any -> 2001:db8::/32 any (sid:1;)`},
		{name: "cidr masked", in: `alert tcp 10.1.2.3/8 any -> any any (sid:1;)`,
			want: `alert tcp 10.0.0.0/8 any -> any any (sid:1;)`},
		{name: "address list", in: `alert tcp [10.0.0.0/8, 192.168.1.1] any -> any any (sid:1;)`,
			want: `alert tcp [10.0.0.0/8,192.168.1.1] any -> any any (sid:1;)`},
		{name: "nested list", in: `alert tcp [10.0.0.0/8,[!10.1.0.0/16,10.1.2.3]] any -> any any (sid:1;)`},
		{name: "single item list", in: `alert tcp [10.0.0.1] any -> any any (sid:1;)`,
			want: `alert tcp 10.0.0.1 any -> any any (sid:1;)`},
		{name: "negated address", in: `alert tcp !10.0.0.1 any -> any any (sid:1;)`},
		{name: "negated list", in: `alert tcp ![10.0.0.1,10.0.0.2] any -> any any (sid:1;)`},
		{name: "negation inside list", in: `alert tcp [10.0.0.0/8,!10.0.0.1] any -> any any (sid:1;)`},
		{name: "any in list", in: `alert tcp [any,!10.0.0.1] any -> any any (sid:1;)`},
		{name: "port", in: `alert tcp any 80 -> any 443 (sid:1;)`},
		{name: "port range", in: `alert tcp any 1000:2000 -> any any (sid:1;)`},
		{name: "open high range", in: `alert tcp any 1024: -> any any (sid:1;)`,
			want: `alert tcp any 1024:65535 -> any any (sid:1;)`},
		{name: "open low range", in: `alert tcp any :1023 -> any any (sid:1;)`,
			want: `alert tcp any 0:1023 -> any any (sid:1;)`},
		{name: "port list", in: `alert tcp any any -> any [80,443,1000:2000] (sid:1;)`},
		{name: "negated port", in: `alert tcp any !80 -> any any (sid:1;)`},
		{name: "negated port list", in: `alert tcp any any -> any ![80,443] (sid:1;)`},
		{name: "negated list of a negation", in: `alert tcp ![[!10.0.0.1]] any -> any ![!80] (sid:1;)`,
			want: `alert tcp ![!10.0.0.1] any -> any ![!80] (sid:1;)`},
		{name: "nested port list", in: `alert tcp any any -> any [1:1024,![22,[23,25]]] (sid:1;)`},
		{name: "bidirectional", in: `alert tcp any any <> any any (sid:1;)`},
		{name: "content", in: `alert tcp any any -> any any (content:"GET"; sid:1;)`},
		{name: "content hex", in: `alert tcp any any -> any any (content:"|41 42 0d 0a|"; sid:1;)`,
			want: `alert tcp any any -> any any (content:"AB|0D 0A|"; sid:1;)`},
		{name: "content hex without spaces", in: `alert tcp any any -> any any (content:"x|0d0a|y"; sid:1;)`,
			want: `alert tcp any any -> any any (content:"x|0D 0A|y"; sid:1;)`},
		{name: "content pipe byte", in: `alert tcp any any -> any any (content:"a|7c|b"; sid:1;)`,
			want: `alert tcp any any -> any any (content:"a|7C|b"; sid:1;)`},
		{name: "content escapes", in: `alert tcp any any -> any any (content:"a\"b\;c\\d"; sid:1;)`},
		{name: "bypass", in: `pass tcp any any -> any 443 (msg:"tls"; flow:established; bypass; sid:1;)`},
		{name: "bypass anywhere", in: `pass tcp any any -> any 443 (BYPASS; sid:1; flow:established;)`,
			want: `pass tcp any any -> any 443 (flow:established; bypass; sid:1;)`},
		{name: "content nocase", in: `alert tcp any any -> any any (content:"GET"; nocase; sid:1;)`},
		{name: "several contents", in: `alert tcp any any -> any any (content:"a"; content:"b"; nocase; content:"c"; sid:1;)`},
		{name: "msg with pipe", in: `alert tcp any any -> any any (msg:"a|b \" \; \\"; sid:1;)`},
		{name: "option order", in: `alert tcp any any -> any any (sid:7; rev:2; content:"x"; msg:"m";)`,
			want: `alert tcp any any -> any any (msg:"m"; content:"x"; sid:7; rev:2;)`},
		{name: "whitespace", in: "  alert\ttcp  any\tany  ->  any  any\t( msg : \"m\" ;sid : 5 ;  rev:1 ; )  \r",
			want: `alert tcp any any -> any any (msg:"m"; sid:5; rev:1;)`},
		{name: "no space before options", in: `alert tcp any any -> any 80(sid:1;)`,
			want: `alert tcp any any -> any 80 (sid:1;)`},
		{name: "keywords ignore case", in: `ALERT TCP ANY Any -> any any (SID:1; Content:"x"; NOCASE;)`,
			want: `alert tcp any any -> any any (content:"x"; nocase; sid:1;)`},
		{name: "max sid", in: `alert tcp any any -> any any (sid:4294967295;)`},
		{name: "rev zero", in: `alert tcp any any -> any any (sid:1; rev:0;)`,
			want: `alert tcp any any -> any any (sid:1;)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := parseOne(t, tt.in)
			want := tt.want
			if want == "" {
				want = tt.in
			}
			assert.Equal(t, want, r.String())
			// The canonical form parses to itself.
			assert.Equal(t, want, parseOne(t, r.String()).String())
		})
	}
}

func TestParseFields(t *testing.T) {
	r := parseOne(t, `reject udp [10.0.0.0/8,!10.0.0.1] ![53,123] <> 2001:db8::/32 1000: (msg:"a \"b\""; content:"x|00|Y"; nocase; content:"z"; sid:9; rev:4;)`)
	assert.Equal(t, Reject, r.Action)
	assert.Equal(t, ProtoUDP, r.Proto)
	assert.Equal(t, uint32(9), r.SID)
	assert.Equal(t, uint32(4), r.Rev)
	assert.Equal(t, `a "b"`, r.Msg)
	assert.Equal(t, "test.rules", r.File)
	assert.Equal(t, 1, r.Line)
	assert.True(t, r.bidir)
	require.Len(t, r.contents, 2)
	assert.Equal(t, content{pattern: []byte("x\x00Y"), nocase: true}, r.contents[0])
	assert.Equal(t, content{pattern: []byte("z")}, r.contents[1])
	assert.False(t, r.Bypass)
	assert.True(t, parseOne(t, `pass ip any any -> any any (bypass; sid:1;)`).Bypass)

	addr := netip.MustParseAddr
	assert.True(t, r.src.containsAddr(addr("10.1.2.3")))
	assert.False(t, r.src.containsAddr(addr("10.0.0.1")))
	assert.False(t, r.src.containsAddr(addr("11.0.0.1")))
	assert.True(t, r.dst.containsAddr(addr("2001:db8::5")))
	assert.False(t, r.dst.containsAddr(addr("2001:db9::5")))
	assert.True(t, r.sport.containsPort(80))
	assert.False(t, r.sport.containsPort(53))
	assert.False(t, r.sport.containsPort(123))
	assert.True(t, r.dport.containsPort(1000))
	assert.True(t, r.dport.containsPort(65535))
	assert.False(t, r.dport.containsPort(999))
}

func TestParseFileSkipsCommentsAndBlankLines(t *testing.T) {
	text := "# a comment\n\n   \n\t# indented comment\n" +
		"alert tcp any any -> any any (sid:1;)\r\n" +
		"\ufeff" + // not a BOM here: only the first line's is stripped
		"\n" +
		"drop udp any any -> any any (sid:2;)" // no final newline
	_, err := Parse(strings.NewReader(text), "x")
	require.Error(t, err, "a BOM in the middle is an invalid action")

	text = "\ufeff# rules with a byte order mark\n" + strings.ReplaceAll(text, "\ufeff", "")
	s, err := Parse(strings.NewReader(text), "x")
	require.NoError(t, err)
	require.Equal(t, 2, s.Len())
	assert.Equal(t, 6, s.Rules()[0].Line)
	assert.Equal(t, uint32(2), s.Rules()[1].SID)
	assert.Equal(t, 8, s.Rules()[1].Line)
}

func TestParseEmpty(t *testing.T) {
	s, err := Parse(strings.NewReader(""), "empty")
	require.NoError(t, err)
	assert.Equal(t, 0, s.Len())
	var r Result
	assert.Equal(t, NoMatch, s.Match(tcp4("10.0.0.1", "10.0.0.2", 1, 2, "x").build(), &r))
}

func TestParseErrors(t *testing.T) {
	const hdr = `alert tcp any any -> any any `
	tests := []struct {
		name string
		in   string
		col  int
		msg  string
	}{
		{"bad action", `dorp tcp any any -> any any (sid:1;)`, 1,
			`expected action (alert, drop, pass or reject), found "dorp"`},
		{"bad proto", `alert tcpx any any -> any any (sid:1;)`, 7,
			`expected protocol (ip, tcp, udp, icmp or icmpv6), found "tcpx"`},
		{"action only", `alert`, 6, `expected protocol after action, found end of line`},
		{"bad direction", `alert tcp any any => any any (sid:1;)`, 19,
			`expected "->" or "<>", found "=>"`},
		{"reverse direction", `alert tcp any any <- any any (sid:1;)`, 19,
			`expected "->" or "<>", found "<-"`},
		{"no spaces around arrow", `alert tcp any any->any any (sid:1;)`, 15,
			`expected source port (number, range, list or any), found "any->any"`},
		{"bad address", `alert tcp 1.2.3 any -> any any (sid:1;)`, 11,
			`expected source address (IP address, CIDR, list or any), found "1.2.3"`},
		{"bad cidr", `alert tcp any any -> 10.0.0.0/33 any (sid:1;)`, 22,
			`expected destination address (IP address, CIDR, list or any), found "10.0.0.0/33"`},
		{"zone", `alert tcp fe80::1%eth0 any -> any any (sid:1;)`, 11,
			`expected source address (IP address, CIDR, list or any), found "fe80::1%eth0"`},
		{"variable", `alert tcp $HOME_NET any -> any any (sid:1;)`, 11,
			`expected source address (IP address, CIDR, list or any), found variable "$HOME_NET": variables are not supported`},
		{"port variable", `alert tcp any $HTTP_PORTS -> any any (sid:1;)`, 15,
			`expected source port (number, range, list or any), found variable "$HTTP_PORTS": variables are not supported`},
		{"unclosed list", `alert tcp [1.1.1.1 any -> any any (sid:1;)`, 20,
			`expected "," or "]" in source address list, found "any"`},
		{"list at end of line", `alert tcp [1.1.1.1,`, 20,
			`expected source address (IP address, CIDR, list or any), found end of line`},
		{"empty list", `alert tcp [] any -> any any (sid:1;)`, 11, `empty source address list`},
		{"trailing comma", `alert tcp [1.1.1.1,] any -> any any (sid:1;)`, 20,
			`expected source address (IP address, CIDR, list or any), found "]"`},
		{"not any", `alert tcp !any any -> any any (sid:1;)`, 11, `!any in source address matches nothing`},
		{"double negation", `alert tcp !!1.1.1.1 any -> any any (sid:1;)`, 12, `double negation in source address`},
		{"junk after address", `alert tcp [1.1.1.1]x any -> any any (sid:1;)`, 20,
			`expected whitespace after source address, found "x"`},
		{"port too big", `alert tcp any 70000 -> any any (sid:1;)`, 15,
			`expected source port (number, range, list or any), found "70000"`},
		{"port not a number", `alert tcp any any -> any http (sid:1;)`, 26,
			`expected destination port (number, range, list or any), found "http"`},
		{"empty range", `alert tcp any 2000:1000 -> any any (sid:1;)`, 15,
			`source port range "2000:1000" is empty: 2000 is greater than 1000`},
		{"bare colon", `alert tcp any : -> any any (sid:1;)`, 15,
			`expected source port (number, range, list or any), found ":"`},
		{"three part range", `alert tcp any 1:2:3 -> any any (sid:1;)`, 15,
			`expected source port (number, range, list or any), found "1:2:3"`},
		{"negated port list unclosed", `alert tcp any any -> any ![80,443 (sid:1;)`, 35,
			`expected "," or "]" in destination port list, found "(sid:1;)"`},
		{"icmp with port", `alert icmp any 8 -> any any (sid:1;)`, 16,
			`icmp rules have no ports: expected source port any`},
		{"icmpv6 with port", `alert icmpv6 any any -> any 1 (sid:1;)`, 29,
			`icmpv6 rules have no ports: expected destination port any`},
		{"no options", `alert tcp any any -> any any`, 29,
			`expected "(" to open the rule options, found end of line`},
		{"options without paren", hdr + `sid:1;`, 30,
			`expected "(" to open the rule options, found "sid:1;"`},
		{"unclosed options", hdr + `(sid:1;`, 37,
			`expected ")" to close the rule options, found end of line`},
		{"missing semicolon", hdr + `(sid:1)`, 36,
			`expected ";" after option "sid", found ")"`},
		{"missing semicolon after string", hdr + `(msg:"x" sid:1;)`, 39,
			`expected ";" after option "msg", found "sid:1;)"`},
		{"junk after options", hdr + `(sid:1;) # comment`, 39,
			`expected end of line after ")", found "#"`},
		{"unknown option", hdr + `(msg:"x"; pcre:"/x/"; sid:1;)`, 40,
			`unknown option "pcre" (supported: msg, sid, rev, content, nocase, flow, bypass)`},
		{"unknown option without value", hdr + `(sid:1; fast_pattern;)`, 38,
			`unknown option "fast_pattern" (supported: msg, sid, rev, content, nocase, flow, bypass)`},
		{"option name missing", hdr + `(:1; sid:1;)`, 31, `expected option name, found ":1;"`},
		{"option without separator", hdr + `(sid 1;)`, 35,
			`expected ":" or ";" after option "sid", found "1;)"`},
		{"missing sid", hdr + `(msg:"x";)`, 30, `missing required option "sid"`},
		{"sid zero", hdr + `(sid:0;)`, 35, `expected sid to be an integer from 1 to 4294967295, found "0"`},
		{"sid negative", hdr + `(sid:-1;)`, 35, `expected sid to be an integer from 1 to 4294967295, found "-1"`},
		{"sid too big", hdr + `(sid:4294967296;)`, 35,
			`expected sid to be an integer from 1 to 4294967295, found "4294967296"`},
		{"sid quoted", hdr + `(sid:"1";)`, 35, `expected sid to be an integer from 1 to 4294967295, found "\"1\""`},
		{"sid without value", hdr + `(sid;)`, 31, `option "sid" needs a value`},
		{"rev not a number", hdr + `(sid:1; rev:x;)`, 42, `expected rev to be an integer from 0 to 4294967295, found "x"`},
		{"duplicate sid option", hdr + `(sid:1; sid:2;)`, 38, `duplicate option "sid"`},
		{"duplicate msg", hdr + `(msg:"a"; msg:"b"; sid:1;)`, 40, `duplicate option "msg"`},
		{"msg unquoted", hdr + `(msg:hello; sid:1;)`, 35, `expected quoted string after "msg:", found "hello;"`},
		{"content unquoted", hdr + `(content:abc; sid:1;)`, 39, `expected quoted string after "content:", found "abc;"`},
		{"content negated", hdr + `(content:!"abc"; sid:1;)`, 39, `negated content is not supported`},
		{"content empty", hdr + `(content:""; sid:1;)`, 39, `empty content`},
		{"unterminated string", hdr + `(content:"abc`, 39, `unterminated quoted string: expected "\""`},
		{"unescaped semicolon", hdr + `(content:"a;b"; sid:1;)`, 41, `unescaped ";" in quoted string: write \;`},
		{"bad escape", hdr + `(content:"a\nb"; sid:1;)`, 41, `invalid escape "\\n": only \", \; and \\ are allowed`},
		{"trailing backslash", hdr + `(content:"a\`, 39, `unterminated quoted string: expected "\""`},
		{"odd hex", hdr + `(content:"|414|"; sid:1;)`, 43, `expected two hex digits per byte in hex section, found "4|"`},
		{"split hex byte", hdr + `(content:"|4 1|"; sid:1;)`, 41, `expected two hex digits per byte in hex section, found "4 "`},
		{"bad hex digit", hdr + `(content:"|4g|"; sid:1;)`, 41, `expected two hex digits per byte in hex section, found "4g"`},
		{"non hex in section", hdr + `(content:"|zz|"; sid:1;)`, 41, `expected hex digit in hex section, found "z"`},
		{"unterminated hex", hdr + `(content:"|41"; sid:1;)`, 40, `unterminated hex section: expected "|"`},
		{"empty hex", hdr + `(content:"a||"; sid:1;)`, 41, `empty hex section`},
		{"nocase first", hdr + `(nocase; content:"a"; sid:1;)`, 31, `option "nocase" must follow a content option`},
		{"nocase twice", hdr + `(content:"a"; nocase; nocase; sid:1;)`, 52, `duplicate option "nocase" for the same content`},
		{"nocase value", hdr + `(content:"a"; nocase:1; sid:1;)`, 44, `option "nocase" takes no value`},
		{"bypass value", `pass tcp any any -> any any (bypass:1; sid:1;)`, 30, `option "bypass" takes no value`},
		{"bypass twice", `pass tcp any any -> any any (bypass; bypass; sid:1;)`, 38, `duplicate option "bypass"`},
		{"bypass on alert", `alert tcp any any -> any any (bypass; sid:1;)`, 31, `option "bypass" goes with pass rules only: a flow that alerts or drops stays inspected`},
		{"deep nesting", `alert tcp ` + strings.Repeat("[", 20) + `1.1.1.1` + strings.Repeat("]", 20) + ` any -> any any (sid:1;)`, 28,
			`source address lists nested more than 16 deep`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader("# first line\n"+tt.in+"\n"), "bad.rules")
			require.Error(t, err)
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "error %v is not a *ParseError", err)
			assert.Equal(t, "bad.rules", pe.File)
			assert.Equal(t, 2, pe.Line)
			assert.Equal(t, tt.col, pe.Col, "message: %s", pe.Msg)
			assert.Equal(t, tt.msg, pe.Msg)
			assert.Equal(t, "bad.rules:2:"+strconv.Itoa(tt.col)+": "+tt.msg, pe.Error())
		})
	}
}

func TestParseErrorList(t *testing.T) {
	text := strings.Join([]string{
		`alert tcp any any -> any any (sid:1;)`,
		`alert tcp any any -> any any (sid:1;)`,
		`bogus`,
		`alert tcp any any -> any any (sid:2;)`,
	}, "\n")
	s, err := Parse(strings.NewReader(text), "multi.rules")
	assert.Nil(t, s)
	var list ErrorList
	require.True(t, errors.As(err, &list))
	require.Len(t, list, 2)
	assert.Equal(t, &ParseError{File: "multi.rules", Line: 2, Col: 35, Msg: "duplicate sid 1 (first used on line 1)"}, list[0])
	assert.Equal(t, &ParseError{File: "multi.rules", Line: 3, Col: 1,
		Msg: `expected action (alert, drop, pass or reject), found "bogus"`}, list[1])
	assert.Equal(t, "multi.rules:2:35: duplicate sid 1 (first used on line 1) (and 1 more error)", err.Error())

	var pe *ParseError
	require.True(t, errors.As(err, &pe))
	assert.Equal(t, 2, pe.Line, "errors.As finds the first error")
}

type failingReader struct{}

var errDisk = errors.New("disk on fire")

func (failingReader) Read([]byte) (int, error) { return 0, errDisk }

func TestParseReadError(t *testing.T) {
	_, err := Parse(failingReader{}, "f")
	require.ErrorIs(t, err, errDisk)
	var pe *ParseError
	assert.False(t, errors.As(err, &pe))
}

func TestParseFile(t *testing.T) {
	s, err := ParseFile(filepath.Join("testdata", "example.rules"))
	require.NoError(t, err)
	require.NotZero(t, s.Len())
	for _, r := range s.Rules() {
		assert.Equal(t, filepath.Join("testdata", "example.rules"), r.File)
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.rules")
	require.NoError(t, os.WriteFile(bad, []byte("\nalert tcp any any -> any any (sid:1; foo;)\n"), 0o600))
	_, err = ParseFile(bad)
	var pe *ParseError
	require.True(t, errors.As(err, &pe))
	assert.Equal(t, bad+`:2:38: unknown option "foo" (supported: msg, sid, rev, content, nocase, flow, bypass)`, pe.Error())

	_, err = ParseFile(filepath.Join(dir, "missing.rules"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
