package config

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// doc joins lines so that the test text's index+1 is its line number.
func doc(lines ...string) []byte {
	return []byte(strings.Join(lines, "\n") + "\n")
}

// stubCPU makes threads "auto" resolve to n for the test.
func stubCPU(t *testing.T, n int) {
	t.Helper()
	old := numCPU
	numCPU = func() int { return n }
	t.Cleanup(func() { numCPU = old })
}

// allErrors returns every *Error in err, checking each is reachable with
// errors.As on its own.
func allErrors(t *testing.T, err error) []*Error {
	t.Helper()
	require.Error(t, err)
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	var out []*Error
	for _, e := range list {
		var ce *Error
		require.True(t, errors.As(e, &ce), "%T is not a *config.Error: %v", e, e)
		out = append(out, ce)
	}
	var first *Error
	require.True(t, errors.As(err, &first))
	return out
}

// want builds an expected *Error in file "s.yaml".
func want(line int, msg string) *Error {
	return &Error{File: "s.yaml", Line: line, Msg: msg}
}

func want2(line, other int, msg string) *Error {
	return &Error{File: "s.yaml", Line: line, OtherLine: other, Msg: msg}
}

// ips is a valid pair to which cases add lines.
var ips = []string{
	"af-packet:",
	"  - interface: eth0",
	"    copy-mode: ips",
	"    copy-iface: eth1",
	"  - interface: eth1",
	"    copy-mode: ips",
	"    copy-iface: eth0",
}

func with(extra ...string) []byte {
	return doc(append(append([]string{}, ips...), extra...)...)
}

func TestLoadSuricataYAML(t *testing.T) {
	f, err := Load("testdata/suricata.yaml")
	require.NoError(t, err)

	const name = "testdata/suricata.yaml"
	assert.Equal(t, name, f.Name)
	assert.Equal(t, []string{
		name + ": not used by the bridge: suricata-version, vars, pcap, app-layer (it reads af-packet, include, run-as, default-rule-path, rule-files, default-log-dir, outputs, stats, threading, exception-policy)",
	}, f.Notes)
	assert.Equal(t, "/var/log/suricata/eve.json", f.EVEFile, "default-log-dir joined to eve-log's filename")

	eth0 := Interface{
		Name: "eth0", Line: 49, Threads: 2, ClusterID: 98, ClusterType: ClusterFlow,
		Defrag: false, DefragSet: true, CopyMode: CopyIPS, CopyIface: "eth1", UseMmap: true,
		RingSize: 2048, BlockSize: 32768, BlockTimeout: 10 * time.Millisecond,
		BufferSize: 64535, ChecksumChecks: ChecksumNo,
		Inherited: []string{"checksum-checks"},
	}
	eth1 := eth0
	eth1.Name, eth1.Line, eth1.ClusterID, eth1.CopyIface = "eth1", 107, 97, "eth0"
	eth1.RingSize = 4096 // only from the default entry
	eth1.Inherited = []string{"ring-size", "checksum-checks"}
	require.Equal(t, []Interface{eth0, eth1}, f.Interfaces)

	b, err := f.Bridges()
	require.NoError(t, err)
	assert.Equal(t, []Bridge{{A: eth0, B: eth1, AToB: CopyIPS, BToA: CopyIPS}}, b)
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such.yaml")
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestParseValues(t *testing.T) {
	stubCPU(t, 8)
	tests := []struct {
		name  string
		data  []byte
		check func(t *testing.T, eth0 Interface)
	}{
		{
			name: "built-in defaults",
			data: with(),
			check: func(t *testing.T, i Interface) {
				assert.Equal(t, Interface{
					Name: "eth0", Line: 2, Threads: 8, ThreadsAuto: true,
					ClusterType: ClusterFlow, Defrag: false, CopyMode: CopyIPS, CopyIface: "eth1",
					UseMmap: true, BlockSize: 32768, BlockTimeout: 10 * time.Millisecond,
					ChecksumChecks: ChecksumKernel,
				}, i)
			},
		},
		{
			name: "every key set",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    threads: 4",
				"    cluster-id: 65535",
				"    cluster-type: cluster_qm",
				"    defrag: off",
				"    copy-mode: tap",
				"    copy-iface: eth1",
				"    use-mmap: on",
				"    mmap-locked: yes",
				"    tpacket-v3: true",
				"    ring-size: 1024",
				"    block-size: 65536",
				"    block-timeout: 0",
				"    buffer-size: 0",
				"    disable-promisc: 1",
				"    checksum-checks: auto",
				"    bypass: yes",
			),
			check: func(t *testing.T, i Interface) {
				assert.Equal(t, Interface{
					Name: "eth0", Line: 2, Threads: 4, ClusterID: 65535,
					ClusterType: ClusterQM, Defrag: false, DefragSet: true, CopyMode: CopyTap, CopyIface: "eth1",
					UseMmap: true, MmapLocked: true, TPacketV3: true, RingSize: 1024,
					BlockSize: 65536, BlockTimeout: 0, BufferSize: 0, DisablePromisc: true,
					ChecksumChecks: ChecksumAuto, Bypass: true,
				}, i)
			},
		},
		{
			name: "use-mmap no is recorded",
			data: with("    use-mmap: no"),
			check: func(t *testing.T, i Interface) {
				assert.True(t, i.UseMmap, "eth0 keeps the default")
			},
		},
		{
			name: "checksum-checks folds case",
			data: doc("af-packet:", "  - interface: eth0", "    checksum-checks: YES"),
			check: func(t *testing.T, i Interface) {
				assert.Equal(t, ChecksumYes, i.ChecksumChecks)
			},
		},
		{
			name: "quoted numbers and names",
			data: doc("af-packet:", `  - interface: "eth0"`, `    threads: "3"`, `    cluster-id: '7'`),
			check: func(t *testing.T, i Interface) {
				assert.Equal(t, 3, i.Threads)
				assert.Equal(t, uint16(7), i.ClusterID)
			},
		},
		{
			name: "anchors and aliases",
			data: doc("af-packet:", "  - interface: eth0", "    threads: &n 6", "  - interface: eth1", "    threads: *n"),
			check: func(t *testing.T, i Interface) {
				assert.Equal(t, 6, i.Threads)
			},
		},
		{
			name: "every cluster type",
			data: doc("af-packet:", "  - interface: eth0", "    cluster-type: cluster_ebpf"),
			check: func(t *testing.T, i Interface) {
				assert.Equal(t, ClusterEBPF, i.ClusterType)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data, "s.yaml")
			require.NoError(t, err)
			require.NotEmpty(t, f.Interfaces)
			tt.check(t, f.Interfaces[0])
		})
	}
}

func TestParseClusterTypes(t *testing.T) {
	for _, ct := range []ClusterType{ClusterFlow, ClusterCPU, ClusterQM, ClusterRoundRobin, ClusterRandom, ClusterEBPF} {
		t.Run(ct.String(), func(t *testing.T) {
			f, err := Parse(doc("af-packet:", "  - interface: eth0", "    cluster-type: "+ct.String()), "s.yaml")
			require.NoError(t, err)
			assert.Equal(t, ct, f.Interfaces[0].ClusterType)
		})
	}
}

func TestParseBoolForms(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"yes", true}, {"Yes", true}, {"YES", true}, {"true", true}, {"True", true},
		{"on", true}, {"ON", true}, {"1", true}, {`"yes"`, true},
		{"no", false}, {"No", false}, {"NO", false}, {"false", false}, {"FALSE", false},
		{"off", false}, {"Off", false}, {"0", false}, {"'off'", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			// The defaults are the opposite where possible, so a
			// value that was silently ignored would show.
			f, err := Parse(doc(
				"af-packet:",
				"  - interface: eth0",
				"    defrag: "+tt.in,
				"    use-mmap: "+tt.in,
				"    mmap-locked: "+tt.in,
				"    tpacket-v3: "+tt.in,
				"    disable-promisc: "+tt.in,
				"    bypass: "+tt.in,
			), "s.yaml")
			require.NoError(t, err)
			i := f.Interfaces[0]
			assert.Equal(t, tt.want, i.Defrag, "defrag")
			assert.Equal(t, tt.want, i.UseMmap, "use-mmap")
			assert.Equal(t, tt.want, i.MmapLocked, "mmap-locked")
			assert.Equal(t, tt.want, i.TPacketV3, "tpacket-v3")
			assert.Equal(t, tt.want, i.DisablePromisc, "disable-promisc")
			assert.Equal(t, tt.want, i.Bypass, "bypass")
		})
	}
}

func TestParseThreadsAuto(t *testing.T) {
	stubCPU(t, 8)
	tests := []struct {
		name     string
		data     []byte
		threads  int
		auto     bool
		wantNote string
	}{
		{
			name:     "auto",
			data:     doc("af-packet:", "  - interface: eth0", "    threads: auto"),
			threads:  8,
			auto:     true,
			wantNote: `s.yaml:3: threads auto for "eth0": using 8, the number of CPUs`,
		},
		{
			name:     "unset means auto",
			data:     doc("af-packet:", "  - interface: eth0"),
			threads:  8,
			auto:     true,
			wantNote: `s.yaml:2: threads not set for "eth0": using 8, the number of CPUs`,
		},
		{
			name:     "auto from the default entry",
			data:     doc("af-packet:", "  - interface: default", "    threads: auto", "  - interface: eth0"),
			threads:  8,
			auto:     true,
			wantNote: `s.yaml:3: threads auto for "eth0": using 8, the number of CPUs`,
		},
		{
			name:    "explicit number overrides default auto",
			data:    doc("af-packet:", "  - interface: default", "    threads: auto", "  - interface: eth0", "    threads: 3"),
			threads: 3,
		},
		{
			name:     "explicit auto overrides default number",
			data:     doc("af-packet:", "  - interface: default", "    threads: 3", "  - interface: eth0", "    threads: AUTO"),
			threads:  8,
			auto:     true,
			wantNote: `s.yaml:5: threads auto for "eth0": using 8, the number of CPUs`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data, "s.yaml")
			require.NoError(t, err)
			require.Len(t, f.Interfaces, 1)
			assert.Equal(t, tt.threads, f.Interfaces[0].Threads)
			assert.Equal(t, tt.auto, f.Interfaces[0].ThreadsAuto)
			var threadNotes []string
			for _, n := range f.Notes {
				if strings.Contains(n, "threads") {
					threadNotes = append(threadNotes, n)
				}
			}
			if tt.wantNote == "" {
				assert.Empty(t, threadNotes)
			} else {
				assert.Equal(t, []string{tt.wantNote}, threadNotes)
			}
		})
	}
}

func TestParseDefaultsMerge(t *testing.T) {
	// The default entry comes last, as in Suricata's file: its position
	// does not matter, and each key falls back on its own.
	f, err := Parse(doc(
		"af-packet:",
		"  - interface: eth0",
		"    copy-iface: eth1",
		"    threads: 2",
		"  - interface: eth1",
		"    copy-iface: eth0",
		"    copy-mode: tap",
		"    defrag: yes",
		"  - interface: default",
		"    threads: 2",
		"    copy-mode: ips",
		"    defrag: no",
		"    cluster-type: cluster_cpu",
		"    use-mmap: no",
	), "s.yaml")
	require.NoError(t, err)
	require.Len(t, f.Interfaces, 2)
	eth0, eth1 := f.Interfaces[0], f.Interfaces[1]

	assert.Equal(t, 2, eth0.Threads)
	assert.Equal(t, CopyIPS, eth0.CopyMode)
	assert.False(t, eth0.Defrag)
	assert.Equal(t, ClusterCPU, eth0.ClusterType)
	assert.False(t, eth0.UseMmap)
	assert.Equal(t, []string{"copy-mode", "defrag", "cluster-type", "use-mmap"}, eth0.Inherited)

	assert.Equal(t, 2, eth1.Threads)
	assert.Equal(t, CopyTap, eth1.CopyMode)
	assert.True(t, eth1.Defrag)
	assert.Equal(t, []string{"threads", "cluster-type", "use-mmap"}, eth1.Inherited)

	b, err := f.Bridges()
	require.NoError(t, err)
	require.Len(t, b, 1)
	assert.Equal(t, CopyIPS, b[0].AToB)
	assert.Equal(t, CopyTap, b[0].BToA)
	assert.Contains(t, f.Notes, `s.yaml:8: defrag on "eth1" with copy-mode tap: the kernel reassembles IPv4 fragments before the bridge sees them, so they leave "eth0" reassembled, not as they came; Suricata's IPS example sets defrag: no, the default here for inline pairs`)
}

func TestParseNotes(t *testing.T) {
	stubCPU(t, 8)
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{
			name: "IDS entry",
			data: doc(
				"af-packet:",
				"  - interface: eth2",
				"    threads: 1",
				"  - interface: eth3",
				"    threads: 1",
				"    copy-mode: none",
				"    copy-iface: eth2",
			),
			want: []string{
				`s.yaml:2: "eth2" has no copy-mode: capture only (IDS), not bridged`,
				`s.yaml:4: "eth3" has no copy-mode: capture only (IDS), not bridged; copy-iface "eth2" ignored`,
			},
		},
		{
			name: "mmap and tpacket-v3 keys without effect",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    threads: 1",
				"    defrag: no",
				"    copy-mode: ips",
				"    copy-iface: eth1",
				"    use-mmap: no",
				"    tpacket-v3: yes",
				"    mmap-locked: yes",
				"    ring-size: 10",
				"    block-size: 4096",
			),
			want: []string{
				`s.yaml:8: tpacket-v3 on "eth0" has no effect with use-mmap: no`,
				`s.yaml:9: mmap-locked on "eth0" has no effect with use-mmap: no`,
				`s.yaml:10: ring-size on "eth0" has no effect with use-mmap: no`,
			},
		},
		{
			name: "tpacket-v3 inline and block keys without it",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    threads: 1",
				"    defrag: no",
				"    copy-mode: ips",
				"    copy-iface: eth1",
				"    tpacket-v3: yes",
				"  - interface: eth1",
				"    threads: 1",
				"    defrag: no",
				"    copy-mode: ips",
				"    copy-iface: eth0",
				"    block-size: 4096",
				"    block-timeout: 5",
			),
			want: []string{
				`s.yaml:7: tpacket-v3 on "eth0" with copy-mode ips: frames wait for a full block or block-timeout, which Suricata warns adds latency inline`,
				`s.yaml:13: block-size on "eth1" has no effect without tpacket-v3`,
				`s.yaml:14: block-timeout on "eth1" has no effect without tpacket-v3`,
			},
		},
		{
			name: "sections, in line order, and a second document",
			data: doc(
				"%YAML 1.1",
				"---",
				"vars: {}",
				"af-packet:",
				"  - interface: eth0",
				"    threads: 1",
				"outputs: []",
				"? [complex]",
				": key",
				"---",
				"more: 1",
			),
			want: []string{
				`s.yaml:5: "eth0" has no copy-mode: capture only (IDS), not bridged`,
				`s.yaml:8: a list key ignored (top-level keys are section names)`,
				`s.yaml:10: only the first YAML document is read`,
				`s.yaml: not used by the bridge: vars (it reads af-packet, include, run-as, default-rule-path, rule-files, default-log-dir, outputs, stats, threading, exception-policy)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data, "s.yaml")
			require.NoError(t, err)
			assert.Equal(t, tt.want, f.Notes)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want []*Error
	}{
		{
			name: "unknown key",
			data: with("    foo: 1"),
			want: []*Error{want(8, `unknown key "foo" in af-packet entry for "eth1"`)},
		},
		{
			name: "unknown key before the interface key",
			data: doc("af-packet:", "  - rollovr: yes", "    interface: eth0"),
			want: []*Error{want(2, `unknown key "rollovr" in af-packet entry for "eth0"`)},
		},
		{
			name: "unknown key in the default entry",
			data: doc("af-packet:", "  - interface: default", "    bpf-filtre: port 80"),
			want: []*Error{want(3, `unknown key "bpf-filtre" in af-packet entry for "default"`)},
		},
		{
			name: "threads not a number",
			data: with("    threads: lots"),
			want: []*Error{want(8, `threads for "eth1": expected an integer from 1 to 65536 or "auto", got "lots"`)},
		},
		{
			name: "threads zero",
			data: with("    threads: 0"),
			want: []*Error{want(8, `threads for "eth1": expected an integer from 1 to 65536 or "auto", got "0"`)},
		},
		{
			name: "threads too many",
			data: with("    threads: 65537"),
			want: []*Error{want(8, `threads for "eth1": expected an integer from 1 to 65536 or "auto", got "65537"`)},
		},
		{
			name: "threads a list",
			data: with("    threads: [1, 2]"),
			want: []*Error{want(8, `threads for "eth1": expected an integer from 1 to 65536 or "auto", got a list`)},
		},
		{
			name: "threads a mapping on the next line",
			data: with("    threads:", "      n: 1"),
			want: []*Error{want(9, `threads for "eth1": expected an integer from 1 to 65536 or "auto", got a mapping`)},
		},
		{
			name: "threads empty",
			data: with("    threads:"),
			want: []*Error{want(8, `threads for "eth1": expected an integer from 1 to 65536 or "auto", got nothing`)},
		},
		{
			name: "cluster-id out of range",
			data: with("    cluster-id: 65536"),
			want: []*Error{want(8, `cluster-id for "eth1": expected an integer from 0 to 65535, got "65536"`)},
		},
		{
			name: "cluster-id negative",
			data: with("    cluster-id: -1"),
			want: []*Error{want(8, `cluster-id for "eth1": expected an integer from 0 to 65535, got "-1"`)},
		},
		{
			name: "cluster-type unknown",
			data: with("    cluster-type: cluster_lb"),
			want: []*Error{want(8, `cluster-type for "eth1": expected one of cluster_flow, cluster_cpu, cluster_qm, cluster_round_robin, cluster_random, cluster_ebpf, got "cluster_lb"`)},
		},
		{
			name: "copy-mode unknown",
			data: doc("af-packet:", "  - interface: eth1", "    copy-mode: inline"),
			want: []*Error{want(3, `copy-mode for "eth1": expected one of ips, tap, none, got "inline"`)},
		},
		{
			name: "copy-mode is case-sensitive as in Suricata",
			data: doc("af-packet:", "  - interface: eth1", "    copy-mode: IPS"),
			want: []*Error{want(3, `copy-mode for "eth1": expected one of ips, tap, none, got "IPS"`)},
		},
		{
			name: "bool not a bool",
			data: with("    defrag: maybe"),
			want: []*Error{want(8, `defrag for "eth1": expected a boolean (yes/no, true/false, on/off, 1/0), got "maybe"`)},
		},
		{
			name: "YAML 1.1 y is not a Suricata bool",
			data: with("    use-mmap: y"),
			want: []*Error{want(8, `use-mmap for "eth1": expected a boolean (yes/no, true/false, on/off, 1/0), got "y"`)},
		},
		{
			name: "checksum-checks unknown",
			data: with("    checksum-checks: sometimes"),
			want: []*Error{want(8, `checksum-checks for "eth1": expected one of kernel, auto, yes, no (or another boolean: true/false, on/off, 1/0), got "sometimes"`)},
		},
		{
			name: "ring-size negative",
			data: with("    ring-size: -1"),
			want: []*Error{want(8, `ring-size for "eth1": expected a number of frames from 1 to 2147483647, got "-1"`)},
		},
		{
			name: "block-size fractional",
			data: with("    block-size: 1.5"),
			want: []*Error{want(8, `block-size for "eth1": expected a size in bytes from 1 to 2147483647, got "1.5"`)},
		},
		{
			name: "block-timeout with a unit",
			data: with("    block-timeout: 10ms"),
			want: []*Error{want(8, `block-timeout for "eth1": expected milliseconds from 0 to 2147483647, got "10ms"`)},
		},
		{
			name: "buffer-size too big",
			data: with("    buffer-size: 4294967296"),
			want: []*Error{want(8, `buffer-size for "eth1": expected a size in bytes from 0 to 2147483647, got "4294967296"`)},
		},
		{
			name: "copy-iface too long",
			data: doc("af-packet:", "  - interface: eth0", "    copy-iface: averyveryverylongname"),
			want: []*Error{want(3, `copy-iface for "eth0": "averyveryverylongname" is not a valid interface name: it is longer than 15 bytes (IFNAMSIZ)`)},
		},
		{
			name: "interface with a slash",
			data: doc("af-packet:", "  - interface: eth0/1"),
			want: []*Error{want(2, `interface: "eth0/1" is not a valid interface name: it contains '/', ':', a space or a control character`)},
		},
		{
			name: "interface empty string",
			data: doc("af-packet:", `  - interface: ""`, "    threads: x"),
			want: []*Error{
				want(2, `interface: "" is not a valid interface name: it is empty`),
				want(3, `threads for the entry at line 2: expected an integer from 1 to 65536 or "auto", got "x"`),
			},
		},
		{
			name: "interface null",
			data: doc("af-packet:", "  - interface: ~"),
			want: []*Error{want(2, `interface: expected an interface name, got nothing`)},
		},
		{
			name: "interface dot",
			data: doc("af-packet:", "  - interface: .."),
			want: []*Error{want(2, `interface: ".." is not a valid interface name: the kernel forbids it`)},
		},
		{
			name: "copy-iface a mapping",
			data: doc("af-packet:", "  - interface: eth0", "    copy-iface: {a: b}"),
			want: []*Error{want(3, `copy-iface for "eth0": expected an interface name, got a mapping`)},
		},
		{
			name: "cluster-type a list",
			data: doc("af-packet:", "  - interface: eth0", "    cluster-type: [cluster_flow]"),
			want: []*Error{want(3, `cluster-type for "eth0": expected one of cluster_flow, cluster_cpu, cluster_qm, cluster_round_robin, cluster_random, cluster_ebpf, got a list`)},
		},
		{
			name: "ring-size empty",
			data: doc("af-packet:", "  - interface: eth0", "    ring-size:"),
			want: []*Error{want(3, `ring-size for "eth0": expected a number of frames from 1 to 2147483647, got nothing`)},
		},
		{
			name: "key not a name",
			data: doc("af-packet:", "  - interface: eth0", "    ? [a, b]", "    : 1"),
			want: []*Error{want(3, `a list key in af-packet entry for "eth0": keys must be plain names`)},
		},
		{
			name: "syntax error in a second document",
			data: doc("af-packet:", "  - interface: eth0", "---", "a: [", "b"),
			want: []*Error{want(4, `did not find expected ',' or ']'`)},
		},
		{
			name: "YAML block entry inside a flow list",
			data: doc("af-packet: [", "  - a"),
			want: []*Error{want(2, `did not find expected node content`)},
		},
		{
			name: "YAML syntax error on the first line",
			data: doc("af-packet: [a}", "x: 1"),
			want: []*Error{want(1, `did not find expected ',' or ']'`)},
		},
		{
			name: "YAML scanner error",
			data: doc("af-packet:", "  - interface: eth0", "    threads: 1: 2"),
			want: []*Error{want(3, `mapping values are not allowed in this context`)},
		},
		{
			name: "YAML unterminated quote",
			data: doc("af-packet:", "  - interface: eth0", `    copy-iface: "eth1`, "x: 1"),
			want: []*Error{want(3, `found unexpected end of stream`)},
		},
		{
			name: "entry without interface",
			data: doc("af-packet:", "  - threads: 1", "    copy-mode: ips"),
			want: []*Error{want(2, `af-packet entry has no interface key`)},
		},
		{
			name: "entry not a mapping",
			data: doc("af-packet:", "  - eth0"),
			want: []*Error{want(2, `af-packet entry must be a mapping of keys, got "eth0"`)},
		},
		{
			name: "duplicate key",
			data: with("    copy-mode: tap"),
			want: []*Error{want(8, `duplicate key "copy-mode" in af-packet entry for "eth1" (first at line 6)`)},
		},
		{
			name: "second default entry",
			data: with("  - interface: default", "  - interface: default"),
			want: []*Error{want(9, `second "default" entry (the first is at line 8)`)},
		},
		{
			name: "af-packet a mapping",
			data: doc("af-packet:", "  interface: eth0"),
			want: []*Error{want(2, `af-packet must be a list of interface entries, got a mapping`)},
		},
		{
			name: "af-packet empty",
			data: doc("vars:", "  a: 1", "af-packet:"),
			want: []*Error{want(3, `af-packet section is empty: expected a list of interface entries`)},
		},
		{
			name: "second af-packet section",
			data: with("af-packet:", "  - interface: eth2"),
			want: []*Error{want(8, `second af-packet section (the first is at line 1)`)},
		},
		{
			name: "no af-packet section",
			data: doc("%YAML 1.1", "---", "vars:", "  a: 1"),
			want: []*Error{{File: "s.yaml", Msg: "no af-packet section"}},
		},
		{
			name: "empty file",
			data: nil,
			want: []*Error{{File: "s.yaml", Msg: "no af-packet section: the file is empty"}},
		},
		{
			name: "only comments",
			data: doc("%YAML 1.1", "---", "# nothing here"),
			want: []*Error{{File: "s.yaml", Msg: "no af-packet section: the document is empty"}},
		},
		{
			name: "top level a list",
			data: doc("- af-packet"),
			want: []*Error{want(1, `top level must be a mapping of sections, got a list`)},
		},
		{
			name: "YAML syntax error",
			data: doc("af-packet:", "  - interface: eth0", "    threads: [1,"),
			want: []*Error{want(4, `did not find expected node content`)},
		},
		{
			name: "YAML 1.2 directive",
			data: doc("%YAML 1.2", "---", "af-packet: []"),
			want: []*Error{want(1, "found incompatible YAML document")},
		},
		{
			name: "every error in one pass",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    threads: lots",
				"    foo: 1",
				"  - interface: default",
				"    defrag: perhaps",
				"  - interface: eth1",
				"  - interface: eth2",
				"    cluster-id: x",
			),
			want: []*Error{
				want(4, `unknown key "foo" in af-packet entry for "eth0"`),
				// A bad default is reported once, not once per entry.
				want(6, `defrag for "default": expected a boolean (yes/no, true/false, on/off, 1/0), got "perhaps"`),
				want(3, `threads for "eth0": expected an integer from 1 to 65536 or "auto", got "lots"`),
				want(9, `cluster-id for "eth2": expected an integer from 0 to 65535, got "x"`),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data, "s.yaml")
			assert.Nil(t, f)
			assert.Equal(t, tt.want, allErrors(t, err))
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{File: "a.yaml", Line: 3, Msg: "bad"}, "a.yaml:3: bad"},
		{&Error{File: "a.yaml", Line: 3, OtherLine: 9, Msg: "bad"}, "a.yaml:3,9: bad"},
		{&Error{File: "a.yaml", Msg: "bad"}, "a.yaml: bad"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.err.Error())
	}
}

func TestEnumStrings(t *testing.T) {
	assert.Equal(t, "tap", CopyTap.String())
	assert.Equal(t, "CopyMode(9)", CopyMode(9).String())
	assert.Equal(t, "cluster_round_robin", ClusterRoundRobin.String())
	assert.Equal(t, "ClusterType(0)", ClusterType(0).String())
	assert.Equal(t, "kernel", ChecksumKernel.String())
	assert.Equal(t, "ChecksumMode(0)", ChecksumMode(0).String())
}

func TestParseErrorAtAlias(t *testing.T) {
	// The error points where the bad value is used, not where it is anchored.
	_, err := Parse(doc("x: &bad lots", "af-packet:", "  - interface: eth0", "    threads: *bad"), "s.yaml")
	assert.Equal(t, []*Error{want(4, `threads for "eth0": expected an integer from 1 to 65536 or "auto", got "lots"`)}, allErrors(t, err))
}

// TestRunAs: the run-as section is read; a bad one is an error with its line.
func TestRunAs(t *testing.T) {
	const base = "af-packet:\n  - interface: a\n    copy-mode: ips\n    copy-iface: b\n  - interface: b\n    copy-mode: ips\n    copy-iface: a\n"
	for _, tc := range []struct {
		name, text string
		want       RunAs
		err        string
	}{
		{"none", base, RunAs{}, ""},
		{"user and group", base + "run-as:\n  user: suri\n  group: daemon\n", RunAs{User: "suri", Group: "daemon", Line: 8}, ""},
		{"user only", base + "run-as:\n  user: 65534\n", RunAs{User: "65534", Line: 8}, ""},
		{"not a mapping", base + "run-as: suri\n", RunAs{}, `t.yaml:8: run-as: expected a mapping with user and group, got "suri"`},
		{"unknown key", base + "run-as:\n  uid: 1\n", RunAs{}, `t.yaml:9: unknown key "uid" in run-as`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.text), "t.yaml")
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, f.RunAs)
			for _, n := range f.Notes {
				assert.NotContains(t, n, "run-as")
			}
		})
	}
}
