package pcapfilter_test

import (
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/afbridge/afbridge/pcapfilter"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
)

// randomExpr builds a random expression from primitives, qualifiers and operators, so that
// combinations nobody wrote into the table meet tcpdump too.
func randomExpr(r *rand.Rand, depth int) string {
	if depth > 0 && r.IntN(3) > 0 {
		a, b := randomExpr(r, depth-1), randomExpr(r, depth-1)
		switch r.IntN(6) {
		case 0:
			return "not " + a
		case 1:
			return "(" + a + ") and (" + b + ")"
		case 2:
			return a + " or " + b
		case 3:
			return a + " && " + b
		case 4:
			return "!(" + a + ") || " + b
		}
		return a + " and " + b
	}
	dir := pick(r, []string{"", "src ", "dst ", "src or dst ", "src and dst "})
	switch r.IntN(14) {
	case 0:
		return pick(r, []string{"ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp"})
	case 1:
		return pick(r, []string{"", "ip ", "arp "}) + dir + "host " + pick(r, v4Pool)
	case 2:
		return dir + "host " + pick(r, v6Pool)
	case 3:
		return dir + "net " + pick(r, []string{"198.18.0.0/16", "198.18.0.0/24", "198.18", "10.0.0.0/8", "2001:2::/32", "2001:2:0:1::/64"})
	case 4:
		return pick(r, []string{"", "tcp ", "udp ", "sctp "}) + dir + "port " + pick(r, []string{"22", "53", "80", "443", "2000"})
	case 5:
		return pick(r, []string{"", "tcp ", "udp "}) + dir + "portrange " + pick(r, []string{"1-1024", "1000-2000", "53-80"})
	case 6:
		return "ether " + strings.TrimSuffix(dir, " ") + pick(r, []string{" host ", " "})[:1] + "02:00:00:00:00:0" + pick(r, []string{"1", "2"})
	case 7:
		return pick(r, []string{"vlan", "vlan 10", "vlan 20"})
	case 8:
		return pick(r, []string{"broadcast", "multicast", "ip broadcast", "ip multicast", "ip6 multicast"})
	case 9:
		return pick(r, []string{"less 80", "greater 120", "len > 64", "len <= 100"})
	case 10:
		return pick(r, []string{"tcp[tcpflags] & tcp-syn != 0", "ip[0] & 0xf > 5", "udp[0:2] = 53", "icmp[icmptype] = icmp-echo",
			"ip[2:2] - 20 > 40", "ether[0] & 1 = 0", "ip6[6] = 58", "tcp[12] >> 4 > 5"})
	case 11:
		return pick(r, []string{"ip proto 47", "proto 17", "ip6 proto 6", "ether proto 0x88cc", "ether proto \\arp"})
	case 12:
		// an inherited qualifier
		return "host " + pick(r, v4Pool) + " or " + pick(r, v4Pool)
	}
	return "port " + pick(r, []string{"80", "53"}) + " or " + pick(r, []string{"443", "22"})
}

// TestRandomSameAsTcpdump runs random expressions as TestSameAsTcpdump runs the table.
func TestRandomSameAsTcpdump(t *testing.T) {
	requireTcpdump(t)
	r := rand.New(rand.NewPCG(11, 12))
	frames := corpus(2000, 8)
	compared, rejectsAll := 0, 0
	for i := 0; i < 80; i++ {
		expr := randomExpr(r, 3)
		if strings.HasPrefix(expr, "ether  ") || strings.Contains(expr, "ether src and dst  ") {
			continue
		}
		out, err := exec.Command("tcpdump", "-ddd", "-y", "EN10MB", "--", expr).CombinedOutput()
		prog, cerr := pcapfilter.Compile(expr, &pcapfilter.Config{TagsInFrame: true})
		if err != nil && strings.Contains(string(out), "expression rejects all packets") {
			// libpcap's optimizer proved it matches nothing; pcapfilter's may not: then its
			// program must reject every frame.
			if cerr != nil {
				assert.ErrorIs(t, cerr, pcapfilter.ErrRejectsAll)
				continue
			}
			vm, err := bpf.NewVM(prog)
			require.NoError(t, err)
			for _, f := range frames {
				v, err := vm.Run(f)
				require.NoError(t, err)
				require.Zero(t, v, "%q accepts frame % x", expr, f)
			}
			rejectsAll++
			continue
		}
		if err != nil {
			// tcpdump refuses it: so must we.
			assert.Error(t, cerr, "tcpdump refuses %q (%s) but pcapfilter compiles it", expr, out)
			continue
		}
		require.NoError(t, cerr, "tcpdump compiles %q", expr)
		optRaw := parseDDD(t, string(out))
		unoptRaw := tcpdumpProgram(t, "-O", "-ddd", "-y", "EN10MB", "--", expr)
		got, err := bpf.NewVM(prog)
		require.NoError(t, err)
		raw := assemble(prog)
		bad := 0
		for _, f := range frames {
			g, err := got.Run(f)
			require.NoError(t, err)
			u := run(unoptRaw, skb{data: f})
			o := run(optRaw, skb{data: f})
			if (g != 0) != (u.ret != 0) || ((g != 0) != (o.ret != 0) && !u.oob && !o.oob) {
				if bad < 2 {
					t.Errorf("%q: frame % x: pcapfilter %d, tcpdump -O %d, tcpdump %d", expr, f, g, u.ret, o.ret)
				}
				bad++
			}
			if len(f)%8 == 0 {
				require.Equal(t, uint32(g), run(raw, skb{data: f}).ret)
			}
		}
		compared++
	}
	t.Logf("%d random expressions compared on %d frames each; %d more match nothing and reject every frame", compared, len(frames), rejectsAll)
	assert.Greater(t, compared, 50)
}
