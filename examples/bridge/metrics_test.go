//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsAddr: a port alone binds loopback; an explicit host is kept.
func TestMetricsAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{":9101", "127.0.0.1:9101"},
		{"127.0.0.1:9101", "127.0.0.1:9101"},
		{"0.0.0.0:9101", "0.0.0.0:9101"},
		{"[::]:9101", "[::]:9101"},
		{"[::1]:9101", "[::1]:9101"},
		{"localhost:9101", "localhost:9101"},
	} {
		assert.Equal(t, tc.want, metricsAddr(tc.in), tc.in)
	}
	m, err := listenMetrics(":0")
	require.NoError(t, err)
	defer m.close()
	assert.True(t, m.ln.Addr().(*net.TCPAddr).IP.IsLoopback(), "%v", m.ln.Addr())
}

// TestMetricsIdleConns reproduces issue 14's descriptor exhaustion: 20,000 idle keep-alive
// connections to -metrics used up the file limit, and SIGHUP then failed. Now at most
// metricsMaxConns are accepted, the rest wait in the kernel, and SIGHUP still reloads.
func TestMetricsIdleConns(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	rulesPath := writeFile(t, dir, "r.rules", `alert tcp any any -> any any (msg:"x"; content:"x"; sid:1;)`+"\n")
	p := start(t, tp.bridge, "-i", "b0:b1", "-rules", rulesPath, "-eve", dir+"/eve.json", "-metrics", ":9101")
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
		require.NoError(t, err)
		return len(ents)
	}
	before := fds()

	const idle = 400 // bounded: well past the limit, far below the file limit
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	require.NoError(t, tp.bridge.Do(func() error {
		for range idle {
			c, err := net.DialTimeout("tcp", "127.0.0.1:9101", 5*time.Second)
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}))
	// Give the server the chance to accept all it would; the count cannot exceed the limit.
	var after int
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		after = fds()
	}
	t.Logf("descriptors: %d before, %d with %d idle connections", before, after, idle)
	assert.LessOrEqual(t, after, before+metricsMaxConns, "accepted connections are bounded")

	p.signal(syscall.SIGHUP)
	p.waitFor(`reloaded .*r.rules: 1 rules in force`, 10*time.Second)
	assert.NotContains(t, p.stderr.String(), "too many open files")

	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.exitCode(30*time.Second), p.stderr.String())
}
