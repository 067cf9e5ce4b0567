//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	// Demo scaffolding only: anonymous network namespaces on locked OS threads, the same helper
	// afbridge's own tests use. The bridge itself needs none of it; an internal package is
	// importable here because this module's path is under github.com/afbridge/afbridge.
	"github.com/afbridge/afbridge/internal/netns"
	"golang.org/x/sys/unix"
)

// The demo network: client c0 == b0 [bridge] b1 == s0 server, one /24 out of 198.18.0.0/15
// (RFC 2544's benchmarking range, never routed), with no route anywhere else.
const (
	demoClientIP = "198.18.0.1"
	demoServerIP = "198.18.0.2"
	demoPrefix   = "/24"
	demoPort     = "80"
	demoSize     = 128 << 20 // bytes downloaded through the bridge
	demoThreads  = 2
	demoRule     = `drop tcp any any -> any any (msg:"demo block"; content:"forbidden"; sid:1;)`
)

// demoTimeout bounds the blocked request: the client gives up quickly, as a user would.
const demoTimeout = 2 * time.Second

type demo struct {
	out io.Writer
	tty bool

	client, bridgeNS, server *netns.NS
	veths                    [][3]string // namespace label, the end to delete, the other end

	// The bridge runs as a child process, this binary with -i, so that it drops root as the
	// bridge always does while the demo keeps what it needs to ping, fetch and clean up.
	dir      string // rules and EVE log, readable by the run-as user
	rules    string
	evePath  string
	child    *exec.Cmd
	childErr lockedBuffer
	childEnd chan struct{}
	srv      *http.Server
	tr       *http.Transport
}

// runDemo runs the demonstration and returns the exit status.
func runDemo(stdout, stderr io.Writer) int {
	if msg := demoMissing(); msg != "" {
		fmt.Fprintf(stderr, "bridge: --demo: %s\n", msg)
		return exitRuntime
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{out: stdout, tty: isTerminal(stdout)}
	err := d.run(ctx)
	if err != nil {
		d.clearLine()
		if ctx.Err() != nil {
			d.say("\ninterrupted.")
		} else {
			d.say("\ndemo failed: %v", err)
		}
	}
	d.cleanup()
	if err != nil {
		return exitRuntime
	}
	return exitOK
}

// demoMissing says what the demo lacks to run, or "".
func demoMissing() string {
	var hdr unix.CapUserHeader
	var data [2]unix.CapUserData
	hdr.Version = unix.LINUX_CAPABILITY_VERSION_3
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return "cannot read the process's capabilities: " + err.Error()
	}
	for _, c := range []struct {
		bit  uint
		name string
	}{{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"}, {unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"}, {unix.CAP_NET_RAW, "CAP_NET_RAW"}} {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			return fmt.Sprintf("needs root: it creates network namespaces and veth pairs and opens AF_PACKET sockets (%s is missing); run it with sudo", c.name)
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "needs ip(8) to create veth pairs and addresses; install iproute2 (Debian and Ubuntu: apt-get install iproute2)"
	}
	return ""
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

// clearLine ends a progress line left open on a terminal.
func (d *demo) clearLine() {
	if d.tty {
		fmt.Fprint(d.out, "\r\033[K")
	}
}

func (d *demo) run(ctx context.Context) error {
	d.say("afbridge demo: an inline IPS bridge between two network namespaces\n")
	d.say("  client %s  c0 ==== b0 [bridge] b1 ==== s0  %s server\n", demoClientIP, demoServerIP)

	d.say("[1/5] network: namespaces client, bridge and server, veth pairs c0-b0 and b1-s0")
	if err := d.setupNet(ctx); err != nil {
		return err
	}

	d.say("[2/5] bridge between b0 and b1, inside the bridge namespace")
	if err := d.startBridge(ctx); err != nil {
		return err
	}

	d.say("[3/5] ping %s -> %s through the bridge", demoClientIP, demoServerIP)
	if err := d.startHTTP(); err != nil {
		return err
	}
	if err := d.ping(ctx); err != nil {
		return err
	}

	d.say("[4/5] HTTP download of %s from the server, through the bridge", byteCount(demoSize))
	if err := d.download(ctx); err != nil {
		return err
	}

	d.say("[5/5] a rule loaded while the bridge runs (hot swap, no frame lost)")
	if err := d.block(ctx); err != nil {
		return err
	}
	return d.finalStats(ctx)
}

// setupNet creates the three namespaces, the veth pairs and the addresses.
func (d *demo) setupNet(ctx context.Context) error {
	var err error
	for _, ns := range []struct {
		p    **netns.NS
		name string
	}{{&d.client, "client"}, {&d.bridgeNS, "bridge"}, {&d.server, "server"}} {
		if *ns.p, err = netns.New(ns.name); err != nil {
			return err
		}
		// No IPv6: the demo uses 198.18.0.0/15 addresses only, and no router solicitations
		// wander through the bridge.
		if err := (*ns.p).Do(func() error {
			for _, p := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
				if err := os.WriteFile(p, []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("namespace %s: disable IPv6: %w", ns.name, err)
		}
		if _, err := (*ns.p).Run("ip", "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	if err := d.veth(d.client, "c0", d.bridgeNS, "b0"); err != nil {
		return err
	}
	if err := d.veth(d.bridgeNS, "b1", d.server, "s0"); err != nil {
		return err
	}
	for _, c := range []struct {
		ns      *netns.NS
		dev, ip string
	}{{d.client, "c0", demoClientIP}, {d.server, "s0", demoServerIP}} {
		if _, err := c.ns.Run("ip", "addr", "add", c.ip+demoPrefix, "dev", c.dev); err != nil {
			return err
		}
	}
	links := []struct {
		ns  *netns.NS
		dev string
	}{{d.client, "c0"}, {d.bridgeNS, "b0"}, {d.bridgeNS, "b1"}, {d.server, "s0"}}
	for _, l := range links {
		if _, err := l.ns.Run("ip", "link", "set", l.dev, "up"); err != nil {
			return err
		}
	}
	for _, l := range links { // a veth end has carrier once both ends are up
		if err := waitUp(ctx, l.ns, l.dev); err != nil {
			return err
		}
	}
	d.say("      c0 %s%s, s0 %s%s; b0 and b1 have no address: the bridge is a wire", demoClientIP, demoPrefix, demoServerIP, demoPrefix)
	return nil
}

// veth creates a veth pair with nameA in a and nameB in b; ip(8) finds b's namespace as fd 3.
func (d *demo) veth(a *netns.NS, nameA string, b *netns.NS, nameB string) error {
	fd, err := unix.FcntlInt(uintptr(b.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("dup namespace fd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "netns")
	defer f.Close()
	err = a.Do(func() error {
		cmd := exec.Command("ip", "link", "add", nameA, "type", "veth", "peer", "name", nameB, "netns", "/proc/self/fd/3")
		cmd.ExtraFiles = []*os.File{f}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ip link add %s type veth peer name %s: %w: %s", nameA, nameB, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
	if err == nil {
		d.veths = append(d.veths, [3]string{a.Name(), nameA, nameB})
	}
	return err
}

// waitUp waits (5 s at most) until dev is operationally up with a real qdisc: until then the
// kernel drops what is sent on it.
func waitUp(ctx context.Context, ns *netns.NS, dev string) error {
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		var err error
		if out, err = ns.Run("ip", "-o", "link", "show", "dev", dev); err != nil {
			return err
		}
		if strings.Contains(out, "state UP") && !strings.Contains(out, "qdisc noop") {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not come up within 5s: %s", dev, strings.TrimSpace(out))
}

// startBridge starts the bridge b0 <-> b1 inside the bridge namespace, with no rules yet: this
// binary, run as a child with -i, -rules and -eve, which drops its privileges once its sockets
// are open as the bridge always does.
func (d *demo) startBridge(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start the bridge: %w", err)
	}
	if d.dir, err = os.MkdirTemp("", "afbridge-demo-"); err != nil {
		return err
	}
	// Readable by the run-as user: the rules are read again on SIGHUP, after the drop.
	if err := os.Chmod(d.dir, 0o755); err != nil {
		return err
	}
	d.rules, d.evePath = d.dir+"/demo.rules", d.dir+"/eve.json"
	if err := os.WriteFile(d.rules, nil, 0o644); err != nil {
		return err
	}
	d.child = exec.Command(exe, "-i", "b0:b1", "-threads", strconv.Itoa(demoThreads), "-rules", d.rules, "-eve", d.evePath)
	d.child.Stderr = &d.childErr
	d.childEnd = make(chan struct{})
	if err := d.bridgeNS.Do(d.child.Start); err != nil { // the child starts in the bridge namespace
		d.child = nil
		return fmt.Errorf("start the bridge: %w", err)
	}
	go func() { d.child.Wait(); close(d.childEnd) }()
	banner, err := d.waitChild(ctx, `(?m)^bridging b0 <-> b1 .*$`, 30*time.Second)
	if err != nil {
		return err
	}
	for _, l := range strings.Split(d.childErr.String(), "\n") {
		if strings.HasPrefix(l, "preflight: ") || strings.HasPrefix(l, "bridge: running as") || strings.HasPrefix(l, "bridge: privileges not dropped") {
			d.say("      %s", strings.TrimPrefix(l, "bridge: "))
		}
	}
	d.say("      %s", banner)
	return nil
}

// waitChild waits until the bridge's standard error matches re and returns the match.
func (d *demo) waitChild(ctx context.Context, re string, timeout time.Duration) (string, error) {
	rx := regexp.MustCompile(re)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if m := rx.FindString(d.childErr.String()); m != "" {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-d.childEnd:
			if m := rx.FindString(d.childErr.String()); m != "" {
				return m, nil
			}
			return "", fmt.Errorf("the bridge exited:\n%s", d.childErr.String())
		case <-deadline.C:
			return "", fmt.Errorf("the bridge did not say %q within %v:\n%s", re, timeout, d.childErr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startHTTP starts the server in the server namespace and a client whose connections are made
// in the client namespace: a socket stays in the namespace it was created in.
func (d *demo) startHTTP() error {
	var ln net.Listener
	if err := d.server.Do(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(demoServerIP, demoPort))
		return err
	}); err != nil {
		return fmt.Errorf("HTTP server: %w", err)
	}
	d.srv = &http.Server{Handler: demoHandler(), ReadHeaderTimeout: 10 * time.Second}
	go d.srv.Serve(ln)
	d.tr = demoTransport(d.client)
	return nil
}

// demoHandler serves /hello, /forbidden (which the demo's rule blocks) and /data?bytes=N: N
// bytes, with their CRC32C in the X-Crc32c trailer so the client can tell they arrived intact.
func demoHandler() http.Handler {
	block := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{'a', 'f', 'b', 'r', 'i', 'd', 'g', 'e'})
	_, _ = rng.Read(block)
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the server\n")
	})
	mux.HandleFunc("/forbidden", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "the bridge should not have let this through\n")
	})
	mux.HandleFunc("/data", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("bytes"))
		if err != nil || n < 0 {
			http.Error(w, "bytes=N wanted", http.StatusBadRequest)
			return
		}
		w.Header().Set("Trailer", "X-Crc32c") // chunked, so no Content-Length
		sum := crc32.New(crc32.MakeTable(crc32.Castagnoli))
		out := io.MultiWriter(w, sum)
		for left := n; left > 0; {
			k := min(left, len(block))
			if _, err := out.Write(block[:k]); err != nil {
				return
			}
			left -= k
		}
		w.Header().Set("X-Crc32c", strconv.FormatUint(uint64(sum.Sum32()), 16))
	})
	return mux
}

// demoTransport dials from inside ns, never through a proxy, one connection per request.
func demoTransport(ns *netns.NS) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() (err error) {
				c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp4", addr)
				return err
			})
			return c, err
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
}

var rttRE = regexp.MustCompile(`= ([0-9.]+)/([0-9.]+)/([0-9.]+)`)

// ping shows the round trip through the bridge: ping(8) when installed, else TCP handshakes.
func (d *demo) ping(ctx context.Context) error {
	if _, err := exec.LookPath("ping"); err != nil {
		return d.tcpPing(ctx)
	}
	var out []byte
	err := d.client.Do(func() (err error) {
		out, err = exec.CommandContext(ctx, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", demoServerIP).CombinedOutput()
		return err
	})
	if err != nil {
		return fmt.Errorf("ping through the bridge failed: %w\n%s", err, out)
	}
	if m := rttRE.FindSubmatch(out); m != nil {
		d.say("      3 of 3 replies, round trip min/avg/max %s/%s/%s ms", m[1], m[2], m[3])
	} else {
		d.say("      3 of 3 replies")
	}
	return nil
}

// tcpPing measures TCP connect times, one round trip each, when ping(8) is missing.
func (d *demo) tcpPing(ctx context.Context) error {
	var rtts []string
	for range 3 {
		var c net.Conn
		start := time.Now()
		err := d.client.Do(func() (err error) {
			c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "tcp4", net.JoinHostPort(demoServerIP, demoPort))
			return err
		})
		if err != nil {
			return fmt.Errorf("TCP connect through the bridge failed: %w", err)
		}
		rtts = append(rtts, fmt.Sprintf("%.3f", float64(time.Since(start).Microseconds())/1000))
		c.Close()
	}
	d.say("      (no ping(8) here) 3 TCP handshakes, round trips %s ms", strings.Join(rtts, ", "))
	return nil
}

// download fetches demoSize bytes, showing progress, and checks them against the server's CRC.
func (d *demo) download(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(demoServerIP, demoPort)+"/data?bytes="+strconv.Itoa(demoSize), nil)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := (&http.Client{Transport: d.tr}).Do(req)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	sum := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	buf := make([]byte, 256<<10)
	var got int64
	last, step := time.Now(), int64(demoSize/4)
	for {
		n, err := resp.Body.Read(buf)
		sum.Write(buf[:n])
		got += int64(n)
		switch {
		case d.tty && time.Since(last) > 100*time.Millisecond:
			last = time.Now()
			fmt.Fprintf(d.out, "\r      %s of %s  %s\033[K", byteCount(uint64(got)), byteCount(demoSize),
				bitRate(8*float64(got)/time.Since(start).Seconds()))
		case !d.tty && got >= step && got < demoSize:
			d.say("      %s of %s", byteCount(uint64(got)), byteCount(demoSize))
			step += demoSize / 4
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("download: after %s: %w", byteCount(uint64(got)), err)
		}
	}
	el := time.Since(start)
	d.clearLine()
	if got != demoSize {
		return fmt.Errorf("download: got %d bytes, want %d", got, demoSize)
	}
	want := resp.Trailer.Get("X-Crc32c")
	if have := strconv.FormatUint(uint64(sum.Sum32()), 16); have != want {
		return fmt.Errorf("download: CRC32C %s, the server sent %s: the data was corrupted on the way", have, want)
	}
	d.say("      %s in %s: %s, CRC32C matches", byteCount(demoSize), el.Round(time.Millisecond), bitRate(8*demoSize/el.Seconds()))
	return nil
}

// get requests path with timeout and returns the status line, or the error.
func (d *demo) get(ctx context.Context, path string, timeout time.Duration) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(demoServerIP, demoPort)+path, nil)
	if err != nil {
		return "", 0, err
	}
	start := time.Now()
	resp, err := (&http.Client{Transport: d.tr}).Do(req)
	if err != nil {
		return "", time.Since(start), err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.Status, time.Since(start), err
}

// block loads the demo rule by hot swap and shows one request blocked while others pass.
func (d *demo) block(ctx context.Context) error {
	if err := os.WriteFile(d.rules, []byte(demoRule+"\n"), 0o644); err != nil {
		return err
	}
	if err := d.child.Process.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	if _, err := d.waitChild(ctx, `reloaded .*: 1 rules in force`, 10*time.Second); err != nil {
		return err
	}
	d.say("      %s", demoRule)
	check := func(path, note string) error {
		status, el, err := d.get(ctx, path, demoTimeout)
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		d.say("      GET %-11s %s in %s%s", path, status, el.Round(10*time.Microsecond), note)
		return nil
	}
	if err := check("/hello", ""); err != nil {
		return err
	}
	status, el, err := d.get(ctx, "/forbidden", demoTimeout)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err == nil:
		return fmt.Errorf("GET /forbidden was not blocked: %s", status)
	}
	d.say("      GET %-11s blocked: no answer, the client gave up after %s", "/forbidden", el.Round(100*time.Millisecond))
	if err := check("/hello", ": other requests still pass"); err != nil {
		return err
	}

	// The writer flushes as soon as its queue is empty; wait a moment for it.
	var events []string
	for deadline := time.Now().Add(2 * time.Second); len(events) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		b, _ := os.ReadFile(d.evePath)
		events = strings.Split(strings.TrimSpace(string(b)), "\n")
		if events[0] == "" {
			events = nil
		}
	}
	if len(events) == 0 {
		return errors.New("no EVE event was logged for the blocked request")
	}
	d.say("      EVE event (one of %d: the client sent the request again, and each copy was dropped):", len(events))
	d.say("      %s", events[0])
	return nil
}

// finalStats stops the bridge gracefully (SIGTERM) and prints the counters it prints.
func (d *demo) finalStats(ctx context.Context) error {
	if err := d.child.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-d.childEnd:
	case <-time.After(drainTimeout + 5*time.Second):
		return fmt.Errorf("the bridge did not stop:\n%s", d.childErr.String())
	}
	out := d.childErr.String()
	i := strings.Index(out, "final stats")
	if i < 0 || !d.child.ProcessState.Success() {
		return fmt.Errorf("the bridge failed (%v):\n%s", d.child.ProcessState, out)
	}
	d.say("\n%s", strings.TrimRight(out[i:], "\n"))
	return nil
}

// cleanup removes everything the demo created, whatever step it reached, and says so.
func (d *demo) cleanup() {
	var done []string
	if d.tr != nil {
		d.tr.CloseIdleConnections()
	}
	if d.srv != nil {
		d.srv.Close()
	}
	if d.child != nil {
		select {
		case <-d.childEnd:
		default:
			d.child.Process.Kill() // our own child, by PID
			<-d.childEnd
		}
		done = append(done, "stopped the bridge")
	}
	if d.dir != "" {
		os.RemoveAll(d.dir)
	}
	nsByName := map[string]*netns.NS{}
	for _, ns := range []*netns.NS{d.client, d.bridgeNS, d.server} {
		if ns != nil {
			nsByName[ns.Name()] = ns
		}
	}
	var pairs []string
	for _, v := range d.veths {
		// Deleting one end deletes the pair; closing the namespace would too, but only once no
		// socket refers to it, so do it now.
		if _, err := nsByName[v[0]].Run("ip", "link", "del", v[1]); err != nil {
			d.say("cleanup: %v", err)
			continue
		}
		pairs = append(pairs, v[1]+"-"+v[2])
	}
	if len(pairs) > 0 {
		done = append(done, "deleted the veth pairs "+strings.Join(pairs, " and "))
	}
	var names []string
	for _, ns := range []*netns.NS{d.client, d.bridgeNS, d.server} {
		if ns != nil {
			ns.Close()
			names = append(names, ns.Name())
		}
	}
	if len(names) > 0 {
		done = append(done, "removed the namespaces "+strings.Join(names, ", "))
	}
	if len(done) == 0 {
		return
	}
	d.say("\ncleanup: %s; nothing was created outside them.", strings.Join(done, ", "))
}

// isTerminal reports whether w is a terminal, where a progress line can be redrawn.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// lockedBuffer is an io.Writer for the EVE writer whose contents the demo reads meanwhile.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
