//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/netns"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// binDir holds the bridge binary the end-to-end tests run; it is built once, on first use.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "afbridge-bridge-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	if err := giveToBuilder(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { os.RemoveAll(dir) }))
}

// bridgeBinary builds the bridge with go build (with -race when the tests run with it, so the race
// detector watches the binary too) and returns its path.
func bridgeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(binDir, "bridge")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := goCommand(append(args, ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			binError = fmt.Errorf("go build: %w\n%s", err, out)
		}
		// Readable and runnable by an unprivileged user, for TestNoPrivilege.
		if binError == nil {
			binError = os.Chmod(binDir, 0o755)
		}
	})
	require.NoError(t, binError)
	return binPath
}

// goCommand returns the command "go args..." for building the bridge inside a test. It runs the
// toolchain that built this test (the tests may run as root through sudo, whose secure_path
// does not have the user's Go), and, when the tests run under sudo, as the user who ran sudo,
// with that user's home: so the build uses that user's module and build caches, needs no
// download, and leaves no root-owned files in them.
func goCommand(args ...string) *exec.Cmd {
	goBin := "go" // go test puts its own go first in PATH, unless sudo reset it
	//lint:ignore SA1019 a test binary is never built with -trimpath, so GOROOT is the toolchain that built it
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); runtime.GOROOT() != "" {
		if _, err := os.Stat(p); err == nil {
			goBin = p
		}
	}
	cmd := exec.Command(goBin, args...)
	if u := sudoUser(); u != nil {
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = append(os.Environ(), "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
	}
	return cmd
}

// sudoUser is the user who ran sudo to run these tests as root, or nil.
func sudoUser() *user.User {
	id := os.Getenv("SUDO_UID")
	if os.Getuid() != 0 || id == "" || id == "0" {
		return nil
	}
	u, err := user.LookupId(id)
	if err != nil {
		return nil
	}
	return u
}

// giveToBuilder makes dir writable by whoever goCommand builds as.
func giveToBuilder(dir string) error {
	u := sudoUser()
	if u == nil {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}

// proc is a bridge process started by a test.
type proc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error
}

// start runs the bridge with args inside ns (nil: the test's own namespace). The process is
// killed at cleanup if the test has not waited for it.
func start(t *testing.T, ns *netns.NS, args ...string) *proc {
	t.Helper()
	return startCmd(t, ns, bridgeBinary(t), nil, args...)
}

// startCmd is start for the binary bin, run with attr (credentials, capabilities; nil: as the
// test runs).
func startCmd(t *testing.T, ns *netns.NS, bin string, attr *syscall.SysProcAttr, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = attr
	startIt := func() error { return p.cmd.Start() }
	var err error
	if ns != nil {
		err = ns.Do(startIt) // the child inherits the namespace of the thread that forks it
	} else {
		err = startIt()
	}
	require.NoError(t, err)
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill() // our own child, by PID
			<-p.done
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("bridge %s\nstderr:\n%s\nstdout:\n%s", strings.Join(args, " "), p.stderr.String(), p.stdout.String())
		}
	})
	return p
}

// waitFor waits until stderr matches re and returns the match; it fails the test after timeout
// or if the process exits first.
func (p *proc) waitFor(re string, timeout time.Duration) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(timeout)
	for {
		if m := rx.FindString(p.stderr.String()); m != "" {
			return m
		}
		select {
		case <-p.done:
			if m := rx.FindString(p.stderr.String()); m != "" {
				return m
			}
			p.t.Fatalf("bridge exited (%v) before printing %q", p.err, re)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("bridge did not print %q within %v", re, timeout)
		}
	}
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig))
}

// exitCode waits (at most timeout) for the process to exit and returns its exit status.
func (p *proc) exitCode(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("bridge still running after %v", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(p.t, p.err)
	return 0
}

// runBridge runs the bridge to completion in the test's own namespace; for invocations that
// must fail before opening anything.
func runBridge(t *testing.T, args ...string) (code int, stderr string) {
	t.Helper()
	p := start(t, nil, args...)
	return p.exitCode(30 * time.Second), p.stderr.String()
}

// topo is client c0 (198.18.0.1) == b0 [bridge namespace] b1 == s0 server (198.18.0.2), with an
// HTTP server (demoHandler) on the server.
type topo struct {
	client, bridge, server *netns.NS
	http                   *http.Client
}

const (
	clientIP = demoClientIP
	serverIP = demoServerIP
)

func newTopo(t *testing.T) *topo {
	t.Helper()
	testenv.RequirePriv(t)
	tp := &topo{client: testenv.NS(t, "client"), bridge: testenv.NS(t, "bridge"), server: testenv.NS(t, "server")}
	c0, _ := testenv.Veth(t, tp.client, "c0", tp.bridge, "b0", nil) // offloads on, as by default
	_, s0 := testenv.Veth(t, tp.bridge, "b1", tp.server, "s0", nil)
	c0.Run(t, "ip", "addr", "add", clientIP+"/24", "dev", "c0")
	s0.Run(t, "ip", "addr", "add", serverIP+"/24", "dev", "s0")

	var ln net.Listener
	require.NoError(t, tp.server.Do(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(serverIP, demoPort))
		return err
	}))
	srv := &http.Server{Handler: demoHandler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tr := demoTransport(tp.client)
	t.Cleanup(tr.CloseIdleConnections)
	tp.http = &http.Client{Transport: tr}
	return tp
}

// get fetches path from the server through the bridge, giving up after timeout.
func (tp *topo) get(path string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(serverIP, demoPort)+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := tp.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(body), err
}

// mustPass requires GET path to succeed within 20 s: a bound for a hang, long enough for a SYN
// retransmission and a -race bridge on a loaded machine.
func (tp *topo) mustPass(t *testing.T, path string) {
	t.Helper()
	_, err := tp.get(path, 20*time.Second)
	require.NoError(t, err, "GET %s through the bridge", path)
}

// mustBlock requires GET path to time out: the bridge drops the request.
func (tp *topo) mustBlock(t *testing.T, path string) {
	t.Helper()
	body, err := tp.get(path, 1500*time.Millisecond)
	require.Error(t, err, "GET %s should be blocked, got %q", path, body)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "GET %s should time out, got %v", path, err)
}

// ping runs ping(8) from the client to the server.
func (tp *topo) ping(t *testing.T) {
	t.Helper()
	testenv.RequireTool(t, "ping")
	out, err := tp.client.Run("ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", serverIP)
	require.NoError(t, err, out)
}

// writeFile writes a file in dir and returns its path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}
