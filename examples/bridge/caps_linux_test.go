//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// statusLines returns the lines of /proc/PID/task/TID/status for every thread of pid, by TID.
func statusLines(t *testing.T, pid int) map[string]map[string]string {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	require.NoError(t, err)
	out := map[string]map[string]string{}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited meanwhile
		}
		require.NoError(t, err)
		m := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				m[k] = strings.Join(strings.Fields(v), " ")
			}
		}
		out[task.Name()] = m
	}
	require.NotEmpty(t, out)
	return out
}

// withoutRace returns the GOFLAGS value flags without its -race flag.
func withoutRace(flags string) string {
	var keep []string
	for _, f := range strings.Fields(flags) {
		if f != "-race" && f != "-race=true" {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// noCgoBinary builds the bridge without cgo (only such a build can change credentials on every
// thread) and with the test hook that probes, from inside, what the dropped process can do.
func noCgoBinary(t *testing.T) string {
	bin := filepath.Join(binDir, "bridge-nocgo") // binDir is removed after the tests
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	build := goCommand("build", "-tags", "afbridge_testhook", "-o", bin, ".")
	if build.Env == nil {
		build.Env = os.Environ()
	}
	// -race needs cgo: a GOFLAGS=-race in the environment (as .ci/run sets it) must not reach
	// this build.
	build.Env = append(build.Env, "CGO_ENABLED=0", "GOFLAGS="+withoutRace(os.Getenv("GOFLAGS")))
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NoError(t, os.Chmod(binDir, 0o755)) // runnable by the unprivileged user below
	return bin
}

const (
	keptHex = "0000000000003000" // CAP_NET_ADMIN (12) and CAP_NET_RAW (13)
	nobody  = 65534
)

// TestLeastPrivilege reproduces issue 14 point 1 (a bridge that "dropped" its capabilities
// still ran as root and could write /etc/shadow) and shows the fix end to end: started as root,
// the bridge runs as nobody on every thread with only CAP_NET_RAW and CAP_NET_ADMIN,
// no_new_privs and a seccomp filter; from inside it cannot write root's files or start a
// program; and forwarding, rejects, EVE reopen, rule reload and a link re-bind all still work.
func TestLeastPrivilege(t *testing.T) {
	bin := noCgoBinary(t)
	tp := newTopo(t)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755)) // t.TempDir's parent is 0700
	require.NoError(t, os.Chmod(dir, 0o755))
	// As with Suricata's run-as: the log directory belongs to the run-as user, so that it can
	// create a new log after rotation; the rules must be readable by it.
	logDir := filepath.Join(dir, "log")
	require.NoError(t, os.Mkdir(logDir, 0o750))
	require.NoError(t, os.Chown(logDir, nobody, nobody))
	evePath := filepath.Join(logDir, "eve.json")
	rulesPath := writeFile(t, dir, "r.rules", `reject tcp any any -> any any (msg:"no forbidden"; content:"forbidden"; sid:20;)`+"\n")
	secret := writeFile(t, dir, "secret", "root only\n")
	require.NoError(t, os.Chmod(secret, 0o600))
	t.Setenv("AFBRIDGE_PROBE_WRITE", strings.Join([]string{secret, "/etc/shadow", "/etc/passwd", "/proc/sys/kernel/core_pattern", rulesPath}, ":"))

	p := startCmd(t, tp.bridge, bin, nil, "-i", "b0:b1", "-rules", rulesPath, "-eve", evePath, "-metrics", ":9101", "-stats", "500ms")
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	stderr := p.stderr.String()
	assert.Contains(t, stderr, "running as nobody (65534:65534) with CAP_NET_RAW and CAP_NET_ADMIN only, no_new_privs, seccomp")

	for tid, st := range statusLines(t, p.cmd.Process.Pid) {
		assert.Equal(t, "65534 65534 65534 65534", st["Uid"], "thread %s", tid)
		assert.Equal(t, "65534 65534 65534 65534", st["Gid"], "thread %s", tid)
		assert.Equal(t, "65534", st["Groups"], "thread %s", tid)
		assert.Equal(t, keptHex, st["CapEff"], "thread %s", tid)
		assert.Equal(t, keptHex, st["CapPrm"], "thread %s", tid)
		assert.Equal(t, keptHex, st["CapBnd"], "thread %s", tid)
		assert.Equal(t, "0000000000000000", st["CapInh"], "thread %s", tid)
		assert.Equal(t, "0000000000000000", st["CapAmb"], "thread %s", tid)
		assert.Equal(t, "1", st["NoNewPrivs"], "thread %s", tid)
		assert.Equal(t, "2", st["Seccomp"], "thread %s: filter mode", tid)
	}
	for _, f := range []string{secret, "/etc/shadow", "/etc/passwd", "/proc/sys/kernel/core_pattern", rulesPath} {
		assert.Regexp(t, `probe: write `+f+`: denied \(.*(permission denied|operation not permitted)\)`, stderr)
	}
	assert.Regexp(t, `probe: exec /bin/true: denied \(.*operation not permitted\)`, stderr, "execve is not in the allow-list")
	var st unix.Stat_t
	require.NoError(t, unix.Stat(evePath, &st))
	assert.EqualValues(t, nobody, st.Uid, "the EVE log is handed to the run-as user")

	// Forwarding and rejects.
	tp.ping(t)
	tp.mustPass(t, "/hello")
	_, err := tp.get("/forbidden", 5*time.Second)
	assert.ErrorIs(t, err, syscall.ECONNRESET)

	// Metrics under the seccomp filter: served, with the process collector's /proc reads.
	func() {
		c := &http.Client{Transport: demoTransport(tp.bridge), Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get("http://127.0.0.1:9101/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Regexp(t, `(?m)^afbridge_reject_frames_sent_total [1-9]`, string(body))
		assert.Regexp(t, `(?m)^afbridge_reject_frames_rate_limited_total 0`, string(body))
		assert.Regexp(t, `(?m)^process_open_fds \d`, string(body))
	}()
	p.waitFor(`stats b0->b1: `, 5*time.Second)

	// Log rotation and rule reload: SIGHUP as nobody.
	require.NoError(t, os.Rename(evePath, evePath+".1"))
	writeFile(t, dir, "r.rules", `reject tcp any any -> any any (msg:"no forbidden"; content:"forbidden"; sid:20;)`+"\n"+
		`drop tcp any any -> any any (msg:"blocked"; content:"blocked"; sid:21;)`+"\n")
	p.signal(syscall.SIGHUP)
	p.waitFor(`reloaded .*r.rules: 2 rules in force`, 10*time.Second)
	tp.mustBlock(t, "/blocked")
	findEVE(t, evePath, 21) // written to the new file, created by nobody
	require.NoError(t, unix.Stat(evePath, &st))
	assert.EqualValues(t, nobody, st.Uid)

	// Link re-bind: b1 re-created under its name; forwarding and rejects towards it go on.
	tp.bridge.Run("ip", "link", "del", "b1")
	_, s0 := testenv.Veth(t, tp.bridge, "b1", tp.server, "s0", nil)
	s0.Run(t, "ip", "addr", "add", serverIP+"/24", "dev", "s0")
	tp.http.Transport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	var err2 error
	for range 20 { // the re-bind is logged at info level, which the bridge does not print
		if _, err2 = tp.get("/hello", time.Second); err2 == nil {
			break
		}
	}
	require.NoError(t, err2, "forwarding after the re-bind")
	tp.ping(t)
	time.Sleep(1500 * time.Millisecond) // the reject sockets follow within a second
	_, err = tp.get("/forbidden", 5*time.Second)
	assert.ErrorIs(t, err, syscall.ECONNRESET)

	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second), p.stderr.String())
	stderr = p.stderr.String()
	assert.Regexp(t, `reject frames sent [1-9].*, reject sockets re-opened 1`, stderr)
	assert.NotContains(t, stderr, "failed:", "every reject, before and after the re-bind, was sent")
	assert.NotContains(t, stderr, "cannot re-open a reject socket")
}

// TestLeastPrivilegeUnprivileged: started as an unprivileged user given only the two
// capabilities it needs (ambient, set by the Go runtime before exec), the bridge keeps them,
// adds no_new_privs and seccomp, and bridges.
func TestLeastPrivilegeUnprivileged(t *testing.T) {
	bin := noCgoBinary(t)
	tp := newTopo(t)
	attr := &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: nobody, Gid: nobody},
		AmbientCaps: []uintptr{unix.CAP_NET_RAW, unix.CAP_NET_ADMIN},
	}
	p := startCmd(t, tp.bridge, bin, attr, "-i", "b0:b1")
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	assert.Contains(t, p.stderr.String(), "running as uid 65534 with CAP_NET_RAW and CAP_NET_ADMIN at most, no_new_privs, seccomp")
	for tid, st := range statusLines(t, p.cmd.Process.Pid) {
		assert.Equal(t, keptHex, st["CapEff"], "thread %s", tid)
		assert.Equal(t, keptHex, st["CapPrm"], "thread %s", tid)
		assert.Equal(t, "0000000000000000", st["CapInh"], "thread %s", tid)
		assert.Equal(t, "1", st["NoNewPrivs"], "thread %s", tid)
		assert.Equal(t, "2", st["Seccomp"], "thread %s", tid)
	}
	tp.ping(t)
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.exitCode(10*time.Second), p.stderr.String())
}

// TestRunAsLookup: names, numbers and groups resolve; root and unknown users are refused.
func TestRunAsLookup(t *testing.T) {
	for _, tc := range []struct {
		flag, user, group string
		uid, gid          int
		err               string
	}{
		{uid: nobody, gid: nobody}, // the default
		{flag: "nobody", uid: nobody, gid: nobody},
		{flag: "65534", uid: nobody, gid: nobody},
		{flag: "nobody:daemon", uid: nobody, gid: 1},
		{user: "nobody", group: "1", uid: nobody, gid: 1},
		{flag: "nobody", user: "root", uid: nobody, gid: nobody}, // the flag wins over the file
		{flag: "root", err: "must not be 0"},
		{user: "nobody", group: "root", err: "must not be 0"},
		{flag: "afbridge-no-such-user", err: `run-as user "afbridge-no-such-user"`},
		{flag: "nobody:afbridge-no-such-group", err: `run-as group "afbridge-no-such-group"`},
	} {
		c, err := lookupRunAs(tc.flag, tc.user, tc.group)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, "%+v", tc)
			continue
		}
		require.NoError(t, err, "%+v", tc)
		assert.Equal(t, tc.uid, c.uid, "%+v", tc)
		assert.Equal(t, tc.gid, c.gid, "%+v", tc)
	}
}

// TestDemoDropsPrivileges: --demo runs its bridge as a child process that drops privileges as
// the bridge always does (issue 14: the demo's bridge kept every capability on every thread).
func TestDemoDropsPrivileges(t *testing.T) {
	testenv.RequirePriv(t)
	p := startCmd(t, nil, noCgoBinary(t), nil, "--demo")
	code := p.exitCode(3 * time.Minute)
	out := p.stdout.String()
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, p.stderr.String())
	assert.Contains(t, out, "running as nobody (65534:65534) with CAP_NET_RAW and CAP_NET_ADMIN only, no_new_privs, seccomp")
	assert.Contains(t, out, "GET /forbidden  blocked")
	assert.Contains(t, out, "final stats")
}

// TestRunAsFromConfig: Suricata's run-as section in -c picks the user, and -run-as overrides it.
func TestRunAsFromConfig(t *testing.T) {
	bin := noCgoBinary(t)
	for _, tc := range []struct {
		name string
		args []string
		uid  string
	}{
		{"run-as section", nil, "1 1 1 1"},
		{"flag wins", []string{"-run-as", "nobody"}, "65534 65534 65534 65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t)
			dir := t.TempDir()
			require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
			require.NoError(t, os.Chmod(dir, 0o755))
			cfg := writeFile(t, dir, "suricata.yaml", strings.ReplaceAll(suricataYAML, "%[1]s", "")+"\nrun-as:\n  user: daemon\n  group: daemon\n")
			p := startCmd(t, tp.bridge, bin, nil, append([]string{"-c", cfg}, tc.args...)...)
			p.waitFor(banner2, 20*time.Second)
			for tid, st := range statusLines(t, p.cmd.Process.Pid) {
				assert.Equal(t, tc.uid, st["Uid"], "thread %s", tid)
				assert.Equal(t, keptHex, st["CapEff"], "thread %s", tid)
			}
			assert.NotContains(t, p.stderr.String(), `section "run-as" ignored`)
			tp.ping(t)
			p.signal(syscall.SIGTERM)
			require.Equal(t, 0, p.exitCode(30*time.Second), p.stderr.String())
		})
	}
}

// TestLeastPrivilegeBypass (issue 10 part 6): with flow bypass on, the bridge loads and attaches
// the fast path as root, then runs as nobody with CAP_BPF besides the two it always keeps (and
// nothing else; without CAP_BPF the kernel refuses the tcx attach below); when an interface is
// re-created, the new port gets its tcx program back and the re-bound sockets their socket
// filters, as nobody, and flows are bypassed again.
func TestLeastPrivilegeBypass(t *testing.T) {
	bin := noCgoBinary(t)
	tp := newTopo(t)
	bypassServer(t, tp)
	p := startCmd(t, tp.bridge, bin, nil, "-i", "b0:b1", "-bypass-after", "0", "-metrics", "127.0.0.1:9101")
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	assert.Contains(t, p.stderr.String(), "running as nobody (65534:65534) with CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF only, no_new_privs, seccomp")
	const withBPF = "0000008000003000" // keptHex and CAP_BPF (39)
	for tid, st := range statusLines(t, p.cmd.Process.Pid) {
		assert.Equal(t, "65534 65534 65534 65534", st["Uid"], "thread %s", tid)
		assert.Equal(t, withBPF, st["CapEff"], "thread %s", tid)
		assert.Equal(t, withBPF, st["CapPrm"], "thread %s", tid)
		assert.Equal(t, withBPF, st["CapBnd"], "thread %s", tid)
		assert.Equal(t, "1", st["NoNewPrivs"], "thread %s", tid)
		assert.Equal(t, "2", st["Seccomp"], "thread %s", tid)
	}
	before := untilBypassed(t, tp, dialBypass(t, tp.client), 0)["afbridge_bypass_bytes_total{b1->b0}"]

	tp.bridge.Run("ip", "link", "del", "b1")
	_, s0 := testenv.Veth(t, tp.bridge, "b1", tp.server, "s0", nil)
	s0.Run(t, "ip", "addr", "add", serverIP+"/24", "dev", "s0")
	var err error
	for range 20 { // the re-bind is logged at info level, which the bridge does not print
		if _, err = tp.client.Run("ping", "-n", "-c", "1", "-W", "1", serverIP); err == nil {
			break
		}
	}
	require.NoError(t, err, "forwarding after the re-bind")
	untilBypassed(t, tp, dialBypass(t, tp.client), before+bypassChunk/2) // after the re-bind
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second), p.stderr.String())
	out := p.stderr.String()
	assert.NotContains(t, out, "unavailable", "the fast path ran throughout")
	assert.Regexp(t, `bypass: flows ([2-9]|[1-9]\d+) `, out, "flows bypassed before and after the re-bind")
}
