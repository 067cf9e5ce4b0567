//go:build linux

package bypass

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkPrograms reports the kernel's own timing (BPF_PROG_TEST_RUN, 10,000 runs a
// measurement) of the socket filter and the tc program per frame, for a 64-byte UDP frame whose
// flow is not in the map and one whose flow is live.
func BenchmarkPrograms(b *testing.B) {
	p := openPath(b, nil)
	require.NoError(b, p.ports.Put(uint32(testIn), portValue{Peer: testOut, Side: 0}))
	tap, err := p.Filter(A, 0, nil)
	require.NoError(b, err)
	b.Cleanup(func() { tap.Close() })
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	frame := udpFrame(mac, mac, ipA, ipB, 1234, testPort, 1, 0)
	frame = append(frame, make([]byte, 64-len(frame))...)
	k := keyOf(b, frame)
	for _, live := range []bool{false, true} {
		name := "miss"
		if live {
			name = "live"
			v := flowValue{LastSeen: monoNow(), Live: [2]uint32{1, 1}}
			require.NoError(b, p.flows.Put(&k, &v))
		}
		b.Run("filter/"+name, func(b *testing.B) {
			for b.Loop() {
				_, d, err := tap.prog.Benchmark(append(make([]byte, 14), frame...), 10000, nil)
				require.NoError(b, err)
				b.ReportMetric(float64(d.Nanoseconds()), "ns/frame")
			}
		})
		b.Run("tc/"+name, func(b *testing.B) {
			for b.Loop() {
				_, d, err := p.tc.Benchmark(frame, 10000, nil)
				require.NoError(b, err)
				b.ReportMetric(float64(d.Nanoseconds()), "ns/frame")
			}
		})
	}
}
