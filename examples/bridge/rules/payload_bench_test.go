package rules

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// benchHarnessRules returns the n content rules of the shared bench harness:
// alternating udp and tcp, each with one 14-byte content.
func benchHarnessRules(n int) string {
	var b strings.Builder
	for i := range n {
		proto := "tcp"
		if i%2 == 0 {
			proto = "udp"
		}
		fmt.Fprintf(&b, "alert %s any any -> any any (msg:\"bench %d\"; content:\"zq-needle-%04d\"; sid:%d; rev:1;)\n",
			proto, i+1, i+1, 1000+i+1)
	}
	return b.String()
}

// randomPayloadFrames are TCP frames with random payloads (what iperf3
// sends) of 64 bytes, one MSS (1448) and the largest an IPv4 packet holds
// (65,495 bytes, called 64KiB).
func randomPayloadFrames() []struct {
	name  string
	frame []byte
	pay   int
} {
	rng := rand.New(rand.NewPCG(5, 6))
	var out []struct {
		name  string
		frame []byte
		pay   int
	}
	for _, n := range []struct {
		name string
		size int
	}{{"64B", 64}, {"1448B", 1448}, {"64KiB", 65535 - 40}} {
		pay := make([]byte, n.size)
		for i := range pay {
			pay[i] = byte(rng.Uint32())
		}
		out = append(out, struct {
			name  string
			frame []byte
			pay   int
		}{n.name, tcp4("10.0.0.1", "10.0.0.2", 40000, 5201, string(pay)).build(), n.size})
	}
	return out
}

// BenchmarkMatchPayload measures Match on random TCP payloads with the
// bench harness's 100 rules, 100 ET-shaped rules and 50,000 ET-shaped
// rules. The metric ns/B is CPU time per payload byte.
func BenchmarkMatchPayload(b *testing.B) {
	sets := []struct {
		name string
		text string
	}{
		{"bench100", benchHarnessRules(100)},
		{"et100", etRules(100, 1)},
		{"et50000", etRules(50_000, 1)},
	}
	for _, st := range sets {
		set, err := Parse(strings.NewReader(st.text), st.name)
		require.NoError(b, err)
		for _, f := range randomPayloadFrames() {
			b.Run(st.name+"/"+f.name, func(b *testing.B) {
				r := set.NewResult()
				b.ReportAllocs()
				runtime.GC()
				cpu := cpuTime(b)
				for b.Loop() {
					set.Match(f.frame, r)
				}
				b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/float64(f.pay), "cpu-ns/B")
				reportCPU(b, cpu)
			})
		}
	}
}
