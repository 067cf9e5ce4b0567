//go:build linux

package peer_test

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exampleTopo builds what the package's examples expect: a namespace with interfaces eth0 and
// eth1, each the end of a veth pair whose other end sits in a namespace of its own.
func exampleTopo(t *testing.T) (bridge testenv.Link) {
	t.Helper()
	client, br, server := testenv.NS(t, "client"), testenv.NS(t, "bridge"), testenv.NS(t, "server")
	testenv.Veth(t, client, "c0", br, "eth0", nil)
	eth1, _ := testenv.Veth(t, br, "eth1", server, "s0", nil)
	return eth1
}

// TestExamples runs the bodies of the examples that need privileges and interfaces named eth0
// and eth1, inside a namespace that has them, and checks what they print.
func TestExamples(t *testing.T) {
	testenv.RequirePriv(t)

	t.Run("Example", func(t *testing.T) {
		eth1 := exampleTopo(t)
		done := make(chan string, 1)
		go func() {
			var out string
			_ = eth1.NS.Do(func() error { out = testenv.CaptureStdout(t, Example); return nil })
			done <- out
		}()
		// Example waits for SIGINT or SIGTERM; its handler is registered before Run opens the
		// sockets, so once they exist the signal goes to it, not to the test process.
		require.Eventually(t, func() bool {
			var n int
			_ = eth1.NS.Do(func() error {
				b, err := os.ReadFile("/proc/thread-self/net/packet")
				n = strings.Count(string(b), "\n") - 1
				return err
			})
			return n >= 8 // two workers: a ring socket and a send socket per worker and side
		}, 30*time.Second, 10*time.Millisecond, "the example's bridge opened its sockets")
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
		select {
		case out := <-done:
			assert.Contains(t, out, "A->B: ")
			assert.Contains(t, out, "B->A: ")
		case <-time.After(30 * time.Second):
			t.Fatal("Example did not stop on SIGTERM")
		}
	})

	t.Run("ExampleBridge_Stats", func(t *testing.T) {
		eth1 := exampleTopo(t)
		var out string
		require.NoError(t, eth1.NS.Do(func() error { out = testenv.CaptureStdout(t, ExampleBridge_Stats); return nil }))
		assert.Contains(t, out, "1 workers\n")
		assert.Equal(t, 3, strings.Count(out, "A->B: "), out)
		assert.Equal(t, 3, strings.Count(out, "B->A: "), out)
	})

	t.Run("ExamplePreflight", func(t *testing.T) {
		eth1 := exampleTopo(t)
		eth1.Run(t, "ip", "addr", "add", "198.18.0.9/24", "dev", "eth1")
		var out string
		require.NoError(t, eth1.NS.Do(func() error { out = testenv.CaptureStdout(t, ExamplePreflight); return nil }))
		assert.Contains(t, out, "critical: eth1: has IP address 198.18.0.9/24: the host itself answers and sends on a bridged port; fix: ip addr del 198.18.0.9/24 dev eth1")
	})
}
