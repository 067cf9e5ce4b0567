//go:build linux

package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/afbridge/afbridge/examples/bridge/config"
	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/ring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loadSpecs writes yaml to a file and maps it as -c would, with -i ifaces when given.
func loadSpecs(t *testing.T, yaml string, ifaces ...string) ([]spec, []string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "suricata.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o644))
	o := &options{config: path}
	if len(ifaces) == 2 {
		o.a, o.b = ifaces[0], ifaces[1]
	}
	var notes []string
	specs, err := specsFromConfig(o, func(n string) { notes = append(notes, n) })
	return specs, notes, err
}

// The interfaces need not exist: mapping reads the file only (an unknown interface has MTU 1500
// here, and peer.Validate refuses it later).
const twoPairs = `af-packet:
  - interface: afbt-x0
    threads: 3
    cluster-id: 10
    cluster-type: cluster_cpu
    defrag: no
    copy-mode: ips
    copy-iface: afbt-x1
    ring-size: 1000
    buffer-size: 65536
    disable-promisc: yes
  - interface: afbt-x1
    threads: 3
    cluster-id: 11
    cluster-type: cluster_cpu
    defrag: no
    copy-mode: tap
    copy-iface: afbt-x0
    tpacket-v3: yes
    ring-size: 4000
    block-size: 1048576
    block-timeout: 5
    mmap-locked: yes
    checksum-checks: yes
  - interface: afbt-y0
    threads: 1
    copy-mode: ips
    copy-iface: afbt-y1
  - interface: afbt-y1
    threads: 1
    copy-mode: ips
    copy-iface: afbt-y0
`

func TestSpecsFromConfig(t *testing.T) {
	specs, notes, err := loadSpecs(t, twoPairs)
	require.NoError(t, err)
	require.Len(t, specs, 2)

	a, b := specs[0].cfg.A, specs[0].cfg.B
	assert.Regexp(t, `suricata.yaml:2,12: $`, specs[0].where)
	assert.Equal(t, peer.Side{
		Interface: "afbt-x0", ClusterID: 10, CopyMode: peer.IPS,
		Ring: peer.RingOptions{Version: ring.V2, FrameCount: 1000}, DisablePromisc: true, BufferSize: 65536,
	}, a)
	assert.Equal(t, 3, specs[0].cfg.Threads)
	assert.Equal(t, fanout.CPU, specs[0].cfg.ClusterType)
	assert.False(t, specs[0].cfg.Defrag)
	assert.False(t, specs[1].cfg.Defrag, "off by default for inline pairs: a reassembled datagram would leave reassembled")
	assert.Equal(t, fanout.Hash, specs[1].cfg.ClusterType, "Suricata's default")
	assert.Equal(t, "afbt-x1", b.Interface)
	assert.Equal(t, peer.Tap, b.CopyMode)
	assert.Equal(t, ring.V3, b.Ring.Version)
	assert.True(t, b.Ring.Locked)
	assert.Equal(t, 1<<20, b.Ring.BlockSize)
	assert.Equal(t, 5*time.Millisecond, b.Ring.BlockTimeout)
	// As Suricata: 4000 frames of 1600 bytes at 655 a block, plus one block.
	assert.Equal(t, 4000/(1<<20/1600)+1, b.Ring.BlockCount)
	assert.Zero(t, b.Ring.FrameCount)

	assert.Equal(t, "afbt-y0", specs[1].cfg.A.Interface)
	assert.Equal(t, 1, specs[1].cfg.Threads)

	all := strings.Join(notes, "\n")
	assert.Contains(t, all, "suricata.yaml:2: afbt-x0: cluster-type cluster_cpu does not keep both directions of a flow on one worker")
	assert.Contains(t, all, "suricata.yaml:2: afbt-x0: disable-promisc: yes")
	assert.Contains(t, all, "suricata.yaml:12: afbt-x1: checksum-checks: yes ignored")
}

func TestSpecsFromConfigSelect(t *testing.T) {
	specs, _, err := loadSpecs(t, twoPairs, "afbt-y1", "afbt-y0")
	require.NoError(t, err)
	require.Len(t, specs, 1)
	assert.Equal(t, "afbt-y0", specs[0].cfg.A.Interface)

	_, _, err = loadSpecs(t, twoPairs, "afbt-x0", "afbt-y0")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no bridge between afbt-x0 and afbt-y0 (-i); the file has afbt-x0:afbt-x1, afbt-y0:afbt-y1")
}

func TestSpecsFromConfigErrors(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"no mmap", "af-packet:\n  - interface: a\n    copy-mode: ips\n    copy-iface: b\n  - interface: b\n    copy-mode: ips\n    copy-iface: a\n    use-mmap: no\n",
			"suricata.yaml:5: b: use-mmap: no is not supported by the bridge yet"},
		{"threads", "af-packet:\n  - interface: a\n    threads: 1\n    copy-mode: ips\n    copy-iface: b\n  - interface: b\n    threads: 2\n    copy-mode: ips\n    copy-iface: a\n",
			"suricata.yaml:2,6: threads differ: a has 1, b has 2"},
		{"cluster-type", "af-packet:\n  - interface: a\n    copy-mode: ips\n    copy-iface: b\n    cluster-type: cluster_cpu\n  - interface: b\n    copy-mode: ips\n    copy-iface: a\n",
			"suricata.yaml:2,6: cluster-type differs: a has cluster_cpu, b has cluster_flow"},
		{"defrag", "af-packet:\n  - interface: a\n    copy-mode: ips\n    copy-iface: b\n    defrag: yes\n  - interface: b\n    copy-mode: ips\n    copy-iface: a\n",
			"suricata.yaml:2,6: defrag differs: a has true, b has false"},
		{"bpf-filter", "af-packet:\n  - interface: a\n    copy-mode: ips\n    copy-iface: b\n    bpf-filter: tcp port\n  - interface: b\n    copy-mode: ips\n    copy-iface: a\n",
			`suricata.yaml:2: a: bpf-filter: "tcp port" column 9:`},
		{"no bridge", "af-packet:\n  - interface: a\n", "no bridge"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := loadSpecs(t, c.yaml)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// TestSpecsFromConfigSuricata checks what the binary makes of the keys the library cannot
// honour as written: each is accepted with one note that says what the bridge does instead.
func TestSpecsFromConfigSuricata(t *testing.T) {
	const y = `af-packet:
  - interface: a
    copy-mode: ips
    copy-iface: b
    cluster-type: cluster_ebpf
    ebpf-lb-file: /usr/libexec/suricata/ebpf/lb.bpf
    bpf-filter: not port 22
  - interface: b
    copy-mode: ips
    copy-iface: a
    cluster-type: cluster_ebpf
exception-policy: drop-flow
threading:
  set-cpu-affinity: yes
  cpu-affinity:
    - worker-cpu-set:
        cpu: [ "0-1" ]
`
	specs, notes, err := loadSpecs(t, y)
	require.NoError(t, err)
	require.Len(t, specs, 1)
	cfg := specs[0].cfg
	assert.Equal(t, fanout.EBPF, cfg.ClusterType, "cluster_ebpf: the built-in IP-pair program")
	assert.False(t, cfg.Defrag)
	assert.Equal(t, []int{0, 1}, cfg.CPUs, "worker-cpu-set")
	assert.Equal(t, peer.FailClosed, cfg.OnPanic)
	assert.Equal(t, peer.FailClosed, cfg.OnLinkDown)
	all := strings.Join(notes, "\n")
	assert.Contains(t, all, "suricata.yaml:2: a: ebpf-lb-file /usr/libexec/suricata/ebpf/lb.bpf not loaded: cluster_ebpf runs the bridge's built-in IP-pair program")
	assert.NotContains(t, all, "b: ebpf-lb-file")
	assert.Contains(t, all, `suricata.yaml:2: a: bpf-filter "not port 22": frames it rejects are neither inspected nor forwarded, as in Suricata's IPS mode`)
	assert.NotEmpty(t, cfg.A.Filter, "compiled")
	assert.Nil(t, cfg.B.Filter)
	assert.Contains(t, all, "workers pinned to CPUs [0 1]")
}

func TestApplyConfigPolicy(t *testing.T) {
	for _, c := range []struct {
		in   config.ExceptionPolicy
		want peer.Policy
	}{
		{0, peer.FailOpen},
		{config.ExceptionFailOpen, peer.FailOpen},
		{config.ExceptionFailClosed, peer.FailClosed},
	} {
		var cfg peer.Config
		applyConfigPolicy(&cfg, &config.File{ExceptionPolicy: c.in})
		assert.Equal(t, c.want, cfg.OnPanic, "%v", c.in)
		assert.Equal(t, c.want, cfg.OnLinkDown, "%v", c.in)
	}
}

func TestFilesFromConfig(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "local.rules")
	require.NoError(t, os.WriteFile(rules, []byte("alert ip any any -> any any (sid:1;)\n"), 0o644))
	var notes []string
	note := func(n string) { notes = append(notes, n) }

	o := &options{}
	filesFromConfig(o, &config.File{Name: "s.yaml", RuleFiles: []string{rules, "/no/such.rules"}, EVEFile: "/var/log/eve.json", StatsInterval: 8 * time.Second}, note)
	assert.Equal(t, 8*time.Second, o.stats)
	assert.Equal(t, rules, o.rules)
	assert.Equal(t, "/var/log/eve.json", o.eve)
	assert.Equal(t, []string{"s.yaml: rule-files lists 2 files; the bridge loads one, " + rules + ": merge the others into it or give -rules"}, notes)

	notes = nil
	o = &options{rules: "flag.rules", eve: "-", stats: time.Second}
	filesFromConfig(o, &config.File{Name: "s.yaml", RuleFiles: []string{rules}, EVEFile: "/var/log/eve.json", StatsInterval: 8 * time.Second}, note)
	assert.Equal(t, time.Second, o.stats, "the flags win")
	assert.Equal(t, "flag.rules", o.rules, "the flags win")
	assert.Equal(t, "-", o.eve, "the flags win")
	assert.Empty(t, notes)

	o = &options{}
	filesFromConfig(o, &config.File{Name: "s.yaml", RuleFiles: []string{"/no/such.rules"}}, note)
	assert.Empty(t, o.rules)
	assert.Equal(t, []string{"s.yaml: rule file /no/such.rules does not exist: running without rules, as Suricata does"}, notes)
}

func TestSpecFromFlags(t *testing.T) {
	s := specFromFlags(&options{a: "eth0", b: "eth1", threads: 4, mode: peer.Tap})
	assert.Equal(t, peer.Side{Interface: "eth0", CopyMode: peer.Tap}, s.cfg.A)
	assert.Equal(t, peer.Side{Interface: "eth1", CopyMode: peer.Tap}, s.cfg.B)
	assert.Equal(t, 4, s.cfg.Threads)
	assert.Empty(t, s.where)
}

func TestV3FrameSize(t *testing.T) {
	// Suricata's arithmetic for a 1500-byte MTU: TPACKET_ALIGN(1514 + 96 - 14).
	assert.Equal(t, 1600, v3FrameSize(1500))
	assert.Zero(t, v3FrameSize(9000)%16)
}

// TestRingFallback: a V3 block-size too small for the interface's frames falls back to the
// library's default, with a note that says why.
func TestRingFallback(t *testing.T) {
	yaml := "af-packet:\n  - interface: afbt-z0\n    copy-mode: ips\n    copy-iface: afbt-z1\n    tpacket-v3: yes\n    block-size: 1024\n    ring-size: 100\n" +
		"  - interface: afbt-z1\n    copy-mode: ips\n    copy-iface: afbt-z0\n"
	specs, notes, err := loadSpecs(t, yaml)
	require.NoError(t, err)
	r := specs[0].cfg.A.Ring
	assert.Equal(t, ring.V3, r.Version)
	assert.Zero(t, r.BlockSize, "the library's default")
	assert.Equal(t, 2, r.BlockCount, "100 frames fit one default block; at least two")
	assert.Contains(t, strings.Join(notes, "\n"), "suricata.yaml:2: afbt-z0: block-size 1024 does not work here (BlockSize 1024 is not a multiple of the page size")
}

func TestWorkerCount(t *testing.T) {
	side := func(n int) peer.Config {
		return peer.Config{A: peer.Side{Interface: "x"}, B: peer.Side{Interface: "y"}, Threads: n}
	}
	for _, tc := range []struct {
		name  string
		specs []spec
		want  int
	}{
		{"none", nil, 0},
		{"default threads", []spec{{cfg: side(0)}}, 1},
		{"one bridge", []spec{{cfg: side(4)}}, 4},
		{"two bridges", []spec{{cfg: side(2)}, {cfg: side(0)}}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, workerCount(tc.specs))
		})
	}
}

func TestRaiseGOMAXPROCS(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })

	t.Setenv("GOMAXPROCS", "")
	assert.Contains(t, raiseGOMAXPROCS(2), "GOMAXPROCS 1 -> 3")
	assert.Equal(t, 3, runtime.GOMAXPROCS(0))
	assert.Empty(t, raiseGOMAXPROCS(2), "enough Ps: nothing to do")
	assert.Equal(t, 3, runtime.GOMAXPROCS(0), "never lowered")

	runtime.GOMAXPROCS(1)
	t.Setenv("GOMAXPROCS", "1")
	msg := raiseGOMAXPROCS(2)
	assert.Contains(t, msg, "GOMAXPROCS=1 is set for 2 workers")
	assert.Equal(t, 1, runtime.GOMAXPROCS(0), "the operator's setting is kept")
}
