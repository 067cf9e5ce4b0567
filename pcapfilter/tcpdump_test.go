package pcapfilter_test

import (
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/afbridge/afbridge/pcapfilter"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
)

// exprs is the table of the differential tests: every primitive, qualifier and combination
// this package compiles.
var exprs = []string{
	// protocols
	"ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp",
	"ether proto 0x88cc", "ether proto \\ip6", "ether proto 100", "ether proto 0xfe",
	"proto 17", "ip proto 47", "ip6 proto 6", "ip proto \\tcp", "proto \\udp",
	// hosts and networks
	"host 198.18.0.1", "src host 198.18.0.1", "dst host 198.18.0.2",
	"ip host 198.18.0.1 or 198.18.0.2", "arp host 198.18.0.2", "rarp src 198.18.0.1",
	"src and dst host 198.18.0.1", "src or dst host 198.18.0.2",
	"host 2001:2::1", "dst host 2001:2::2", "ip6 src host 2001:2:0:1::5",
	"net 198.18.0.0/16", "src net 198.18.0.0/24", "net 198.18.0.0 mask 255.255.0.0",
	"dst net 198.18", "net 198.18.0.0/15", "net 10", "net 0.0.0.0/0",
	"net 2001:2::/48", "src net 2001:2::/32", "net 2001:2:0:1::/64", "dst net ff00::/8",
	"ether host 02:00:00:00:00:01", "ether src 02:00:00:00:00:02", "ether dst ff:ff:ff:ff:ff:ff",
	"ether host 02-00-00-00-00-01", "ether host 0200.0000.0001",
	// ports
	"port 80", "src port 53", "dst port 443", "tcp port 80", "udp dst port 53", "sctp port 2000",
	"tcp src or dst port 22", "udp src and dst port 53", "portrange 1000-2000",
	"tcp portrange 1000-1500", "src portrange 1-1024", "udp portrange 2000-999",
	"port 80 or 443", "tcp port 80 or 443 or 22", "udp and port 53 or 443",
	// broadcast, multicast, lengths
	"broadcast", "multicast", "ether broadcast", "ip broadcast", "ip multicast", "ip6 multicast",
	"less 64", "greater 100", "len > 100", "len <= 60", "len - 14 >= 50", "len != 42",
	// arithmetic
	"tcp[13] & 2 != 0", "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) = tcp-syn",
	"ip[0] & 0xf > 5", "ip[2:2] - 20 > 100", "ip[6:2] & 0x1fff = 0", "icmp[icmptype] = icmp-echo",
	"icmp[0] = 0 or icmp[0] = 8", "icmp6[0] = 128", "ip6[6] = 17", "udp[8:2] > 1", "arp[7] = 2",
	"ether[0] & 1 = 1", "ether[12:2] = 0x800", "(ip[0] & 0xf) > 5", "ip[ip[0] & 0xf] = 0",
	"tcp[(tcp[12] >> 4) * 4] & 0x80 = 0", "ip[9] + 1 = 7", "len = 2 * 3 % 4 + 54", "ip[1] ^ 2 | 1 = 3",
	"ip[8] * 2 / 4 < 20", "ip[3] << 1 >> 1 = ip[3]", "- ip[0] = 0xffffffbb", "ether[12:4] = 0x81000014",
	"tcp[0:2] > tcp[2:2]", "udp[0:4] & 0xffff = 53",
	// vlan
	"vlan", "vlan 10", "vlan and ip", "vlan 10 and host 198.18.0.1", "vlan and vlan 20",
	"vlan 10 and vlan and udp", "vlan and vlan 20 and port 80", "vlan or ip", "ip or vlan and tcp", "not vlan and arp", "arp and not vlan",
	"vlan and tcp[13] & 2 != 0", "vlan 20 and ether host 02:00:00:00:00:01", "vlan and ip6 multicast",
	// combinations
	"tcp and not port 22", "not tcp", "!udp", "tcp && port 80 || udp && port 53",
	"host 198.18.0.1 and (port 80 or port 443)", "not (host 198.18.0.1 or host 198.18.0.2)",
	"host 198.18.0.1 or 198.18.0.2", "host 198.18.0.1 and not 198.18.0.2",
	"src host 198.18.0.1 or dst net 198.19.0.0/16", "ip and not net 10.0.0.0/8 and tcp",
	"arp or (ip and icmp) or (ip6 and icmp6)", "(tcp or udp) and src port 53",
	"tcp port 80 and (tcp[tcpflags] & (tcp-syn|tcp-fin) != 0)", "host (198.18.0.1 or 198.18.0.2)",
	"ether src 02:00:00:00:00:01 and not broadcast", "ip6 and (udp or sctp) and dst port 2000",
	"not ip and not ip6 and not arp", "icmp or tcp and port 80 or udp",
	// corners of the grammar
	"port 80 or src 53", "host 10", "dst and src host 198.18.0.1", "ip6 net 2001:2::/32", "arp net 198.18",
	"ether src or dst 02:00:00:00:00:01", "ip[0]=69", "len>=60", "port 0x50", "portrange 80", "ether proto 1500",
	"icmp6[icmp6type] = icmp6-echo", "tcp[tcpflags] & tcp-ece != 0", "host ::ffff:198.18.0.1", "net ::/0",
	"udp[udp[0]] = 1", "not not tcp", "((tcp)) and (port 80)", "-1 = len", "ip proto \\gre",
	// long programs: conditional jumps over more than 255 instructions go through trampolines
	"(portrange 1000-2000 or portrange 1-100 or portrange 400-500) and (src portrange 0-1500 or dst portrange 2000-3000) and not (host 198.18.0.1 or net 2001:2::/32)",
	"vlan and (portrange 1000-2000 or portrange 1-100 or portrange 400-500 or portrange 22-80 or portrange 53-53) and ip6",
	"(host 198.18.0.1 or host 198.18.0.2 or host 198.18.1.1 or net 198.19.0.0/16 or net 2001:2::/32 or net 2001:2:ffff::/48 or host 2001:2::2) and (portrange 1000-2000 or portrange 1-100 or tcp portrange 400-500 or src portrange 22-80 or udp dst portrange 53-53 or port 8080 or sctp port 2000 or udp port 999) and not (tcp[tcpflags] & tcp-rst != 0 or ip[6:2] & 0x1fff != 0 or icmp or ip6 multicast)",
}

// tcpdumpProgram compiles expr with tcpdump for a dead Ethernet capture (no ancillary loads).
func tcpdumpProgram(t *testing.T, args ...string) []bpf.RawInstruction {
	t.Helper()
	out, err := exec.Command("tcpdump", args...).CombinedOutput()
	require.NoError(t, err, "tcpdump %q: %s", args, out)
	return parseDDD(t, string(out))
}

// parseDDD reads tcpdump -ddd output: a count, then "code jt jf k" lines. Other lines
// (warnings) are skipped.
func parseDDD(t *testing.T, out string) []bpf.RawInstruction {
	t.Helper()
	var nums [][]uint64
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		var v []uint64
		for _, s := range f {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				v = nil
				break
			}
			v = append(v, n)
		}
		if len(v) == 1 || len(v) == 4 {
			nums = append(nums, v)
		}
	}
	require.NotEmpty(t, nums, "tcpdump output %s", out)
	require.Len(t, nums[0], 1, "tcpdump output %s", out)
	require.Len(t, nums, int(nums[0][0])+1, "tcpdump output %s", out)
	prog := make([]bpf.RawInstruction, 0, nums[0][0])
	for _, v := range nums[1:] {
		require.Len(t, v, 4, "tcpdump output %s", out)
		prog = append(prog, bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])})
	}
	return prog
}

func requireTcpdump(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("the differential tests need tcpdump in PATH (Debian: apt-get install tcpdump)")
	}
}

func corpus(n int, seed uint64) [][]byte {
	g := frameGen{rand.New(rand.NewPCG(seed, 0x5eed))}
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = g.frame()
	}
	return frames
}

// TestSameAsTcpdump runs tcpdump's programs and ours for every expression of the table on
// thousands of frames. Ours must give the same verdict as libpcap's code before its optimizer
// (tcpdump -O) on every frame, truncated ones included, and the same verdict as tcpdump's
// default optimized program on every frame where neither tcpdump program reads past the end.
// (libpcap's optimizer reorders tests as if loads could not fail, so on a frame that ends
// inside a header the filter reads, optimized and unoptimized tcpdump disagree with each other.)
func TestSameAsTcpdump(t *testing.T) {
	requireTcpdump(t)
	require.GreaterOrEqual(t, len(exprs), 60)
	frames := corpus(5000, 1)
	farJumps := 0
	t.Cleanup(func() { assert.Positive(t, farJumps, "no program of the table needs a trampoline") })
	for _, expr := range exprs {
		t.Run(expr, func(t *testing.T) {
			optRaw := tcpdumpProgram(t, "-ddd", "-y", "EN10MB", "--", expr)
			unoptRaw := tcpdumpProgram(t, "-O", "-ddd", "-y", "EN10MB", "--", expr)
			opt, err := bpf.NewVM(disassemble(t, optRaw))
			require.NoError(t, err)
			unopt, err := bpf.NewVM(disassemble(t, unoptRaw))
			require.NoError(t, err)
			prog, err := pcapfilter.Compile(expr, &pcapfilter.Config{TagsInFrame: true})
			require.NoError(t, err)
			require.Less(t, len(prog), pcapfilter.MaxInstructions)
			for _, in := range prog {
				if j, ok := in.(bpf.Jump); ok && j.Skip > 255 {
					farJumps++
				}
			}
			got, err := bpf.NewVM(prog)
			require.NoError(t, err)
			raw := assemble(prog)
			accepted, mismatches, cut := 0, 0, 0
			for _, f := range frames {
				g, err := got.Run(f)
				require.NoError(t, err)
				if len(f)%8 == 0 { // a sample keeps the interpreter honest
					require.Equal(t, uint32(g), run(raw, skb{data: f}).ret, "interpreter and VM disagree")
				}
				u, err := unopt.Run(f)
				require.NoError(t, err)
				o, err := opt.Run(f)
				require.NoError(t, err)
				if g != 0 {
					accepted++
				}
				if (u != 0) != (g != 0) {
					if mismatches < 3 {
						t.Errorf("frame % x: tcpdump -O returns %d, pcapfilter %d", f, u, g)
					}
					mismatches++
				}
				if (o != 0) == (g != 0) {
					continue
				}
				if run(optRaw, skb{data: f}).oob || run(unoptRaw, skb{data: f}).oob {
					cut++ // tcpdump's optimizer changed the verdict of a short frame
					continue
				}
				if mismatches < 3 {
					t.Errorf("whole frame % x: tcpdump returns %d, pcapfilter %d", f, o, g)
				}
				mismatches++
			}
			assert.Zero(t, mismatches, "frames judged differently")
			t.Logf("%d of %d frames accepted; tcpdump's optimized program judges %d short frames (that end inside a header the filter reads) differently from tcpdump -O and pcapfilter",
				accepted, len(frames), cut)
			if !strings.Contains(expr, "vlan") {
				// Without vlan, the socket program is the same program.
				sock, err := pcapfilter.Compile(expr, nil)
				require.NoError(t, err)
				assert.Equal(t, prog, sock)
			}
		})
	}
}

func disassemble(t *testing.T, raw []bpf.RawInstruction) []bpf.Instruction {
	t.Helper()
	prog, ok := bpf.Disassemble(raw)
	require.True(t, ok, "tcpdump program does not disassemble")
	for i, in := range prog {
		if _, neg := in.(bpf.NegateA); neg {
			// The VM cannot run neg; A * 0xffffffff is the same value.
			prog[i] = bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0xffffffff}
		}
	}
	return prog
}
