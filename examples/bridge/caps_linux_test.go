//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// capLines returns the Cap* lines of a process's /proc status.
func capLines(t *testing.T, pid int) map[string]string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	caps := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.HasPrefix(k, "Cap") {
			caps[k] = strings.TrimSpace(v)
		}
	}
	return caps
}

// TestLeastPrivilege runs a cgo-free build of the bridge (capabilities are per thread, and only
// such a build can change them on every thread) twice: as root, where it must shed every
// capability but CAP_NET_RAW and CAP_NET_ADMIN once its sockets are open, and as an unprivileged
// user given only those two (the child's capabilities are set with capset by the Go runtime
// before exec), where it must still bridge.
func TestLeastPrivilege(t *testing.T) {
	bin := filepath.Join(binDir, "bridge-nocgo") // binDir is removed after the tests
	build := goCommand("build", "-o", bin, ".")
	if build.Env == nil {
		build.Env = os.Environ()
	}
	build.Env = append(build.Env, "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.Chmod(binDir, 0o755)) // runnable by the unprivileged user below
	const kept = "0000000000003000"             // CAP_NET_ADMIN (12) and CAP_NET_RAW (13)

	for _, tc := range []struct {
		name string
		attr *syscall.SysProcAttr
	}{
		{"root drops the rest", nil},
		{"only the two it needs", &syscall.SysProcAttr{
			Credential:  &syscall.Credential{Uid: 65534, Gid: 65534},
			AmbientCaps: []uintptr{unix.CAP_NET_RAW, unix.CAP_NET_ADMIN},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t)
			p := startCmd(t, tp.bridge, bin, tc.attr, "-i", "b0:b1")
			p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
			caps := capLines(t, p.cmd.Process.Pid)
			t.Logf("capabilities after start: %v", caps)
			assert.Equal(t, kept, caps["CapEff"], "effective")
			assert.Equal(t, kept, caps["CapPrm"], "permitted")
			assert.Equal(t, "0000000000000000", caps["CapInh"], "inheritable")
			if tc.attr == nil {
				assert.Equal(t, kept, caps["CapBnd"], "bounding set")
			}
			assert.NotContains(t, p.stderr.String(), "capabilities not dropped")
			tp.ping(t)
			p.signal(syscall.SIGTERM)
			assert.Equal(t, 0, p.exitCode(10*time.Second), p.stderr.String())
		})
	}
}
