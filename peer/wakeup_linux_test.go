//go:build linux

package peer_test

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// BenchmarkWakeUp measures the floor an idle bridge on another CPU adds to a round trip, which
// the README's latency figures are compared with: two threads ping-pong a byte through pipes,
// each asleep in read(2) until the other writes, with a 200 us pause between round trips so both
// CPUs go idle as they do between pings. An op is one round trip: two wake-ups, across CPUs 0
// and 1 ("cross-cpu") or on CPU 0 alone ("same-cpu"). p50-ns is the median round trip; ns/op
// includes the pause.
func BenchmarkWakeUp(b *testing.B) {
	var all unix.CPUSet
	require.NoError(b, unix.SchedGetaffinity(0, &all))
	if !all.IsSet(0) || !all.IsSet(1) {
		b.Skip("needs CPUs 0 and 1")
	}
	for _, tc := range []struct {
		name  string
		other int
	}{{"cross-cpu", 1}, {"same-cpu", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			var there, back [2]int
			require.NoError(b, unix.Pipe(there[:]))
			require.NoError(b, unix.Pipe(back[:]))
			b.Cleanup(func() {
				for _, fd := range []int{there[0], there[1], back[0], back[1]} {
					unix.Close(fd)
				}
			})
			n := b.N
			echoed := make(chan error, 1)
			go func() {
				// A pinned, locked goroutine ends with its thread, so the pinning ends with it.
				runtime.LockOSThread()
				if err := pin(tc.other); err != nil {
					echoed <- err
					return
				}
				buf := make([]byte, 1)
				for range n {
					if _, err := unix.Read(there[0], buf); err != nil {
						echoed <- err
						return
					}
					if _, err := unix.Write(back[1], buf); err != nil {
						echoed <- err
						return
					}
				}
				echoed <- nil
			}()
			rtts := make([]time.Duration, 0, n)
			done := make(chan error, 1)
			go func() {
				runtime.LockOSThread()
				if err := pin(0); err != nil {
					done <- err
					return
				}
				buf := make([]byte, 1)
				for range n {
					time.Sleep(200 * time.Microsecond)
					start := time.Now()
					if _, err := unix.Write(there[1], buf); err != nil {
						done <- err
						return
					}
					if _, err := unix.Read(back[0], buf); err != nil {
						done <- err
						return
					}
					rtts = append(rtts, time.Since(start))
				}
				done <- nil
			}()
			require.NoError(b, <-done)
			require.NoError(b, <-echoed)
			slices.Sort(rtts)
			b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds()), "p50-ns")
		})
	}
}

func pin(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}
