package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// manyRules returns n rules of mixed protocols, addresses and ports with
// about one content pattern each (some with two, some nocase, some hex), the
// shape of a small real rule file.
func manyRules(n int) string {
	var b strings.Builder
	actions := []string{"alert", "alert", "alert", "drop", "reject"}
	for i := range n {
		proto, ports := "tcp", "any -> any any"
		switch i % 10 {
		case 0, 1, 2:
			ports = "any -> any [80,8080,8000:8100]"
		case 3:
			ports = "any -> any 443"
		case 4:
			ports = "any <> any ![22,23]"
		case 5, 6:
			proto, ports = "udp", "any -> any 53"
		case 7:
			proto = "ip"
		case 8:
			proto = "icmp"
		}
		src := "any"
		if i%7 == 0 {
			src = "[10.0.0.0/8,192.168.0.0/16,!10.99.0.1]"
		}
		opts := fmt.Sprintf(`content:"needle-%03d"; `, i)
		if i%4 == 0 {
			opts += "nocase; "
		}
		if i%5 == 0 {
			opts += fmt.Sprintf(`content:"|%02x %02x|x"; `, i, 255-i)
		}
		fmt.Fprintf(&b, "%s %s %s %s (msg:\"rule %d\"; %ssid:%d; rev:1;)\n",
			actions[i%len(actions)], proto, src, ports, i, opts, i+1)
	}
	return b.String()
}

// benchFrames are frames of the kinds the bridge sees most, each with a
// 1 KiB payload.
func benchFrames() map[string][]byte {
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 18)[:1000]
	return map[string][]byte{
		"tcp4-miss":   tcp4("10.0.0.1", "10.0.0.2", 40000, 80, "GET / HTTP/1.1\r\n"+body).build(),
		"tcp4-hit":    tcp4("10.0.0.1", "10.0.0.2", 40000, 8080, "GET / NEEDLE-020\x14\xebx HTTP/1.1\r\n"+body+"needle-010\x0a\xf5x Needle-004").build(),
		"tcp6-vlan":   frameSpec{tags: []vlanTag{{etherTypeVLAN, 10}}, src: "2001:db8::1", dst: "2001:db8::2", proto: protoTCP, sport: 1, dport: 443, flags: TCPAck, payload: []byte(body)}.build(),
		"udp4-dns":    udp4("192.168.1.1", "192.168.1.53", 40000, 53, "needle-006"+body[:100]).build(),
		"icmp4":       frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoICMP, icmpType: 8, payload: []byte(body[:56])}.build(),
		"frag4":       frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, fragOff: 100, rawL4: true, payload: []byte(body)}.build(),
		"not-ip":      append(append(append([]byte{}, macB[:]...), macA[:]...), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1),
		"truncated":   tcp4("10.0.0.1", "10.0.0.2", 40000, 80, "").build()[:40],
		"tcp4-syn-64": tcp4("10.0.0.1", "10.0.0.2", 40000, 443, "").build(),
	}
}

func TestManyRulesShape(t *testing.T) {
	s := mustParse(t, manyRules(100))
	require.Equal(t, 100, s.Len())
	require.NotNil(t, s.ac)
	assert.Equal(t, 120, len(s.ac.pats), "100 rules with 120 distinct patterns")

	var r Result
	f := benchFrames()
	assert.Equal(t, Reject, s.Match(f["tcp4-hit"], &r))
	assert.Equal(t, uint32(5), r.Rule.SID)
	assert.Equal(t, []uint32{5, 11, 21}, sids(r.Alerts), "nocase needle-004, needle-010 and nocase NEEDLE-020 with their hex contents")
	assert.Equal(t, NoMatch, s.Match(f["tcp4-miss"], &r))
	assert.Equal(t, Alert, s.Match(f["udp4-dns"], &r))
	assert.Equal(t, []uint32{7}, sids(r.Alerts))
}

// TestMatchAllocs proves the hot path allocates nothing, for every kind of
// frame, with a fresh Result from NewResult and with a reused zero Result.
func TestMatchAllocs(t *testing.T) {
	s := mustParse(t, manyRules(100))
	for name, frame := range benchFrames() {
		r := s.NewResult()
		assert.Zero(t, testing.AllocsPerRun(100, func() { s.Match(frame, r) }), name)
		var zero Result
		s.Match(frame, &zero) // sizes the scratch space once
		assert.Zero(t, testing.AllocsPerRun(100, func() { s.Match(frame, &zero) }), name)
	}
}

func BenchmarkMatch(b *testing.B) {
	s, err := Parse(strings.NewReader(manyRules(100)), "bench")
	require.NoError(b, err)
	for _, name := range []string{"tcp4-miss", "tcp4-hit", "tcp6-vlan", "udp4-dns", "icmp4", "frag4", "not-ip", "tcp4-syn-64"} {
		frame := benchFrames()[name]
		b.Run(name, func(b *testing.B) {
			r := s.NewResult()
			b.ReportAllocs()
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				s.Match(frame, r)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := benchFrames()["tcp6-vlan"]
	var p Packet
	b.ReportAllocs()
	for b.Loop() {
		p.Decode(frame)
	}
}

func BenchmarkBuildReject(b *testing.B) {
	frame := benchFrames()["tcp4-hit"]
	out := make([]byte, MaxRejectLen)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildReject(frame, ToSource, out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	text := manyRules(100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(strings.NewReader(text), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}
