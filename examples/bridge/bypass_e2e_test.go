//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/netns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	bypassPort  = "9200"
	bypassChunk = 1 << 20
	marker      = "BYPASS-MARKER"
)

// bypassServer serves one connection at a time in the server namespace. Each request is a line:
// "D" answers with the next bypassChunk bytes of a seeded stream, written application-limited
// (16 KiB at a time with a pause, through a 128 KiB send buffer: the fast path takes a flow over
// at a pause in its traffic, so a transfer that keeps the ring full would stay on the bridge);
// any other line is echoed back.
func bypassServer(t *testing.T, tp *topo) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, tp.server.Do(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(serverIP, bypassPort))
		return err
	}))
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close() // its client's FIN may never come through a stopped or dropping bridge
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serveBypass(c)
			}()
		}
	}()
}

// serveBypass answers the requests of one connection until it ends.
func serveBypass(c net.Conn) {
	c.(*net.TCPConn).SetWriteBuffer(128 << 10)
	rng := rand.NewChaCha8([32]byte{'b', 'y', 'p', 'a', 's', 's'})
	buf := make([]byte, 16<<10)
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if line != "D\n" {
			c.Write([]byte(line))
			continue
		}
		for left := bypassChunk; left > 0; left -= len(buf) {
			_, _ = rng.Read(buf)
			if _, err := c.Write(buf); err != nil {
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
}

// bypassClient is the client end of a bypassServer connection; it checks every byte.
type bypassClient struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	rng  *rand.ChaCha8
	want []byte
	got  []byte
	n    int // bytes verified
}

func dialBypass(t *testing.T, ns *netns.NS) *bypassClient {
	t.Helper()
	var c net.Conn
	require.NoError(t, ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", net.JoinHostPort(serverIP, bypassPort), 5*time.Second)
		return err
	}))
	t.Cleanup(func() { c.Close() })
	return &bypassClient{t: t, c: c, r: bufio.NewReader(c), rng: rand.NewChaCha8([32]byte{'b', 'y', 'p', 'a', 's', 's'}),
		want: make([]byte, 64<<10), got: make([]byte, 64<<10)}
}

// chunk fetches one chunk and checks it against the stream.
func (b *bypassClient) chunk() {
	b.t.Helper()
	require.NoError(b.t, b.c.SetDeadline(time.Now().Add(30*time.Second)))
	_, err := b.c.Write([]byte("D\n"))
	require.NoError(b.t, err)
	for left := bypassChunk; left > 0; left -= len(b.want) {
		_, _ = b.rng.Read(b.want)
		_, err := io.ReadFull(b.r, b.got)
		require.NoError(b.t, err, "after %d bytes", b.n)
		require.True(b.t, bytes.Equal(b.want, b.got), "bytes %d to %d differ", b.n, b.n+len(b.got))
		b.n += len(b.got)
	}
}

// echo sends line and reports whether it came back within wait.
func (b *bypassClient) echo(line string, wait time.Duration) bool {
	b.t.Helper()
	require.NoError(b.t, b.c.SetDeadline(time.Now().Add(wait)))
	_, err := b.c.Write([]byte(line + "\n"))
	require.NoError(b.t, err)
	got, err := b.r.ReadString('\n')
	if err != nil {
		return false
	}
	require.Equal(b.t, line+"\n", got)
	return true
}

// scrape reads the bridge's metrics and sums each named series over its labels, by name and,
// for the labels given in by, by name and label value: "afbridge_bypass_bytes_total{b1->b0}".
func scrape(t *testing.T, tp *topo) map[string]float64 {
	t.Helper()
	c := &http.Client{Transport: demoTransport(tp.bridge), Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://127.0.0.1:9101/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	line := regexp.MustCompile(`^(afbridge_\w+)(?:\{([^}]*)\})? (\S+)$`)
	dir := regexp.MustCompile(`direction="([^"]+)"`)
	for _, l := range strings.Split(string(body), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		require.NoError(t, err)
		out[m[1]] += v
		if d := dir.FindStringSubmatch(m[2]); d != nil {
			out[m[1]+"{"+d[1]+"}"] += v
		}
	}
	return out
}

// offloadsOff turns the offloads off on every port of the topology, both veth ends.
func offloadsOff(t *testing.T, tp *topo) {
	t.Helper()
	for _, p := range []struct {
		ns  *netns.NS
		dev string
	}{{tp.client, "c0"}, {tp.bridge, "b0"}, {tp.bridge, "b1"}, {tp.server, "s0"}} {
		out, err := p.ns.Run("ethtool", "-K", p.dev, "rx", "off", "tx", "off", "tso", "off", "gso", "off", "gro", "off")
		require.NoError(t, err, "%s", out)
	}
}

// TestBypassAfter (issue 10 part 6): with -bypass-after, a checksum-verified TCP transfer moves
// to the kernel fast path once it has passed that many bytes, offloads on and off: from then
// on the bridge's RX counters stop growing while the transfer completes intact, and the
// fast-path counters account for the rest. A drop rule does nothing to the bypassed flow
// until SIGHUP withdraws it (and reloads the rules); then the flow is judged again and
// dropped. Per direction, received = forwarded + dropped still holds.
func TestBypassAfter(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("offloads-off=%v", off), func(t *testing.T) {
			tp := newTopo(t)
			if off {
				offloadsOff(t, tp)
			}
			bypassServer(t, tp)
			rulesPath := writeFile(t, t.TempDir(), "r.rules", `drop tcp any any -> any any (msg:"marker"; content:"`+marker+`"; sid:7;)`+"\n")
			p := start(t, tp.bridge, "-i", "b0:b1", "-bypass-after", "65536", "-rules", rulesPath, "-metrics", "127.0.0.1:9101", "-stats", "500ms")
			p.waitFor(`bridging b0 <-> b1`, 20*time.Second)

			cl := dialBypass(t, tp.client)
			// The flow passes 64 KiB, is bypassed, and hands over at a pause between chunks.
			m := untilBypassed(t, tp, cl, 0)
			assert.Equal(t, 1.0, m["afbridge_bypass_active"])
			assert.Equal(t, 1.0, m["afbridge_bypass_flows"])
			rx1, fp1 := m["afbridge_received_bytes_total"], m["afbridge_bypass_bytes_total"]
			const more = 8
			for range more {
				cl.chunk()
			}
			m = scrape(t, tp)
			rx2, fp2 := m["afbridge_received_bytes_total"], m["afbridge_bypass_bytes_total"]
			assert.Less(t, rx2-rx1, float64(64<<10), "the bridge received (almost) nothing of the bypassed transfer")
			assert.GreaterOrEqual(t, fp2-fp1, float64(more*bypassChunk), "the fast path forwarded it all")
			assert.Positive(t, m["afbridge_bypassed_frames_total"], "frames the verdict said Bypass for")

			// The drop rule never sees the bypassed flow: the marker passes.
			require.True(t, cl.echo(marker+" on the fast path", 10*time.Second), "the marker passes on the fast path")
			// SIGHUP: the rules are reloaded and the flow withdrawn; the marker is judged and dropped.
			p.signal(syscall.SIGHUP)
			p.waitFor(`SIGHUP: b0 <-> b1: 1 bypassed flows withdrawn, the new rules judge them`, 10*time.Second)
			assert.False(t, cl.echo(marker+" judged again", 2*time.Second), "the marker is dropped once the flow is withdrawn")

			p.signal(syscall.SIGTERM)
			require.Equal(t, 0, p.exitCode(30*time.Second))
			out := p.stderr.String()
			assert.Regexp(t, `stats bypass b0 <-> b1: flows \d+, new \d+, expired \d+, closed \d+, evicted \d+, withdrawn \d+; fast path b0->b1 \S+ frames/s \S+ [kMG]?bit/s; fast path b1->b0 `, out)
			assert.Regexp(t, `bypass: flows [1-9]\d* \(current \d+, expired \d+, closed \d+, evicted \d+, withdrawn [1-9]\d*\), fast path b0->b1 [1-9]\d* frames .*, fast path b1->b0 [1-9]\d* frames`, out)
			assert.Regexp(t, `rules 1, alerts [1-9]`, out)
			for _, d := range []string{"b0->b1", "b1->b0"} {
				c := regexp.MustCompile(d + `: received (\d+), forwarded (\d+), dropped (\d+),.*bypassed (\d+)`).FindStringSubmatch(out)
				require.NotNil(t, c, "final line for %s in %s", d, out)
				n := make([]int, 4)
				for i := range n {
					n[i], _ = strconv.Atoi(c[i+1])
				}
				assert.Equal(t, n[0], n[1]+n[2], "%s: received = forwarded + dropped", d)
				assert.Positive(t, n[3])
			}
			assert.Regexp(t, `b0->b1: received \d+, forwarded \d+, dropped [1-9]`, out, "the marker was dropped")
		})
	}
}

// TestBypassRule: a pass rule with the bypass option turns the fast path on by itself and hands
// the flows it passes to it; other flows are still judged.
func TestBypassRule(t *testing.T) {
	tp := newTopo(t)
	bypassServer(t, tp)
	rulesPath := writeFile(t, t.TempDir(), "r.rules",
		`pass tcp any any <> any `+bypassPort+` (msg:"trusted"; bypass; sid:3;)`+"\n"+
			`drop tcp any any -> any any (msg:"forbidden"; content:"forbidden"; sid:4;)`+"\n")
	p := start(t, tp.bridge, "-i", "b0:b1", "-rules", rulesPath, "-metrics", "127.0.0.1:9101")
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	cl := dialBypass(t, tp.client)
	untilBypassed(t, tp, cl, 0)
	cl.chunk()
	assert.True(t, cl.echo("forbidden, but trusted", 10*time.Second), "the bypassed flow is not judged")
	tp.mustBlock(t, "/forbidden") // another flow is
	tp.mustPass(t, "/hello")
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	assert.Regexp(t, `bypass: flows [1-9]`, p.stderr.String())
}

// TestBypassYAML: bypass: yes in an af-packet entry turns the fast path on for its bridge (and
// defrag, which it cannot be combined with, off with a note); a bypass rule loaded by SIGHUP
// then uses it.
func TestBypassYAML(t *testing.T) {
	tp := newTopo(t)
	bypassServer(t, tp)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "suricata.yaml", strings.ReplaceAll(suricataYAML, "%[1]s", "    bypass: yes"))
	rulesPath := writeFile(t, dir, "r.rules", `alert tcp any any -> any any (msg:"nothing"; content:"never-sent"; sid:1;)`+"\n")
	p := start(t, tp.bridge, "-c", cfg, "-rules", rulesPath, "-metrics", "127.0.0.1:9101")
	p.waitFor(banner2, 20*time.Second)
	assert.Regexp(t, `note: .*suricata.yaml:\d+,\d+: b0 <-> b1: defrag turned off`, p.stderr.String())
	m := scrape(t, tp)
	assert.Equal(t, 1.0, m["afbridge_bypass_active"], "bypass: yes loads the fast path")

	writeFile(t, dir, "r.rules", `pass tcp any any <> any `+bypassPort+` (bypass; sid:3;)`+"\n")
	p.signal(syscall.SIGHUP)
	p.waitFor(`SIGHUP: b0 <-> b1: 0 bypassed flows withdrawn`, 10*time.Second)
	cl := dialBypass(t, tp.client)
	untilBypassed(t, tp, cl, 0)
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	assert.Regexp(t, `bypass: flows [1-9]`, p.stderr.String())
}

// TestBypassTap: in tap mode, where every frame is forwarded anyway, a bypassed flow still moves
// to the fast path: inspection stops, forwarding goes on.
func TestBypassTap(t *testing.T) {
	tp := newTopo(t)
	bypassServer(t, tp)
	p := start(t, tp.bridge, "-i", "b0:b1", "-mode", "tap", "-bypass-after", "0", "-metrics", "127.0.0.1:9101")
	p.waitFor(`bridging b0 <-> b1 \(tap`, 20*time.Second)
	cl := dialBypass(t, tp.client)
	untilBypassed(t, tp, cl, 0)
	cl.chunk()
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	assert.Regexp(t, `bypass: flows [1-9]\d* .*fast path b1->b0 [1-9]\d* frames`, p.stderr.String())
}

// TestBypassUnavailable: when the kernel refuses the fast path (here: started without CAP_BPF and
// CAP_SYS_ADMIN, which creating a BPF map needs), the bridge says so once, clearly, and runs
// with Bypass meaning Pass: flows the verdict bypasses keep being forwarded, by the bridge.
func TestBypassUnavailable(t *testing.T) {
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	tp := newTopo(t)
	bypassServer(t, tp)
	p := startCmd(t, tp.bridge, setpriv, nil, "--bounding-set", "-bpf,-sys_admin,-perfmon", "--",
		bridgeBinary(t), "-i", "b0:b1", "-bypass-after", "0", "-metrics", "127.0.0.1:9101")
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	p.waitFor(`kernel fast path unavailable: Bypass verdicts forward as Pass.*(CAP_BPF|permission|not permitted)`, 5*time.Second)
	cl := dialBypass(t, tp.client)
	for range 4 {
		cl.chunk()
	}
	require.True(t, cl.echo("still forwarded", 10*time.Second), "a bypassed flow is forwarded by the bridge")
	tp.mustPass(t, "/hello")
	m := scrape(t, tp)
	assert.Equal(t, 0.0, m["afbridge_bypass_active"], "the fast path does not run")
	assert.Positive(t, m["afbridge_bypassed_frames_total"], "the verdict said Bypass")
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	out := p.stderr.String()
	assert.Equal(t, 1, strings.Count(out, "kernel fast path unavailable"), "said once: %s", out)
	assert.Contains(t, out, "bypass: the kernel fast path did not run")
}

// untilBypassed sends chunks over cl, at most 20, until the fast path has forwarded more than
// after bytes towards the client, and returns the metrics then. A flow hands over at a pause
// between chunks in which the bridge has caught up with it.
func untilBypassed(t *testing.T, tp *topo, cl *bypassClient, after float64) map[string]float64 {
	t.Helper()
	var m map[string]float64
	for i := 0; ; i++ {
		require.Less(t, i, 20, "the flow never took the fast path: %v", m)
		cl.chunk()
		if m = scrape(t, tp); m["afbridge_bypass_bytes_total{b1->b0}"] > after {
			return m
		}
	}
}
