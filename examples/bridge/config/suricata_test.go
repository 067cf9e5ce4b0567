package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoadFullSuricataYAML reads a full-size suricata.yaml (Suricata 7's sections, with an IPS
// af-packet section that uses every key Suricata reads there): it loads without error, the
// sections not used are listed in one note, each key the bridge does not honour as written
// gets one note, and the sections the bridge uses are read.
func TestLoadFullSuricataYAML(t *testing.T) {
	stubCPU(t, 4)
	const name = "testdata/suricata-full.yaml"
	f, err := Load(name)
	require.NoError(t, err)

	var summary []string
	for _, n := range f.Notes {
		if strings.Contains(n, "not used by the bridge") {
			summary = append(summary, n)
		}
	}
	require.Len(t, summary, 1, "one line for the sections not used")
	assert.Contains(t, summary[0], name+": not used by the bridge: suricata-version, vars, plugins, logging, af-xdp, dpdk, pcap,")
	for _, s := range []string{"app-layer", "stream", "flow-timeouts", "detect", "napatech", "classification-file"} {
		assert.Contains(t, summary[0], " "+s+",")
	}

	// One note per key that asks for something the bridge does not do, at the key's line.
	for _, key := range []string{"v2-block-size", "use-emergency-flush", "xdp-mode", "xdp-filter-file", "xdp-cpu-redirect",
		"ebpf-filter-file", "pinned-maps", "pinned-maps-name", "use-percpu-hash", "rollover"} {
		n := 0
		for _, note := range f.Notes {
			if strings.Contains(note, ": "+key+" for ") {
				n++
			}
		}
		assert.Equal(t, 1, n, "notes for %s in %q", key, f.Notes)
	}
	// bypass: yes is honoured (the kernel fast path): no note.
	for _, n := range f.Notes {
		assert.NotContains(t, n, ": bypass for ")
	}
	assert.True(t, f.Interfaces[0].Bypass, "bypass: yes on %s", f.Interfaces[0].Name)
	assert.Contains(t, f.Notes, name+`:236: cluster-type cluster_rollover for "default": deprecated, cluster_flow is used instead, as Suricata does`)
	for _, n := range f.Notes {
		assert.NotContains(t, n, "hwtimestamp", "disable-hwtimestamp: yes and enable-hwtimestamp: no are what the bridge does")
		assert.NotContains(t, n, "block-size on", "Suricata's default block-size is not worth a note")
	}

	require.Len(t, f.Interfaces, 2)
	b0, b1 := f.Interfaces[0], f.Interfaces[1]
	assert.Equal(t, ClusterEBPF, b0.ClusterType)
	assert.Equal(t, "/usr/libexec/suricata/ebpf/lb.bpf", b0.EBPFLBFile)
	assert.Equal(t, "not (host 198.18.9.9 and port 22)", b0.BPFFilter)
	assert.Equal(t, ChecksumYes, b0.ChecksumChecks, "true")
	assert.Equal(t, ChecksumYes, b1.ChecksumChecks, "on")
	assert.Equal(t, ClusterEBPF, b1.ClusterType)
	assert.False(t, b0.Defrag)
	assert.Equal(t, 64535, b1.BufferSize, "from the default entry")

	assert.Equal(t, []string{"/var/lib/suricata/rules/suricata.rules"}, f.RuleFiles)
	assert.Equal(t, "/var/log/suricata/eve.json", f.EVEFile)
	assert.Equal(t, []int{0, 1, 2, 3}, f.WorkerCPUs, `"all" on a 4-CPU machine`)
	assert.Equal(t, 8*time.Second, f.StatsInterval)
	assert.Equal(t, ExceptionFailClosed, f.ExceptionPolicy, "auto is drop-flow in IPS mode")

	br, err := f.Bridges()
	require.NoError(t, err)
	require.Len(t, br, 1)
}

func TestParseChecksumForms(t *testing.T) {
	for in, want := range map[string]ChecksumMode{
		"kernel": ChecksumKernel, "auto": ChecksumAuto,
		"yes": ChecksumYes, "true": ChecksumYes, "on": ChecksumYes, "1": ChecksumYes, "YES": ChecksumYes,
		"no": ChecksumNo, "false": ChecksumNo, "off": ChecksumNo, "0": ChecksumNo, "Off": ChecksumNo,
	} {
		f, err := Parse(with("    checksum-checks: "+in), "s.yaml")
		require.NoError(t, err, in)
		assert.Equal(t, want, f.Interfaces[1].ChecksumChecks, in)
	}
}

func TestParseDefragDefault(t *testing.T) {
	f, err := Parse(doc("af-packet:", "  - interface: eth0", "  - interface: eth1", "    copy-mode: ips", "    copy-iface: eth2",
		"  - interface: eth2", "    copy-mode: ips", "    copy-iface: eth1", "    defrag: yes"), "s.yaml")
	require.NoError(t, err)
	assert.True(t, f.Interfaces[0].Defrag, "capture only: Suricata's default")
	assert.False(t, f.Interfaces[1].Defrag, "inline: off unless asked for")
	assert.False(t, f.Interfaces[1].DefragSet)
	assert.True(t, f.Interfaces[2].Defrag, "asked for")
	assert.True(t, f.Interfaces[2].DefragSet)
}

func TestParseTopLevel(t *testing.T) {
	stubCPU(t, 8)
	tests := []struct {
		name  string
		extra []string
		check func(t *testing.T, f *File)
	}{
		{"nothing", nil, func(t *testing.T, f *File) {
			assert.Nil(t, f.RuleFiles)
			assert.Empty(t, f.EVEFile)
			assert.Nil(t, f.WorkerCPUs)
			assert.Zero(t, f.ExceptionPolicy)
		}},
		{"rules with the built-in default-rule-path", []string{"rule-files:", "  - a.rules", "  - /etc/b.rules"}, func(t *testing.T, f *File) {
			assert.Equal(t, []string{"/var/lib/suricata/rules/a.rules", "/etc/b.rules"}, f.RuleFiles)
		}},
		{"rules with default-rule-path", []string{"default-rule-path: /r", "rule-files: [a.rules]"}, func(t *testing.T, f *File) {
			assert.Equal(t, []string{"/r/a.rules"}, f.RuleFiles)
		}},
		{"eve-log, filename relative", []string{"default-log-dir: /l/", "outputs:", "  - fast: {enabled: yes}", "  - eve-log:", "      enabled: yes", "      filename: x.json"}, func(t *testing.T, f *File) {
			assert.Equal(t, "/l/x.json", f.EVEFile)
		}},
		{"stats enabled, Suricata's default interval", []string{"stats:", "  enabled: yes"}, func(t *testing.T, f *File) {
			assert.Equal(t, 8*time.Second, f.StatsInterval)
		}},
		{"stats with an interval", []string{"stats: {enabled: yes, interval: 30}"}, func(t *testing.T, f *File) {
			assert.Equal(t, 30*time.Second, f.StatsInterval)
		}},
		{"stats disabled", []string{"stats: {enabled: no, interval: 30}"}, func(t *testing.T, f *File) {
			assert.Zero(t, f.StatsInterval)
		}},
		{"eve-log disabled", []string{"outputs:", "  - eve-log:", "      enabled: no"}, func(t *testing.T, f *File) {
			assert.Empty(t, f.EVEFile)
		}},
		{"eve-log to syslog", []string{"outputs:", "  - eve-log:", "      enabled: yes", "      filetype: syslog"}, func(t *testing.T, f *File) {
			assert.Empty(t, f.EVEFile)
			assert.Contains(t, f.Notes, "s.yaml:9: eve-log with filetype syslog not used: the bridge writes EVE to a regular file only (give -eve FILE)")
		}},
		{"cpu-affinity as a list (Suricata 7)", []string{"threading:", "  set-cpu-affinity: yes", "  cpu-affinity:",
			"    - management-cpu-set: {cpu: [0]}", "    - worker-cpu-set:", `        cpu: [ 5, "1-3", "2" ]`}, func(t *testing.T, f *File) {
			assert.Equal(t, []int{5, 1, 2, 3}, f.WorkerCPUs)
		}},
		{"cpu-affinity as a mapping (Suricata 8)", []string{"threading:", "  set-cpu-affinity: true", "  cpu-affinity:",
			"    worker-cpu-set:", `      cpu: "all"`}, func(t *testing.T, f *File) {
			assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7}, f.WorkerCPUs)
		}},
		{"cpu-affinity off", []string{"threading:", "  set-cpu-affinity: no", "  cpu-affinity:",
			"    worker-cpu-set:", `      cpu: [1]`}, func(t *testing.T, f *File) {
			assert.Nil(t, f.WorkerCPUs)
		}},
		{"cpu beyond the machine", []string{"threading:", "  set-cpu-affinity: yes", "  cpu-affinity:",
			"    worker-cpu-set:", `      cpu: [9]`}, func(t *testing.T, f *File) {
			assert.Equal(t, []int{9}, f.WorkerCPUs)
			assert.Contains(t, f.Notes, "s.yaml:12: worker-cpu-set names CPUs this machine does not have (it has 8)")
		}},
	}
	for _, p := range []struct {
		v    string
		want ExceptionPolicy
	}{
		{"auto", ExceptionFailClosed}, {"drop-packet", ExceptionFailClosed}, {"drop-flow", ExceptionFailClosed},
		{"reject", ExceptionFailClosed}, {"pass-packet", ExceptionFailOpen}, {"pass-flow", ExceptionFailOpen},
		{"bypass", ExceptionFailOpen}, {"ignore", ExceptionFailOpen},
	} {
		tests = append(tests, struct {
			name  string
			extra []string
			check func(t *testing.T, f *File)
		}{"exception-policy " + p.v, []string{"exception-policy: " + p.v}, func(t *testing.T, f *File) {
			assert.Equal(t, p.want, f.ExceptionPolicy)
		}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(with(tt.extra...), "s.yaml")
			require.NoError(t, err)
			tt.check(t, f)
		})
	}
}

func TestParseTopLevelErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		extra []string
		want  []*Error
	}{
		{"exception-policy unknown", []string{"exception-policy: fail-open"}, []*Error{want(8, `exception-policy: expected one of auto, bypass, drop-flow, drop-packet, ignore, pass-flow, pass-packet, reject, got "fail-open"`)}},
		{"cpu range backwards", []string{"threading:", "  set-cpu-affinity: yes", "  cpu-affinity:", "    worker-cpu-set:", `      cpu: ["3-1"]`},
			[]*Error{want(12, `cpu for worker-cpu-set: expected CPU numbers, ranges such as "2-5", or "all" (0 to 8191, low-high), got "3-1"`)}},
		{"cpu not a number", []string{"threading:", "  set-cpu-affinity: yes", "  cpu-affinity:", "    worker-cpu-set:", `      cpu: [one]`},
			[]*Error{want(12, `cpu for worker-cpu-set: expected CPU numbers, ranges such as "2-5", or "all" (0 to 8191, low-high), got "one"`)}},
		{"set-cpu-affinity not a boolean", []string{"threading:", "  set-cpu-affinity: maybe"},
			[]*Error{want(9, `set-cpu-affinity for threading: expected a boolean (yes/no, true/false, on/off, 1/0), got "maybe"`)}},
		{"stats interval zero", []string{"stats: {enabled: yes, interval: 0}"}, []*Error{want(8, `interval for stats: expected seconds from 1 to 86400, got "0"`)}},
		{"rule-files not a list", []string{"rule-files: a.rules"}, []*Error{want(8, `rule-files: expected a list of file names, got "a.rules"`)}},
		{"eve-log enabled not a boolean", []string{"outputs:", "  - eve-log:", "      enabled: sure"},
			[]*Error{want(10, `enabled for eve-log: expected a boolean (yes/no, true/false, on/off, 1/0), got "sure"`)}},
		{"xdp-mode unknown", []string{"    xdp-mode: fast"}, []*Error{want(8, `xdp-mode for "eth1": expected one of soft, driver, hw, none, got "fast"`)}},
		{"v2-block-size not a number", []string{"    v2-block-size: big"}, []*Error{want(8, `v2-block-size for "eth1": expected a size in bytes from 1 to 2147483647, got "big"`)}},
		{"bypass not a boolean", []string{"    bypass: always"}, []*Error{want(8, `bypass for "eth1": expected a boolean (yes/no, true/false, on/off, 1/0), got "always"`)}},
		{"bpf-filter a list", []string{"    bpf-filter: [port 80]"}, []*Error{want(8, `bpf-filter for "eth1": expected a pcap-filter expression, got a list`)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(with(tt.extra...), "s.yaml")
			assert.Nil(t, f)
			assert.Equal(t, tt.want, allErrors(t, err))
		})
	}
}

// TestInclude: include is followed relative to the including file, in order, nested, and a
// later af-packet section takes the place of an earlier one; cycles and deep nesting are
// refused with the line of the include.
func TestInclude(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	write("sub/ips.yaml", "af-packet:\n  - interface: b0\n    copy-mode: ips\n    copy-iface: b1\n  - interface: b1\n    copy-mode: ips\n    copy-iface: b0\ninclude: more.yaml\n")
	write("sub/more.yaml", "exception-policy: pass-flow\nstream: {}\n")
	main := write("suricata.yaml", "vars: {}\naf-packet:\n  - interface: eth0\ninclude:\n  - sub/ips.yaml\n")
	f, err := Load(main)
	require.NoError(t, err)
	require.Len(t, f.Interfaces, 2)
	assert.Equal(t, "b0", f.Interfaces[0].Name)
	assert.Equal(t, ExceptionFailOpen, f.ExceptionPolicy, "from the nested include")
	assert.Contains(t, f.Notes, filepath.Join(dir, "sub/ips.yaml")+":1: this af-packet section replaces the one at "+main+":2")
	assert.Contains(t, f.Notes, main+": not used by the bridge: vars, stream (it reads af-packet, include, run-as, default-rule-path, rule-files, default-log-dir, outputs, stats, threading, exception-policy)")

	t.Run("cycle", func(t *testing.T) {
		a := write("a.yaml", "af-packet:\n  - interface: eth0\ninclude: b.yaml\n")
		write("b.yaml", "include: [a.yaml]\n")
		_, err := Load(a)
		errs := allErrors(t, err)
		require.Len(t, errs, 1)
		assert.Equal(t, filepath.Join(dir, "b.yaml"), errs[0].File)
		assert.Equal(t, 1, errs[0].Line)
		assert.Contains(t, errs[0].Msg, "the file includes itself")
	})
	t.Run("too deep", func(t *testing.T) {
		for i := range maxIncludeDepth + 1 {
			write("deep"+string(rune('a'+i))+".yaml", "include: deep"+string(rune('a'+i+1))+".yaml\n")
		}
		write("deep"+string(rune('a'+maxIncludeDepth+1))+".yaml", "")
		top := write("deep.yaml", "af-packet:\n  - interface: eth0\ninclude: deepa.yaml\n")
		_, err := Load(top)
		errs := allErrors(t, err)
		require.Len(t, errs, 1)
		assert.Contains(t, errs[0].Msg, "more than 8 nested includes")
	})
	t.Run("missing", func(t *testing.T) {
		top := write("missing.yaml", "af-packet:\n  - interface: eth0\ninclude: nope.yaml\n")
		_, err := Load(top)
		errs := allErrors(t, err)
		require.Len(t, errs, 1)
		assert.Equal(t, 3, errs[0].Line)
		assert.Contains(t, errs[0].Msg, "nope.yaml: no such file or directory")
	})
	t.Run("not a regular file", func(t *testing.T) {
		top := write("dev.yaml", "af-packet:\n  - interface: eth0\ninclude: /dev/zero\n")
		_, err := Load(top)
		errs := allErrors(t, err)
		require.Len(t, errs, 1)
		assert.Equal(t, "include: /dev/zero is not a regular file", errs[0].Msg)
	})
	t.Run("error in an included file names it", func(t *testing.T) {
		write("bad.yaml", "af-packet:\n  - interface: eth0\n    threads: many\n")
		top := write("top.yaml", "include: bad.yaml\n")
		_, err := Load(top)
		errs := allErrors(t, err)
		require.Len(t, errs, 1)
		assert.Equal(t, filepath.Join(dir, "bad.yaml"), errs[0].File)
		assert.Equal(t, 3, errs[0].Line)
	})
}
