package rules

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// randomPortRules returns n rules with every kind of port and address field
// the pre-filter treats differently: exact ports, small and large ranges,
// lists, nested lists, negations, any, source-only ports, IPv4 and IPv6
// networks long and short, and <> rules, with and without content.
func randomPortRules(rng *rand.Rand, n int) string {
	fields := []string{"any", "80", "443", "[80,443]", "8000:8003", "1:1000", "![80,443]", "[[53,80],8001]", "[80,!81]", "53", "0:"}
	protos := []string{"tcp", "udp", "ip", "tcp", "udp"}
	actions := []string{"alert", "drop", "reject", "pass", "alert"}
	addrs := []string{"any", "any", "10.0.0.0/8", "[10.0.0.1,192.168.0.0/16]", "10.0.0.2", "!10.0.0.1", "2001:db8::/32",
		"[10.0.0.0/24,2001:db8::1]", "0.0.0.0/0", "10.0.0.0/12", "[[10.0.0.1,10.0.0.3],11.0.0.0/9]", "[10.0.0.0/8,!10.0.0.3]"}
	var b strings.Builder
	for i := range n {
		dir := "->"
		if rng.IntN(8) == 0 {
			dir = "<>"
		}
		opts := []string{"", "", "flow:established; ", "flow:to_server; "}[rng.IntN(4)]
		switch rng.IntN(3) {
		case 0:
			opts += `content:"ab"; `
		case 1:
			opts += `content:"Zq"; nocase; `
		}
		fmt.Fprintf(&b, "%s %s %s %s %s %s %s (%ssid:%d;)\n", actions[rng.IntN(len(actions))], protos[rng.IntN(len(protos))],
			addrs[rng.IntN(len(addrs))], fields[rng.IntN(len(fields))], dir,
			addrs[rng.IntN(len(addrs))], fields[rng.IntN(len(fields))], opts, i+1)
	}
	return b.String()
}

// TestPrefilterAgainstNaive checks that the port and address indexes change
// no verdict: random rule sets against IPv4 and IPv6 frames to and from
// indexed, shared and unrelated ports and addresses, compared with a naive
// match of every rule.
func TestPrefilterAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	ports := []uint16{0, 53, 80, 81, 443, 1000, 1001, 8001, 8003, 40000}
	payloads := []string{"", "xxabxx", "zQ", "ab zq"}
	hosts := [][]string{{"10.0.0.1", "10.0.0.2", "10.0.0.3", "192.168.7.7", "11.1.2.3", "10.16.0.1", "8.8.8.8"}, {"2001:db8::1", "2001:db9::2", "2001:db8::3"}}
	for range 60 {
		set := mustParse(t, randomPortRules(rng, 1+rng.IntN(40)))
		r := set.NewResult()
		for range 40 {
			sp, dp := ports[rng.IntN(len(ports))], ports[rng.IntN(len(ports))]
			pay := payloads[rng.IntN(len(payloads))]
			ips := hosts[rng.IntN(len(hosts))]
			src, dst := ips[rng.IntN(len(ips))], ips[rng.IntN(len(ips))]
			for _, f := range []frameSpec{tcp4(src, dst, sp, dp, pay), udp4(src, dst, sp, dp, pay)} {
				fr := f.build()
				r.Flow = []Flow{0, FlowEstablished | FlowToServer, FlowToClient}[rng.IntN(3)]
				set.Match(fr, r)
				checkAgainstNaive(t, set, fr, r)
			}
		}
	}
}

// TestPrefilterIndexes checks where rules go: rules naming a few destination
// (or else source) ports are indexed by port and not in the shared list, so a
// frame to another port does not look at them.
func TestPrefilterIndexes(t *testing.T) {
	set := mustParse(t, strings.Join([]string{
		`alert tcp any any -> any 80 (sid:1;)`,
		`alert tcp any any -> any [80,8080] (sid:2;)`,
		`alert tcp any 53 -> any any (sid:3;)`,
		`alert tcp any any -> any ![80] (sid:4;)`,           // negated: shared
		`alert tcp any any <> any 80 (sid:5;)`,              // both ways: shared
		`alert tcp any any -> any 1:1000 (sid:6;)`,          // too many ports: shared
		`alert ip any any -> any 80 (sid:7;)`,               // indexed for TCP and UDP
		`alert tcp any any -> any 8000:8003 (sid:8;)`,       // small range
		`alert tcp any any -> any 80 (content:"x"; sid:9;)`, // content: scan region only
	}, "\n"))
	ruleSIDs := func(ids []int32) []uint32 {
		out := []uint32{}
		for _, i := range ids {
			out = append(out, set.rules[i].SID)
		}
		return out
	}
	assert.Equal(t, []uint32{4, 5, 6}, ruleSIDs(set.plain[groupTCP]))
	assert.Equal(t, []uint32{1, 2, 7}, ruleSIDs(set.ports[groupTCP][0].lookup(80)))
	assert.Equal(t, []uint32{2}, ruleSIDs(set.ports[groupTCP][0].lookup(8080)))
	assert.Equal(t, []uint32{8}, ruleSIDs(set.ports[groupTCP][0].lookup(8002)))
	assert.Equal(t, []uint32{}, ruleSIDs(set.ports[groupTCP][0].lookup(443)))
	assert.Equal(t, []uint32{3}, ruleSIDs(set.ports[groupTCP][1].lookup(53)))
	assert.Equal(t, []uint32{7}, ruleSIDs(set.ports[groupUDP][0].lookup(80)))
	assert.Nil(t, set.ports[groupUDP][1], "no UDP rule is indexed by source port")
	assert.Equal(t, scanNone, set.scan[groupTCP], "the only content rule is indexed")
	assert.Equal(t, scanL4Payload, set.ports[groupTCP][0].scanOf(80))
	assert.Equal(t, scanNone, set.ports[groupTCP][0].scanOf(443))

	r := set.NewResult()
	set.Match(tcp4("10.0.0.1", "10.0.0.2", 53, 80, "x").build(), r)
	assert.Equal(t, []uint32{1, 2, 3, 5, 6, 7, 9}, sids(r.Alerts), "file order across shared and indexed lists")
	set.Match(tcp4("10.0.0.1", "10.0.0.2", 40000, 443, "x").build(), r)
	assert.Equal(t, []uint32{4, 6}, sids(r.Alerts))
}

// TestPrefilterUnrelatedRules shows the point of the index: 20,000 rules for
// other ports add no header checks to a frame.
func TestPrefilterUnrelatedRules(t *testing.T) {
	var b strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&b, "drop tcp any any -> any %d (sid:%d;)\n", 1000+i%30000, i+1)
	}
	b.WriteString("alert tcp any any -> any 80 (sid:99999;)\n")
	set := mustParse(t, b.String())
	require.Empty(t, set.plain[groupTCP])
	r := set.NewResult()
	assert.Equal(t, Alert, set.Match(tcp4("10.0.0.1", "10.0.0.2", 40000, 80, "").build(), r))
	assert.Len(t, set.ports[groupTCP][0].lookup(80), 1)
}

// TestPrefilterNets checks the address index: block-list rules without
// content are indexed by the /16s of their source (else destination)
// networks, and a frame from elsewhere does not look at them.
func TestPrefilterNets(t *testing.T) {
	set := mustParse(t, strings.Join([]string{
		`drop ip [1.2.3.0/24,5.6.0.0/16] any -> any any (sid:1;)`,
		`drop ip any any -> 7.0.0.0/15 any (sid:2;)`,
		`drop ip [1.2.3.4,2001:db8::/32] any -> any any (sid:3;)`, // IPv6: shared
		`drop ip 1.0.0.0/7 any -> any any (sid:4;)`,               // too wide: shared
		`drop tcp 1.2.3.4 any -> any any (content:"x"; sid:5;)`,   // content: by pattern
	}, "\n"))
	ruleSIDs := func(ids []int32) []uint32 {
		out := []uint32{}
		for _, i := range ids {
			out = append(out, set.rules[i].SID)
		}
		return out
	}
	for g := range numGroups {
		assert.Equal(t, []uint32{3, 4}, ruleSIDs(set.plain[g]))
		assert.Equal(t, []uint32{1}, ruleSIDs(set.nets[g][0].lookup(0x0102)))
		assert.Equal(t, []uint32{1}, ruleSIDs(set.nets[g][0].lookup(0x0506)))
		assert.Equal(t, []uint32{2}, ruleSIDs(set.nets[g][1].lookup(0x0701)))
		assert.Equal(t, []uint32{}, ruleSIDs(set.nets[g][1].lookup(0x0802)))
	}
	r := set.NewResult()
	set.Match(tcp4("1.2.3.4", "7.1.0.1", 1, 2, "x").build(), r)
	assert.Equal(t, []uint32{1, 2, 3, 4, 5}, sids(r.Alerts))
	set.Match(tcp4("1.2.4.4", "9.1.0.1", 1, 2, "x").build(), r)
	assert.Equal(t, []uint32{4}, sids(r.Alerts))
}
