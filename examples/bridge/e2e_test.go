//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const banner2 = `bridging b0 <-> b1 \(ips, 2 workers\)`

// TestForward: -i forwards ping and an HTTP download, offloads on, with -stats and -metrics;
// SIGTERM stops it with exit 0 and the final counters.
func TestForward(t *testing.T) {
	tp := newTopo(t)
	p := start(t, tp.bridge, "-i", "b0:b1", "-threads", "2", "-stats", "200ms", "-metrics", "127.0.0.1:9101")
	p.waitFor("(?m)^"+banner2+"$", 20*time.Second)

	tp.ping(t)
	const size = 16 << 20
	download(t, tp, size)

	// Stats lines are per direction, with rates, over the interval.
	p.waitFor(`stats b1->b0: \S+ frames/s \S+ [kMG]?bit/s, forwarded \d+ dropped 0 would-drop 0 kernel-packets \d+ kernel-drops \d+`, 5*time.Second)
	p.waitFor(`stats ports: b0 up \(downs 0, removals 0, rebinds 0\), b1 up \(downs 0, removals 0, rebinds 0\)`, 5*time.Second)

	// The metrics listener lives in the bridge's namespace, with the process.
	var body string
	func() {
		c := &http.Client{Transport: demoTransport(tp.bridge), Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get("http://127.0.0.1:9101/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		body = string(b)
	}()
	for _, w := range []string{"0", "1"} {
		for _, d := range []string{"b0->b1", "b1->b0"} {
			assert.Regexp(t, `afbridge_forwarded_frames_total\{direction="`+d+`",worker="`+w+`"\} \d`, body)
			assert.Regexp(t, `afbridge_received_bytes_total\{direction="`+d+`",worker="`+w+`"\} \d`, body)
			assert.Regexp(t, `afbridge_kernel_drops_total\{direction="`+d+`",worker="`+w+`"\} \d`, body)
			assert.Regexp(t, `afbridge_kernel_frames_total\{direction="`+d+`",worker="`+w+`"\} \d`, body)
			assert.Regexp(t, `afbridge_port_down_frames_total\{direction="`+d+`",worker="`+w+`"\} 0`, body)
		}
		assert.Regexp(t, `afbridge_drops_total\{direction="b0->b1",reason="rules"\} 0`, body)
		assert.Regexp(t, `afbridge_drops_total\{direction="b1->b0",reason="kernel-ring-full"\} \d`, body)
	}
	for _, port := range []string{"b0", "b1"} {
		assert.Regexp(t, `afbridge_port_up\{interface="`+port+`"\} 1`, body)
		assert.Regexp(t, `afbridge_port_downs_total\{interface="`+port+`"\} 0`, body)
		assert.Regexp(t, `afbridge_port_rebinds_total\{interface="`+port+`"\} 0`, body)
	}
	var down float64
	for _, m := range regexp.MustCompile(`(?m)^afbridge_received_bytes_total\{direction="b1->b0",worker="\d"\} (\S+)$`).FindAllStringSubmatch(body, -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		require.NoError(t, err)
		down += v
	}
	assert.Greater(t, down, float64(size), "the download's bytes are counted")

	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	out := p.stderr.String()
	assert.Contains(t, out, "final stats, b0 <-> b1 after")
	m := regexp.MustCompile(`b1->b0: received (\d+), forwarded (\d+), dropped 0`).FindStringSubmatch(out)
	require.NotNil(t, m, "final stats line for b1->b0")
	assert.Equal(t, m[1], m[2], "every frame received was forwarded")
	n, _ := strconv.Atoi(m[2])
	assert.Positive(t, n)
}

// download fetches size bytes through the bridge and checks them against the server's CRC32C.
func download(t *testing.T, tp *topo, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(serverIP, demoPort)+"/data?bytes="+strconv.Itoa(size), nil)
	require.NoError(t, err)
	resp, err := tp.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	sum := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	n, err := io.Copy(sum, resp.Body)
	require.NoError(t, err)
	require.EqualValues(t, size, n)
	require.Equal(t, resp.Trailer.Get("X-Crc32c"), strconv.FormatUint(uint64(sum.Sum32()), 16), "bytes intact")
}

// eveEvent is what the tests read back from the EVE file.
type eveEvent struct {
	Timestamp string  `json:"timestamp"`
	EventType string  `json:"event_type"`
	InIface   string  `json:"in_iface"`
	SrcIP     string  `json:"src_ip"`
	SrcPort   *uint16 `json:"src_port"`
	DestIP    string  `json:"dest_ip"`
	DestPort  *uint16 `json:"dest_port"`
	Proto     string  `json:"proto"`
	Alert     struct {
		Action      string `json:"action"`
		SignatureID uint32 `json:"signature_id"`
		Rev         uint32 `json:"rev"`
		Signature   string `json:"signature"`
	} `json:"alert"`
}

// readEVE parses every line of the EVE file; each must be one JSON object.
func readEVE(t *testing.T, path string) []eveEvent {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var evs []eveEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev eveEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), "EVE line %q", sc.Text())
		evs = append(evs, ev)
	}
	require.NoError(t, sc.Err())
	return evs
}

// findEVE returns the first event of sid, failing the test if there is none within 5 s.
func findEVE(t *testing.T, path string, sid uint32) eveEvent {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			for _, ev := range readEVE(t, path) {
				if ev.Alert.SignatureID == sid {
					return ev
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no EVE event for sid %d in %s", sid, path)
		}
	}
}

var eveTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d{4}$`)

// checkEVE asserts the layout of an event for a request from the client to the server.
func checkEVE(t *testing.T, ev eveEvent, action string, sid, rev uint32, msg string) {
	t.Helper()
	assert.Regexp(t, eveTime, ev.Timestamp)
	assert.Equal(t, "alert", ev.EventType)
	assert.Equal(t, "b0", ev.InIface)
	assert.Equal(t, clientIP, ev.SrcIP)
	assert.Equal(t, serverIP, ev.DestIP)
	if assert.NotNil(t, ev.SrcPort) && assert.NotNil(t, ev.DestPort) {
		assert.NotZero(t, *ev.SrcPort)
		assert.Equal(t, demoPort, strconv.Itoa(int(*ev.DestPort)))
	}
	assert.Equal(t, "TCP", ev.Proto)
	assert.Equal(t, action, ev.Alert.Action)
	assert.Equal(t, sid, ev.Alert.SignatureID)
	assert.Equal(t, rev, ev.Alert.Rev)
	assert.Equal(t, msg, ev.Alert.Signature)
}

// TestRulesDrop: a content drop blocks the matching request while others pass, an alert rule lets
// its request through, and both are in the EVE file. SIGINT stops the bridge with exit 0.
func TestRulesDrop(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	rulesPath := writeFile(t, dir, "local.rules", `# test rules
alert tcp any any -> any 80 (msg:"hello seen"; content:"GET /hello"; sid:10; rev:2;)
drop tcp any any -> any any (msg:"forbidden dropped"; content:"forbidden"; sid:11;)
`)
	evePath := dir + "/eve.json"
	p := start(t, tp.bridge, "-i", "b0:b1", "-threads", "2", "-rules", rulesPath, "-eve", evePath)
	p.waitFor(banner2, 20*time.Second)

	tp.mustPass(t, "/hello")
	tp.mustBlock(t, "/forbidden")
	tp.mustPass(t, "/hello")

	checkEVE(t, findEVE(t, evePath, 11), "blocked", 11, 0, "forbidden dropped")
	checkEVE(t, findEVE(t, evePath, 10), "allowed", 10, 2, "hello seen")

	p.signal(syscall.SIGINT)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	out := p.stderr.String()
	assert.Regexp(t, `b0->b1: received \d+, forwarded \d+, dropped [1-9]`, out)
	assert.Regexp(t, `EVE events written [1-9]\d*, dropped 0`, out)
}

// TestReject: a reject rule resets the client's connection at once, instead of letting it time
// out, and logs a blocked event; other requests pass.
func TestReject(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	rulesPath := writeFile(t, dir, "reject.rules", `reject tcp any any -> any any (msg:"no forbidden"; content:"forbidden"; sid:20; rev:1;)`+"\n")
	evePath := dir + "/eve.json"
	p := start(t, tp.bridge, "-i", "b0:b1", "-rules", rulesPath, "-eve", evePath)
	p.waitFor(`bridging b0 <-> b1 \(ips, 1 workers\)`, 20*time.Second)

	tp.mustPass(t, "/hello")
	start := time.Now()
	_, err := tp.get("/forbidden", 5*time.Second)
	el := time.Since(start)
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.ECONNRESET), "want connection reset, got %v", err)
	assert.Less(t, el, time.Second, "the reset comes at once, not after a timeout")
	tp.mustPass(t, "/hello")
	checkEVE(t, findEVE(t, evePath, 20), "blocked", 20, 1, "no forbidden")

	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	assert.Regexp(t, `reject frames sent [1-9]`, p.stderr.String())
}

// TestTap: in tap mode a drop rule drops nothing: the request passes, the event says "allowed"
// and the final counters show a would-drop.
func TestTap(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	rulesPath := writeFile(t, dir, "tap.rules", `drop tcp any any -> any any (msg:"would drop"; content:"forbidden"; sid:30;)`+"\n")
	evePath := dir + "/eve.json"
	p := start(t, tp.bridge, "-i", "b0:b1", "-mode", "tap", "-rules", rulesPath, "-eve", evePath)
	p.waitFor(`bridging b0 <-> b1 \(tap, 1 workers\)`, 20*time.Second)
	tp.mustPass(t, "/forbidden")
	checkEVE(t, findEVE(t, evePath, 30), "allowed", 30, 0, "would drop")
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	assert.Regexp(t, `b0->b1: received \d+, forwarded \d+, dropped 0, would-drop [1-9]`, p.stderr.String())
}

// TestReload: SIGHUP with a new rule starts dropping; SIGHUP with a broken file keeps the rules
// in force, keeps forwarding, and logs the file, line and column.
func TestReload(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	rulesPath := writeFile(t, dir, "live.rules", `alert tcp any any -> any any (msg:"hello"; content:"hello"; sid:1;)`+"\n")
	p := start(t, tp.bridge, "-i", "b0:b1", "-threads", "2", "-rules", rulesPath)
	p.waitFor(banner2, 20*time.Second)
	tp.mustPass(t, "/forbidden")

	writeFile(t, dir, "live.rules", `drop tcp any any -> any any (msg:"forbidden"; content:"forbidden"; sid:2;)`+"\n")
	p.signal(syscall.SIGHUP)
	p.waitFor(`reloaded .*live.rules: 1 rules in force`, 10*time.Second)
	tp.mustBlock(t, "/forbidden")
	tp.mustPass(t, "/hello")

	writeFile(t, dir, "live.rules", "# still a comment\n"+`drop tcp any any => any any (msg:"typo"; sid:3;)`+"\n")
	p.signal(syscall.SIGHUP)
	p.waitFor(`live.rules:2:18: expected "->" or "<>", found "=>"`, 10*time.Second)
	assert.Contains(t, p.stderr.String(), "refused; the 1 rules loaded before stay in force")
	tp.mustPass(t, "/hello")
	tp.mustBlock(t, "/forbidden")

	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
}

const suricataYAML = `%YAML 1.1
---
# A suricata.yaml cut down to what the test needs.
vars:
  address-groups:
    HOME_NET: "[198.18.0.0/15]"

af-packet:
  - interface: b0
    threads: 2
    cluster-id: 98
    cluster-type: cluster_flow
    defrag: yes
    use-mmap: yes
    copy-mode: ips
    copy-iface: b1
%[1]s
  - interface: b1
    threads: 2
    cluster-id: 97
    cluster-type: cluster_flow
    defrag: yes
    copy-mode: ips
    copy-iface: b0
%[1]s
  - interface: default
    checksum-checks: no

outputs:
  - eve-log:
      enabled: no
`

// TestConfigFile: a Suricata-style YAML with two interfaces, copy-mode ips and copy-iface runs,
// with TPACKET_V2 and V3 rings; the sections it ignores are noted.
func TestConfigFile(t *testing.T) {
	for _, c := range []struct{ name, extra string }{
		{"v2", "    ring-size: 256"},
		{"v3", "    tpacket-v3: yes\n    ring-size: 2048\n    block-size: 131072\n    block-timeout: 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tp := newTopo(t)
			dir := t.TempDir()
			// The EVE log from the file: eve-log on, in default-log-dir.
			y := strings.ReplaceAll(suricataYAML, "%[1]s", c.extra)
			y = strings.Replace(y, "      enabled: no", "      enabled: yes", 1) + "default-log-dir: " + dir + "\n"
			cfg := writeFile(t, dir, "suricata.yaml", y)
			p := start(t, tp.bridge, "-c", cfg)
			p.waitFor(banner2, 20*time.Second)
			out := p.stderr.String()
			assert.Regexp(t, `note: .*suricata.yaml: not used by the bridge: vars \(it reads af-packet, `, out)
			assert.Regexp(t, `note: .*suricata.yaml:\d+: b0: checksum-checks: no ignored`, out)
			tp.ping(t)
			download(t, tp, 4<<20)
			p.signal(syscall.SIGTERM)
			require.Equal(t, 0, p.exitCode(30*time.Second))
			assert.FileExists(t, filepath.Join(dir, "eve.json"), "eve-log's filename in default-log-dir")
		})
	}
}

// TestLinkStateVisible: a port whose link goes down and comes back shows in the -stats lines
// and the metrics, with its downs counted.
func TestLinkStateVisible(t *testing.T) {
	tp := newTopo(t)
	p := start(t, tp.bridge, "-i", "b0:b1", "-stats", "200ms", "-metrics", "127.0.0.1:9102")
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	tp.ping(t)
	metrics := func() string {
		c := &http.Client{Transport: demoTransport(tp.bridge), Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		resp, err := c.Get("http://127.0.0.1:9102/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}

	_, err := tp.client.Run("ip", "link", "set", "c0", "down") // b0 loses its carrier
	require.NoError(t, err)
	p.waitFor(`stats ports: b0 DOWN \(downs 1, removals 0, rebinds 0\), b1 up`, 15*time.Second)
	body := metrics()
	assert.Regexp(t, `afbridge_port_up\{interface="b0"\} 0`, body)
	assert.Regexp(t, `afbridge_port_downs_total\{interface="b0"\} 1`, body)

	_, err = tp.client.Run("ip", "link", "set", "c0", "up")
	require.NoError(t, err)
	p.waitFor(`stats ports: b0 up \(downs 1, removals 0, rebinds 0\)`, 15*time.Second)
	assert.Regexp(t, `afbridge_port_ups_total\{interface="b0"\} 1`, metrics())
	tp.ping(t)

	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	assert.Contains(t, p.stderr.String(), "  ports: b0 up (downs 1, removals 0, rebinds 0), b1 up (downs 0, removals 0, rebinds 0)")
}

// TestFullSuricataYAML runs the bridge with a full-size suricata.yaml (config/testdata), as an
// operator would: one line lists the sections not used, each af-packet key the bridge does not
// honour as written gets one note, and the rule file (rule-files in default-rule-path) and the
// EVE file (eve-log's filename in default-log-dir) come from the file.
func TestFullSuricataYAML(t *testing.T) {
	tp := newTopo(t)
	data, err := os.ReadFile("config/testdata/suricata-full.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	y := strings.Replace(string(data), "default-log-dir: /var/log/suricata/", "default-log-dir: "+dir, 1)
	y = strings.Replace(y, "default-rule-path: /var/lib/suricata/rules", "default-rule-path: "+dir, 1)
	// b0's filter keeps ICMP out: the client's pings are neither inspected nor forwarded.
	y = strings.Replace(y, "bpf-filter: not (host 198.18.9.9 and port 22)", "bpf-filter: not icmp", 1)
	// Workers pinned to the last CPU, to see the pinning in the process's threads.
	cpu := runtime.NumCPU() - 1
	y = strings.Replace(y, `cpu: [ "all" ]`, fmt.Sprintf("cpu: [ %d ]", cpu), 1)
	require.NotEqual(t, string(data), y)
	cfg := writeFile(t, dir, "suricata.yaml", y)
	writeFile(t, dir, "suricata.rules", demoRule+"\n")

	p := start(t, tp.bridge, "-c", cfg, "-stats", "300ms")
	p.waitFor(banner2, 20*time.Second)
	out := p.stderr.String()
	assert.Equal(t, 1, strings.Count(out, "not used by the bridge"), out)
	assert.Regexp(t, `note: .*suricata.yaml: not used by the bridge: suricata-version, vars, plugins, logging, af-xdp, dpdk, pcap, pcap-file, app-layer, `, out)
	for _, key := range []string{"v2-block-size", "use-emergency-flush", "xdp-mode", "xdp-filter-file", "xdp-cpu-redirect",
		"ebpf-filter-file", "pinned-maps", "pinned-maps-name", "use-percpu-hash", "rollover"} {
		assert.Equal(t, 1, strings.Count(out, ": "+key+" for "), "one note for %s", key)
	}
	assert.NotContains(t, out, ": bypass for ", "bypass: yes is honoured: the kernel fast path")
	assert.Contains(t, out, `cluster-type cluster_rollover for "default": deprecated, cluster_flow is used instead`)
	assert.Contains(t, out, "b0: ebpf-lb-file /usr/libexec/suricata/ebpf/lb.bpf not loaded: cluster_ebpf runs the bridge's built-in IP-pair program")
	assert.Contains(t, out, `b0: bpf-filter "not icmp": frames it rejects are neither inspected nor forwarded`)
	assert.Contains(t, out, fmt.Sprintf("workers pinned to CPUs [%d]", cpu))
	// The workers start running (and pin their threads) after the banner: wait for them.
	pinnedThreads := func() int {
		n := 0
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", p.cmd.Process.Pid))
		require.NoError(t, err)
		for _, task := range tasks {
			if b, err := os.ReadFile(task); err == nil && regexp.MustCompile(fmt.Sprintf(`(?m)^Cpus_allowed_list:\s+%d$`, cpu)).Match(b) {
				n++
			}
		}
		return n
	}
	if runtime.NumCPU() > 1 {
		pinned := 0
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if pinned = pinnedThreads(); pinned >= 2 {
				break
			}
		}
		assert.GreaterOrEqual(t, pinned, 2, "a thread per worker locked to CPU %d", cpu)
	}

	tp.mustPass(t, "/hello")
	tp.mustBlock(t, "/forbidden")
	pingOut, err := tp.client.Run("ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", serverIP)
	require.Error(t, err, "bpf-filter not icmp: the echo requests must not be forwarded\n%s", pingOut)
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	assert.Contains(t, p.stderr.String(), "rules 1, alerts ")
	assert.Regexp(t, `bypass: flows \d+ \(current`, p.stderr.String(), "bypass: yes turned the fast path on")
	eveLog, err := os.ReadFile(filepath.Join(dir, "eve.json"))
	require.NoError(t, err, "eve-log's filename in default-log-dir")
	assert.Contains(t, string(eveLog), `"action":"blocked"`)

	// A stats event per -stats interval and one at the end, laid out like Suricata's.
	var last struct {
		EventType string `json:"event_type"`
		Stats     struct {
			Uptime  *int64 `json:"uptime"`
			Capture struct {
				KernelPackets uint64  `json:"kernel_packets"`
				KernelDrops   *uint64 `json:"kernel_drops"`
			} `json:"capture"`
			IPS struct {
				Accepted   uint64            `json:"accepted"`
				Blocked    uint64            `json:"blocked"`
				Rejected   *uint64           `json:"rejected"`
				DropReason map[string]uint64 `json:"drop_reason"`
			} `json:"ips"`
		} `json:"stats"`
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(eveLog)), "\n") {
		if strings.Contains(line, `"event_type":"stats"`) {
			require.NoError(t, json.Unmarshal([]byte(line), &last), line)
			n++
		}
	}
	require.GreaterOrEqual(t, n, 2, "periodic stats events and the final one")
	assert.Equal(t, "stats", last.EventType)
	require.NotNil(t, last.Stats.Uptime)
	require.NotNil(t, last.Stats.Capture.KernelDrops)
	require.NotNil(t, last.Stats.IPS.Rejected)
	assert.Greater(t, last.Stats.Capture.KernelPackets, uint64(0))
	assert.Greater(t, last.Stats.IPS.Accepted, uint64(0))
	assert.GreaterOrEqual(t, last.Stats.IPS.Blocked, uint64(1), "the blocked request")
	assert.Equal(t, last.Stats.IPS.Blocked, last.Stats.IPS.DropReason["rules"], "no other reason in this run")
}

// TestConfigErrors: configurations that cannot work exit 2 before anything is opened, with the
// file, the line and both interfaces named. These need no privileges.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	// Interface names no host has: these run in the test's own namespace.
	unequal := writeFile(t, dir, "unequal.yaml", `af-packet:
  - interface: afbt-u0
    threads: 2
    copy-mode: ips
    copy-iface: afbt-u1
  - interface: afbt-u1
    threads: 4
    copy-mode: ips
    copy-iface: afbt-u0
`)
	code, out := runBridge(t, "-c", unequal)
	assert.Equal(t, 2, code)
	assert.Regexp(t, `unequal.yaml:2,6: threads differ: afbt-u0 has 2, afbt-u1 has 4`, out)

	nommap := writeFile(t, dir, "nommap.yaml", `af-packet:
  - interface: afbt-u0
    copy-mode: ips
    copy-iface: afbt-u1
  - interface: afbt-u1
    use-mmap: no
    copy-mode: ips
    copy-iface: afbt-u0
`)
	code, out = runBridge(t, "-c", nommap)
	assert.Equal(t, 2, code)
	assert.Regexp(t, `nommap.yaml:5: afbt-u1: use-mmap: no is not supported by the bridge yet`, out)

	badValues := writeFile(t, dir, "values.yaml", `af-packet:
  - interface: afbt-u0
    copy-mode: ips
    copy-iface: afbt-u1
    checksum-checks: sometimes
  - interface: afbt-u1
    copy-mode: ips
    copy-iface: afbt-u0
    xdp-mode: fast
exception-policy: never
`)
	code, out = runBridge(t, "-c", badValues)
	assert.Equal(t, 2, code)
	assert.Regexp(t, `values.yaml:5: checksum-checks for "afbt-u0": expected one of kernel, auto, yes, no`, out)
	assert.Regexp(t, `values.yaml:9: xdp-mode for "afbt-u1": expected one of soft, driver, hw, none, got "fast"`, out)
	assert.Regexp(t, `values.yaml:10: exception-policy: expected one of auto, `, out)

	// include is followed: an error in an included file names that file, and a cycle is refused
	// at the include's line.
	writeFile(t, dir, "af-packet.yaml", "af-packet:\n  - interface: afbt-u0\n    copy-mode: ips\n    copy-iface: afbt-u1\n    threads: two\ninclude: main.yaml\n")
	mainYAML := writeFile(t, dir, "main.yaml", "vars: {}\ninclude:\n  - af-packet.yaml\n")
	code, out = runBridge(t, "-c", mainYAML)
	assert.Equal(t, 2, code)
	assert.Regexp(t, `af-packet.yaml:5: threads for "afbt-u0": expected an integer from 1 to 65536 or "auto", got "two"`, out)
	assert.Regexp(t, `af-packet.yaml:6: include .*main.yaml: the file includes itself`, out)

	unknown := writeFile(t, dir, "unknown.yaml", "af-packet:\n  - interface: afbt-u0\n    copy-mode: ips\n    copy-iface: afbt-u1\n    ring-sise: 100\n")
	code, out = runBridge(t, "-c", unknown)
	assert.Equal(t, 2, code)
	assert.Regexp(t, `unknown.yaml:5: .*ring-sise`, out)
}

// TestUsage: bad command lines print the usage and exit 2; -h exits 0.
func TestUsage(t *testing.T) {
	dir := t.TempDir()
	badRules := writeFile(t, dir, "bad.rules", "alert tcp any any -> any any (sid:1;)\nalert tcp any any => any any (sid:2;)\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "nothing to bridge"},
		{[]string{"-i", "eth0"}, "two interface names separated by a colon"},
		{[]string{"-i", "eth0:eth0"}, "cannot be bridged with itself"},
		{[]string{"-i", "a:b", "-mode", "inline"}, `-mode "inline": want ips or tap`},
		{[]string{"-i", "a:b", "-threads", "0"}, "-threads 0"},
		{[]string{"-i", "a:b", "-stats", "soon"}, `invalid value "soon" for flag -stats`},
		{[]string{"-i", "a:b", "-metrics", "9101"}, `-metrics "9101": want HOST:PORT`},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"-c", "x.yaml", "-threads", "2"}, "-threads and -mode go with -i alone"},
		{[]string{"--demo", "-i", "a:b"}, "--demo takes no other flags"},
		{[]string{"-i", "a:b", "extra"}, `unexpected argument "extra"`},
		{[]string{"-i", "a:b", "-rules", badRules}, "bad.rules:2:19: expected"},
		{[]string{"-i", "a:b", "-rules", dir + "/missing.rules"}, "missing.rules: no such file"},
		{[]string{"-i", "afbt-nosuch0:afbt-nosuch1"}, `no interface named "afbt-nosuch0"`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out := runBridge(t, c.args...)
			assert.Equal(t, 2, code, out)
			assert.Contains(t, out, c.want)
			if !strings.Contains(c.want, "rules") && !strings.Contains(c.want, "interface named") {
				assert.Contains(t, out, "usage:", "the usage is printed")
			}
		})
	}
	code, out := runBridge(t, "-h")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "bridge -i IFACE_A:IFACE_B [-threads N] [-mode ips|tap]")
}

// TestNoPrivilege: without CAP_NET_RAW the bridge exits 1 and says what it needs.
func TestNoPrivilege(t *testing.T) {
	tp := newTopo(t)
	nobody := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	p := startCmd(t, tp.bridge, bridgeBinary(t), nobody, "-i", "b0:b1")
	assert.Equal(t, 1, p.exitCode(30*time.Second), p.stderr.String())
	assert.Contains(t, p.stderr.String(), "what to do: the bridge needs CAP_NET_RAW and CAP_NET_ADMIN")
	t.Logf("stderr:\n%s", p.stderr.String())
}

// TestDemo: --demo exits 0 and leaves no namespace or interface behind. It runs inside a
// throwaway namespace standing in for the host, so that the links counted before and after are
// the demo's business alone: other tests on the machine create and delete links and named
// namespaces at any time. Named namespaces are global: the check is that none appeared.
func TestDemo(t *testing.T) {
	testenv.RequirePriv(t)
	host := testenv.NS(t, "host")
	named := func() map[string]bool {
		out, err := exec.Command("ip", "netns", "list").Output()
		require.NoError(t, err)
		set := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				set[f[0]] = true
			}
		}
		return set
	}
	links := func() int {
		return strings.Count(testenv.MustRun(t, host, "ip", "-o", "link", "show"), "\n")
	}
	ns0, links0 := named(), links()
	p := start(t, host, "--demo")
	code := p.exitCode(3 * time.Minute)
	out := p.stdout.String()
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, p.stderr.String())
	for _, want := range []string{
		"bridging b0 <-> b1 (ips, 2 workers)",
		"3 of 3 replies",
		"CRC32C matches",
		`content:"forbidden"`,
		"GET /forbidden  blocked",
		"other requests still pass",
		`"signature_id":1`,
		"final stats",
		"cleanup: stopped the bridge, deleted the veth pairs c0-b0 and b1-s0, removed the namespaces client, bridge, server",
	} {
		assert.Contains(t, out, want)
	}
	for name := range named() {
		assert.True(t, ns0[name], "named namespace %s appeared", name)
	}
	assert.Equal(t, links0, links(), "host links before and after")
}
