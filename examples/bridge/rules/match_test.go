package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustParse(t testing.TB, text string) *Set {
	t.Helper()
	s, err := Parse(strings.NewReader(text), "test.rules")
	require.NoError(t, err)
	return s
}

func sids(rs []*Rule) []uint32 {
	out := []uint32{}
	for _, r := range rs {
		out = append(out, r.SID)
	}
	return out
}

// TestMatchHeader checks one alert rule at a time against frames that should
// and should not match it.
func TestMatchHeader(t *testing.T) {
	var (
		tcpA   = tcp4("10.0.0.1", "10.0.0.2", 40000, 80, "hello")
		tcpB   = tcp4("10.0.0.2", "10.0.0.1", 80, 40000, "hello") // the reply
		udpA   = udp4("10.0.0.1", "10.0.0.2", 5353, 53, "query")
		icmp4  = frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoICMP, icmpType: 8}
		icmp6  = frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoICMPv6, icmpType: 128}
		tcp6   = frameSpec{src: "2001:db8::1", dst: "2001:db8:1::2", proto: protoTCP, sport: 40000, dport: 443, flags: TCPAck}
		frag4  = frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, fragOff: 100, rawL4: true, payload: []byte("more data")}
		gre    = frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: 47, payload: []byte("tunnel")}
		vlan1  = tcpA
		qinq   = udpA
		trunc4 = tcp4("10.0.0.1", "10.0.0.2", 40000, 80, "").build()[:14+20+10]
	)
	vlan1.tags = []vlanTag{{etherTypeVLAN, 100}}
	qinq.tags = []vlanTag{{etherTypeQinQ, 200}, {etherTypeVLAN, 300}}

	tests := []struct {
		name  string
		rule  string // header only; options are added
		match []frameSpec
		miss  []frameSpec
	}{
		{"tcp", "tcp any any -> any any", []frameSpec{tcpA, tcp6, frag4, vlan1}, []frameSpec{udpA, icmp4, icmp6, gre}},
		{"udp", "udp any any -> any any", []frameSpec{udpA, qinq}, []frameSpec{tcpA, icmp4, gre}},
		{"ip", "ip any any -> any any", []frameSpec{tcpA, udpA, icmp4, icmp6, tcp6, frag4, gre, qinq}, nil},
		{"icmp covers both", "icmp any any -> any any", []frameSpec{icmp4, icmp6}, []frameSpec{tcpA, udpA}},
		{"icmpv6", "icmpv6 any any -> any any", []frameSpec{icmp6}, []frameSpec{icmp4, tcp6}},
		{"src address", "ip 10.0.0.1 any -> any any", []frameSpec{tcpA, udpA, icmp4}, []frameSpec{tcpB, icmp6}},
		{"dst cidr", "ip any any -> 10.0.0.0/30 any", []frameSpec{tcpA, tcpB}, []frameSpec{tcp6}},
		{"ipv6 cidr", "tcp 2001:db8::/48 any -> 2001:db8:1::/48 any", []frameSpec{tcp6}, []frameSpec{tcpA}},
		{"address list", "ip [192.168.0.1,10.0.0.2] any -> any any", []frameSpec{tcpB}, []frameSpec{tcpA}},
		{"negated address", "ip !10.0.0.1 any -> any any", []frameSpec{tcpB, tcp6}, []frameSpec{tcpA, udpA}},
		{"negated list", "ip ![10.0.0.1,2001:db8::1] any -> any any", []frameSpec{tcpB}, []frameSpec{tcpA, tcp6}},
		{"list with exception", "ip [10.0.0.0/24,!10.0.0.1] any -> any any", []frameSpec{tcpB}, []frameSpec{tcpA, tcp6}},
		{"nested list", "ip [192.168.0.0/16,[10.0.0.0/8,![10.0.0.1]]] any -> any any", []frameSpec{tcpB}, []frameSpec{tcpA, tcp6}},
		{"only negations", "ip [!10.0.0.1,!10.0.0.2] any -> any any", []frameSpec{tcp6}, []frameSpec{tcpA, tcpB}},
		{"dst port", "tcp any any -> any 80", []frameSpec{tcpA, vlan1}, []frameSpec{tcpB, tcp6}},
		{"port range", "tcp any 30000:50000 -> any any", []frameSpec{tcpA, tcp6}, []frameSpec{tcpB}},
		{"open range", "tcp any :1023 -> any any", []frameSpec{tcpB}, []frameSpec{tcpA}},
		{"port list", "ip any any -> any [53,443,1000:2000]", []frameSpec{udpA, tcp6}, []frameSpec{tcpA, icmp4}},
		{"negated port", "tcp any any -> any !80", []frameSpec{tcpB, tcp6}, []frameSpec{tcpA, frag4}},
		{"negated port list", "tcp any any -> any ![80,443]", []frameSpec{tcpB}, []frameSpec{tcpA, tcp6}},
		{"ports exclude portless", "ip any any -> any 0:65535", []frameSpec{tcpA, udpA}, []frameSpec{icmp4, gre, frag4}},
		{"one-way", "tcp 10.0.0.1 any -> 10.0.0.2 80", []frameSpec{tcpA}, []frameSpec{tcpB}},
		{"bidirectional", "tcp 10.0.0.1 any <> 10.0.0.2 80", []frameSpec{tcpA, tcpB}, []frameSpec{tcp6}},
		{"bidirectional needs both halves", "tcp 10.0.0.1 any <> 10.0.0.2 81", nil, []frameSpec{tcpA, tcpB}},
		{"vlan", "tcp any any -> any 80", []frameSpec{vlan1}, nil},
		{"qinq", "udp 10.0.0.1 any -> 10.0.0.2 53", []frameSpec{qinq}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, "alert "+tt.rule+" (sid:1;)")
			var r Result
			for _, f := range tt.match {
				assert.Equal(t, Alert, s.Match(f.build(), &r), "should match %+v", f)
				assert.Equal(t, []uint32{1}, sids(r.Alerts))
			}
			for _, f := range tt.miss {
				assert.Equal(t, NoMatch, s.Match(f.build(), &r), "should not match %+v", f)
				assert.Empty(t, r.Alerts)
				assert.Nil(t, r.Rule)
			}
		})
	}

	t.Run("truncated L4 header", func(t *testing.T) {
		var r Result
		assert.Equal(t, Alert, mustParse(t, "alert tcp any any -> any any (sid:1;)").Match(trunc4, &r))
		assert.Equal(t, NoMatch, mustParse(t, "alert tcp any any -> any 80 (sid:1;)").Match(trunc4, &r))
		assert.Equal(t, NoMatch, mustParse(t, "alert tcp any any -> any !80 (sid:1;)").Match(trunc4, &r))
	})
}

func TestMatchContent(t *testing.T) {
	http := tcp4("10.0.0.1", "10.0.0.2", 40000, 80, "GET /Index.HTML HTTP/1.1\r\nHost: x\r\n\r\n")
	tests := []struct {
		name    string
		options string
		frame   frameSpec
		want    bool
	}{
		{"literal", `content:"GET /Index"`, http, true},
		{"case matters", `content:"get /index"`, http, false},
		{"nocase", `content:"get /index.html"; nocase`, http, true},
		{"nocase upper", `content:"GET /INDEX.HTML"; nocase`, http, true},
		{"hex", `content:"|0d 0a 0d 0a|"`, http, true},
		{"mixed hex", `content:"HTTP/1.1|0d0a|Host|3a| x"`, http, true},
		{"all contents needed", `content:"GET"; content:"POST"`, http, false},
		{"order not enforced", `content:"Host"; content:"GET"`, http, true},
		{"mixed case modes", `content:"host"; nocase; content:"Index"`, http, true},
		{"mixed case modes miss", `content:"host"; nocase; content:"index"`, http, false},
		{"tcp content not in header", `content:"|9c 40 00 50|"`, http, false},
		{"not in padding", `content:"|00 00 00 00|"`, func() frameSpec { f := tcp4("10.0.0.1", "10.0.0.2", 1, 2, "x"); f.pad = 40; return f }(), false},
		{"empty payload", `content:"x"`, tcp4("10.0.0.1", "10.0.0.2", 1, 2, ""), false},
		{"udp payload", `content:"query"`, udp4("10.0.0.1", "10.0.0.2", 1, 2, "a query"), true},
		{"later fragment searches its data", `content:"more"`,
			frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, fragOff: 9, rawL4: true, payload: []byte("more data")}, true},
		{"ipv6 with extension headers", `content:"secret"`,
			frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoTCP, sport: 1, dport: 2,
				ext: []extHdr{{typ: ipv6HopByHop, size: 8}, {typ: ipv6DestOpts, size: 8}}, payload: []byte("top secret")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, "drop tcp any any -> any any ("+tt.options+"; sid:1;)\n"+
				"drop udp any any -> any any ("+tt.options+"; sid:2;)")
			var r Result
			want := NoMatch
			if tt.want {
				want = Drop
			}
			assert.Equal(t, want, s.Match(tt.frame.build(), &r))
		})
	}

	t.Run("ip and icmp rules search the whole IP payload", func(t *testing.T) {
		s := mustParse(t, `alert ip any any -> any any (content:"|9c 40 00 50|"; sid:1;)
alert tcp any any -> any any (content:"|9c 40 00 50|"; sid:2;)
alert icmp any any -> any any (content:"|08 00|"; sid:3;)
alert icmpv6 any any -> any any (content:"|80 00|"; content:"ping"; sid:4;)
alert ip any any -> any any (content:"GET"; sid:5;)`)
		var r Result
		assert.Equal(t, Alert, s.Match(http.build(), &r))
		assert.Equal(t, []uint32{1, 5}, sids(r.Alerts), "TCP ports 40000->80 are in the IP payload, not the TCP payload")
		assert.Equal(t, Alert, s.Match(frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoICMP, icmpType: 8}.build(), &r))
		assert.Equal(t, []uint32{3}, sids(r.Alerts))
		assert.Equal(t, Alert, s.Match(frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoICMPv6, icmpType: 128, payload: []byte("ping")}.build(), &r))
		assert.Equal(t, []uint32{4}, sids(r.Alerts))
	})

	t.Run("same pattern with and without nocase", func(t *testing.T) {
		s := mustParse(t, `alert tcp any any -> any any (content:"index"; sid:1;)
alert tcp any any -> any any (content:"index"; nocase; sid:2;)
alert tcp any any -> any any (content:"Index"; sid:3;)
alert tcp any any -> any any (content:"dex.HT"; sid:4;)
alert tcp any any -> any any (content:"DEX.HT"; sid:5;)`)
		var r Result
		s.Match(http.build(), &r)
		assert.Equal(t, []uint32{2, 3, 4}, sids(r.Alerts))
	})
}

func TestMatchActionOrder(t *testing.T) {
	frame := tcp4("10.0.0.1", "10.0.0.2", 40000, 80, "attack").build()
	tests := []struct {
		name   string
		rules  []string // actions, in file order; sid i+1
		want   Action
		sid    uint32
		alerts []uint32
	}{
		{"nothing", nil, NoMatch, 0, []uint32{}},
		{"alert", []string{"alert"}, Alert, 1, []uint32{1}},
		{"alerts", []string{"alert", "alert"}, Alert, 1, []uint32{1, 2}},
		{"drop beats alert", []string{"alert", "drop"}, Drop, 2, []uint32{1, 2}},
		{"reject beats alert", []string{"alert", "reject"}, Reject, 2, []uint32{1, 2}},
		{"drop beats reject", []string{"reject", "drop", "alert"}, Drop, 2, []uint32{1, 2, 3}},
		{"first drop wins", []string{"drop", "drop"}, Drop, 1, []uint32{1, 2}},
		{"pass beats drop", []string{"drop", "pass"}, Pass, 2, []uint32{}},
		{"pass beats everything", []string{"alert", "reject", "drop", "pass", "alert"}, Pass, 4, []uint32{}},
		{"pass first", []string{"pass", "drop"}, Pass, 1, []uint32{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var text strings.Builder
			for i, a := range tt.rules {
				fmt.Fprintf(&text, "%s tcp any any -> any 80 (msg:\"rule %d\"; content:\"attack\"; sid:%d;)\n", a, i+1, i+1)
			}
			// Rules that do not match must not change anything.
			text.WriteString(`pass tcp any any -> any 81 (sid:100;)
drop tcp any any -> any any (content:"benign"; sid:101;)
`)
			s := mustParse(t, text.String())
			r := s.NewResult()
			assert.Equal(t, tt.want, s.Match(frame, r))
			assert.Equal(t, tt.want, r.Action)
			assert.Equal(t, tt.alerts, sids(r.Alerts))
			assert.Zero(t, r.Overflow)
			if tt.sid == 0 {
				assert.Nil(t, r.Rule)
				return
			}
			require.NotNil(t, r.Rule)
			assert.Equal(t, tt.sid, r.Rule.SID)
			assert.Equal(t, tt.want, r.Rule.Action)
			assert.Equal(t, fmt.Sprintf("rule %d", tt.sid), r.Rule.Msg)
		})
	}
}

func TestMatchAlertOverflow(t *testing.T) {
	var text strings.Builder
	for i := 1; i <= MaxAlerts+4; i++ {
		fmt.Fprintf(&text, "alert ip any any -> any any (sid:%d;)\n", i)
	}
	fmt.Fprintf(&text, "drop ip any any -> any any (sid:%d;)\n", 1000)
	s := mustParse(t, text.String())
	var r Result
	assert.Equal(t, Drop, s.Match(tcp4("10.0.0.1", "10.0.0.2", 1, 2, "").build(), &r))
	assert.Equal(t, uint32(1000), r.Rule.SID, "the verdict rule is kept even when Alerts is full")
	assert.Len(t, r.Alerts, MaxAlerts)
	assert.Equal(t, MaxAlerts, cap(r.Alerts))
	assert.Equal(t, 5, r.Overflow)
	assert.Equal(t, uint32(1), r.Alerts[0].SID)
}

func TestMatchResultReuse(t *testing.T) {
	s := mustParse(t, `drop tcp any any -> any 80 (content:"evil"; sid:1;)
alert udp any any -> any any (content:"x"; sid:2;)`)
	r := s.NewResult()
	require.Equal(t, Drop, s.Match(tcp4("10.0.0.1", "10.0.0.2", 1, 80, "evil").build(), r))
	alerts := r.Alerts

	// A frame that is not IP clears everything from the previous match.
	assert.Equal(t, NoMatch, s.Match([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 0x08, 0x06, 0, 0}, r))
	assert.Nil(t, r.Rule)
	assert.Empty(t, r.Alerts)
	assert.False(t, r.IsIP())
	assert.Zero(t, r.DstPort)

	// The content bitset is cleared between frames.
	assert.Equal(t, NoMatch, s.Match(tcp4("10.0.0.1", "10.0.0.2", 1, 80, "good").build(), r))
	assert.Equal(t, Alert, s.Match(udp4("10.0.0.1", "10.0.0.2", 1, 80, "x").build(), r))
	assert.Equal(t, []uint32{2}, sids(r.Alerts))
	assert.Equal(t, &alerts[0], &r.Alerts[0], "the Alerts backing array is reused")

	// One Result works with several Sets.
	big := mustParse(t, manyRules(200))
	assert.NotPanics(t, func() { big.Match(tcp4("10.0.0.1", "10.0.0.2", 1, 80, "evil").build(), r) })
}

func TestActionString(t *testing.T) {
	for a, want := range map[Action]string{NoMatch: "nomatch", Pass: "pass", Alert: "alert", Drop: "drop", Reject: "reject", 9: "Action(9)"} {
		assert.Equal(t, want, a.String())
	}
	for p, want := range map[Proto]string{ProtoIP: "ip", ProtoTCP: "tcp", ProtoUDP: "udp", ProtoICMP: "icmp", ProtoICMPv6: "icmpv6", 0: "Proto(0)"} {
		assert.Equal(t, want, p.String())
	}
	assert.True(t, Drop.Blocks())
	assert.True(t, Reject.Blocks())
	assert.False(t, Alert.Blocks())
	assert.False(t, Pass.Blocks())
	assert.False(t, NoMatch.Blocks())
}
