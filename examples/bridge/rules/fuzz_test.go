package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// parseSeeds are valid and invalid rules for FuzzParse; more live in
// testdata/fuzz/FuzzParse.
var parseSeeds = []string{
	`alert tcp any any -> any any (msg:"x"; sid:1;)`,
	`drop udp [10.0.0.0/8,!10.0.0.1] ![53,123] <> 2001:db8::/32 1000: (msg:"a \"b\""; content:"x|00 ff|Y"; nocase; content:"z\;\\"; sid:9; rev:4;)`,
	`pass ip ![1.1.1.1,[2.2.2.0/24,!2.2.2.2]] any -> any :1023 (sid:2;)`,
	`reject icmpv6 any any -> any any (sid:3;)`,
	"# comment\n\nalert icmp any any -> any any (sid:4;)\r\n",
	`alert tcp any any => any any (sid:1;)`,
	`alert tcp any any -> any any (content:"|4|"; sid:1;)`,
	`alert tcp any any -> any any (flow:established; sid:1;)`,
	`alert tcp [1.1.1.1 any -> any any (sid:1;)`,
	`alert tcp any 2:1 -> any any (sid:1;)`,
	"alert tcp any any -> any any (sid:1;)\nalert tcp any any -> any any (sid:1;)",
	`alert tcp any any -> any any (content:"a;b"; sid:1;)`,
	`alert tcp any any -> any any (content:"abc`,
	"\ufeffalert ip any any -> any any (sid:1;)",
}

func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add(s)
	}
	frames := testFrames()
	f.Fuzz(func(t *testing.T, text string) {
		set, err := Parse(strings.NewReader(text), "fuzz.rules")
		if err != nil {
			checkParseError(t, text, err)
			return
		}
		lines := strings.Split(text, "\n")
		for _, r := range set.Rules() {
			if r.Line < 1 || r.Line > len(lines) {
				t.Fatalf("rule on line %d of %d", r.Line, len(lines))
			}
			// The canonical form is a fixed point of Parse.
			canon := r.String()
			again, err := Parse(strings.NewReader(canon), "canon")
			if err != nil {
				t.Fatalf("canonical form %q of %q does not parse: %v", canon, lines[r.Line-1], err)
			}
			if again.Len() != 1 || again.Rules()[0].String() != canon {
				t.Fatalf("canonical form %q is not stable", canon)
			}
		}
		// Whatever parsed can be matched against.
		res := set.NewResult()
		for _, fr := range frames {
			set.Match(fr, res)
			checkAgainstNaive(t, set, fr, res)
		}
	})
}

// checkParseError asserts that a parse failure is well formed.
func checkParseError(t *testing.T, text string, err error) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %v is not a non-empty ErrorList", err)
	}
	lines := strings.Split(text, "\n")
	for _, pe := range list {
		if pe.Line < 1 || pe.Line > len(lines) || pe.Msg == "" || pe.File != "fuzz.rules" {
			t.Fatalf("bad error %+v", pe)
		}
		line := strings.TrimSuffix(lines[pe.Line-1], "\r")
		if pe.Col < 1 || pe.Col > len(line)+1 {
			t.Fatalf("column %d outside line %q: %s", pe.Col, line, pe.Msg)
		}
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe != list[0] {
		t.Fatalf("errors.As does not find the first ParseError")
	}
}

// fuzzRules are matched against every FuzzMatch input.
const fuzzRules = `
pass ip 192.0.2.0/24 any <> any any (sid:9001;)
drop tcp any any -> any [80,8080] (content:"GET"; content:"/etc/passwd"; sid:9002;)
reject tcp any any -> any 23 (sid:9003;)
reject udp any any -> any 69 (sid:9004;)
alert tcp any any -> any any (content:"User-Agent|3a| curl/"; nocase; sid:9005;)
alert icmp any any -> any any (content:"|de ad be ef|"; sid:9006;)
drop ip [10.66.0.0/16,2001:db8:66::/48] any -> any any (sid:9007;)
alert ip any any -> any ![0:1023] (content:"A"; sid:9008;)
alert udp !10.0.0.0/8 any <> any any (content:"a"; nocase; content:"b"; sid:9009;)
alert icmpv6 any any -> any any (sid:9010;)
alert ip any any -> any any (content:"|00 00|"; sid:9011;)
`

func FuzzMatch(f *testing.F) {
	for _, fr := range testFrames() {
		f.Add(fr)
		f.Add(fr[:len(fr)/2])
	}
	for _, fr := range benchFrames() {
		f.Add(fr)
	}
	set, err := Parse(strings.NewReader(fuzzRules+manyRules(100)), "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	fresh, reused := set.NewResult(), set.NewResult()
	out := make([]byte, MaxRejectLen)
	warm := tcp4("10.66.0.1", "10.0.0.2", 1, 80, "GET /etc/passwd User-Agent: CURL/1 A ab").build()
	f.Fuzz(func(t *testing.T, frame []byte) {
		*fresh = Result{}
		a := set.Match(frame, fresh)
		checkInvariants(t, &fresh.Packet, frame, fresh.IsIP())
		checkAgainstNaive(t, set, frame, fresh)

		// A Result left dirty by another frame gives the same answer.
		set.Match(warm, reused)
		if b := set.Match(frame, reused); b != a || reused.Rule != fresh.Rule ||
			!equalRules(reused.Alerts, fresh.Alerts) || reused.Packet != fresh.Packet {
			t.Fatalf("reused Result differs: %v %v", a, b)
		}

		for _, dir := range []Direction{ToSource, ToDestination} {
			n, err := BuildReject(frame, dir, out)
			if err != nil || n == 0 {
				continue
			}
			var p Packet
			if !p.Decode(out[:n]) {
				t.Fatalf("reject frame does not decode")
			}
			if p.Proto != protoTCP && p.Proto != protoICMP && p.Proto != protoICMPv6 {
				t.Fatalf("reject frame has protocol %d", p.Proto)
			}
		}
	})
}

func equalRules(a, b []*Rule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkAgainstNaive recomputes the verdict rule by rule with plain substring
// search, sharing only Decode and the header matcher with Match, and compares.
func checkAgainstNaive(t *testing.T, s *Set, frame []byte, got *Result) {
	t.Helper()
	var p Packet
	var matched []*Rule
	if p.Decode(frame) {
		for _, r := range s.Rules() {
			if !protoMatches(r.Proto, p.Proto) || !r.matchHeader(&p) || !r.matchFlow(got.Flow) {
				continue
			}
			region := frame[p.payOff:p.end]
			if r.usesIPPayload() {
				region = frame[p.l4Off:p.end]
			}
			ok := true
			for _, c := range r.contents {
				ok = ok && naiveContains(region, c.pattern, c.nocase)
			}
			if ok {
				matched = append(matched, r)
			}
		}
	}
	want, wantRule := NoMatch, (*Rule)(nil)
	var alerts []*Rule
	for _, order := range []Action{Pass, Drop, Reject, Alert} {
		for _, r := range matched {
			if r.Action == order {
				want, wantRule = order, r
				break
			}
		}
		if want != NoMatch {
			break
		}
	}
	if want != Pass {
		alerts = append(alerts, matched...)
	}
	overflow := max(0, len(alerts)-MaxAlerts)
	alerts = alerts[:min(len(alerts), MaxAlerts)]
	if got.Action != want || got.Rule != wantRule || !equalRules(got.Alerts, alerts) || got.Overflow != overflow {
		t.Fatalf("Match gave %v rule %v alerts %d (+%d); naive gives %v rule %v alerts %d (+%d)",
			got.Action, got.Rule, len(got.Alerts), got.Overflow, want, wantRule, len(alerts), overflow)
	}
}

// protoMatches is the rule protocol check written out on its own, instead of
// through the Set's protocol groups.
func protoMatches(rp Proto, proto uint8) bool {
	switch rp {
	case ProtoIP:
		return true
	case ProtoTCP:
		return proto == protoTCP
	case ProtoUDP:
		return proto == protoUDP
	case ProtoICMP:
		return proto == protoICMP || proto == protoICMPv6
	case ProtoICMPv6:
		return proto == protoICMPv6
	}
	return false
}

// TestMatchAgainstNaive runs the FuzzMatch property over the test frames and
// every truncation of them, so it holds in ordinary test runs too.
func TestMatchAgainstNaive(t *testing.T) {
	set := mustParse(t, fuzzRules+manyRules(100))
	r := set.NewResult()
	frames := benchFrames()
	for k, v := range testFrames() {
		frames[k] = v
	}
	for _, fr := range frames {
		for n := 0; n <= len(fr); n++ {
			set.Match(fr[:n], r)
			checkAgainstNaive(t, set, fr[:n], r)
		}
	}
}

// TestFuzzSeedFiles keeps the seed corpus in testdata well formed: a file
// that the fuzzing engine cannot read would silently stop being run.
func TestFuzzSeedFiles(t *testing.T) {
	for _, name := range []string{"FuzzParse", "FuzzMatch"} {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", name, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no seed files for %s: %v", name, err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil || !strings.HasPrefix(string(b), "go test fuzz v1\n") {
				t.Fatalf("%s is not a fuzz corpus file: %v", file, err)
			}
		}
	}
}
