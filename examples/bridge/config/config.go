package config

import (
	"fmt"
	"os"
	"time"
)

// Error is one problem in a configuration file. Every error returned by
// [Parse], [Load] (past reading the file) and [File.Bridges] is an *Error,
// or several joined with [errors.Join], each still reachable with
// [errors.As].
type Error struct {
	// File is the name given to Parse, or the path given to Load.
	File string
	// Line is the 1-based line of the problem, or 0 when it has no single
	// place, such as a missing af-packet section.
	Line int
	// OtherLine is the line of a second entry involved, for problems that
	// concern two interfaces (such as unequal threads), or 0.
	OtherLine int
	// Msg says what is wrong, and what was expected where that helps.
	Msg string
}

// Error formats the error as FILE:LINE: MSG, FILE:LINE,OTHERLINE: MSG when
// two entries are involved, or FILE: MSG when there is no line.
func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	case e.OtherLine == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s:%d,%d: %s", e.File, e.Line, e.OtherLine, e.Msg)
	}
}

// CopyMode is Suricata's copy-mode: what happens to a frame received on an
// interface. Its zero value is CopyNone, Suricata's default.
type CopyMode int

// Copy modes, spelled in YAML as "none", "ips" and "tap".
const (
	// CopyNone captures only (IDS): nothing is sent to copy-iface.
	CopyNone CopyMode = iota
	// CopyIPS sends a frame to copy-iface only if the verdict accepts it.
	CopyIPS
	// CopyTap sends every frame to copy-iface whatever the verdict.
	CopyTap
)

// String returns the YAML spelling of m.
func (m CopyMode) String() string {
	switch m {
	case CopyNone:
		return "none"
	case CopyIPS:
		return "ips"
	case CopyTap:
		return "tap"
	}
	return fmt.Sprintf("CopyMode(%d)", int(m))
}

// ClusterType is Suricata's cluster-type, the PACKET_FANOUT mode that
// spreads an interface's frames over its threads (packet(7)). The zero
// value is invalid so that an unresolved Interface is easy to spot.
type ClusterType int

// Cluster types, each named by its YAML spelling, with the fanout mode it
// selects.
const (
	// ClusterFlow is cluster_flow, PACKET_FANOUT_HASH: a flow's frames go
	// to one socket. Suricata's default.
	ClusterFlow ClusterType = iota + 1
	// ClusterCPU is cluster_cpu, PACKET_FANOUT_CPU: by receiving CPU.
	ClusterCPU
	// ClusterQM is cluster_qm, PACKET_FANOUT_QM: by NIC receive queue.
	ClusterQM
	// ClusterRoundRobin is cluster_round_robin, PACKET_FANOUT_LB.
	ClusterRoundRobin
	// ClusterRandom is cluster_random, PACKET_FANOUT_RND.
	ClusterRandom
	// ClusterEBPF is cluster_ebpf, PACKET_FANOUT_EBPF: a BPF program picks.
	ClusterEBPF
)

// cluster_rollover is not a ClusterType: Suricata deprecated it and runs
// cluster_flow in its place, and so does [Parse], with a note.

var clusterNames = map[ClusterType]string{
	ClusterFlow:       "cluster_flow",
	ClusterCPU:        "cluster_cpu",
	ClusterQM:         "cluster_qm",
	ClusterRoundRobin: "cluster_round_robin",
	ClusterRandom:     "cluster_random",
	ClusterEBPF:       "cluster_ebpf",
}

// String returns the YAML spelling of t, such as "cluster_flow".
func (t ClusterType) String() string {
	if s, ok := clusterNames[t]; ok {
		return s
	}
	return fmt.Sprintf("ClusterType(%d)", int(t))
}

// ChecksumMode is Suricata's checksum-checks: how the checksums of captured
// frames are trusted. The zero value is invalid.
type ChecksumMode int

// Checksum modes, each named by its YAML spelling.
const (
	// ChecksumKernel trusts the kernel's per-frame status, which knows
	// about offloaded checksums. Suricata's default.
	ChecksumKernel ChecksumMode = iota + 1
	// ChecksumYes always validates checksums.
	ChecksumYes
	// ChecksumNo never validates checksums.
	ChecksumNo
	// ChecksumAuto validates until offloading is detected statistically.
	ChecksumAuto
)

// String returns the YAML spelling of m, such as "kernel".
func (m ChecksumMode) String() string {
	switch m {
	case ChecksumKernel:
		return "kernel"
	case ChecksumYes:
		return "yes"
	case ChecksumNo:
		return "no"
	case ChecksumAuto:
		return "auto"
	}
	return fmt.Sprintf("ChecksumMode(%d)", int(m))
}

// Interface is one af-packet entry with every field resolved: values set
// in the entry win, then those of the "interface: default" entry, then
// Suricata's built-in defaults, given per field below.
type Interface struct {
	// Name is the entry's interface key, such as "eth0".
	Name string
	// Line is the line of the entry (its first key).
	Line int
	// Threads is the number of capture threads. When ThreadsAuto is set
	// it is the number of CPUs of the machine that parsed the file.
	Threads int
	// ThreadsAuto reports that threads was "auto" or not set (the default).
	ThreadsAuto bool
	// ClusterID is the fanout group id; 0 means not set, and the caller
	// picks one.
	ClusterID uint16
	// ClusterType is the fanout mode; default ClusterFlow.
	ClusterType ClusterType
	// Defrag asks the kernel to reassemble IP fragments before fanout so
	// they hash to one socket (PACKET_FANOUT_FLAG_DEFRAG). Suricata's
	// default is true; here it is true for capture-only entries and false
	// for entries with a copy-mode, because a reassembled datagram would
	// leave the bridge reassembled, not as it came (Suricata's own IPS
	// example sets defrag: no). Without it, cluster_flow hashes IPv4
	// fragments by their addresses alone and the rest of their flow by
	// addresses and ports, so the fragments may reach another worker than
	// their flow; the IP-pair fanout (cluster_ebpf) is the fix.
	Defrag bool
	// DefragSet reports that defrag was written in the file (in the entry
	// or the default entry).
	DefragSet bool
	// CopyMode is what is sent to CopyIface; default CopyNone.
	CopyMode CopyMode
	// CopyIface is the interface frames are sent to; default empty.
	CopyIface string
	// UseMmap selects the PACKET_RX_RING path; default true. False is
	// honoured: the library also has a recvmsg path.
	UseMmap bool
	// MmapLocked locks the ring in memory (mlock); default false.
	MmapLocked bool
	// TPacketV3 selects TPACKET_V3 block rings; default false.
	TPacketV3 bool
	// RingSize is the number of ring frames per thread; 0 (the default)
	// lets the library derive it.
	RingSize int
	// BlockSize is the TPACKET_V3 block size in bytes; default 32768.
	BlockSize int
	// BlockTimeout is how long a partly filled TPACKET_V3 block waits
	// before the kernel hands it over; default 10ms, 0 lets the kernel
	// choose from the link speed.
	BlockTimeout time.Duration
	// BufferSize is the socket buffer (SO_RCVBUF) in bytes; 0 (the
	// default) keeps the kernel's.
	BufferSize int
	// DisablePromisc leaves promiscuous mode off; default false.
	DisablePromisc bool
	// ChecksumChecks is the checksum mode; default ChecksumKernel.
	ChecksumChecks ChecksumMode
	// BPFFilter is the pcap-filter expression of bpf-filter; default
	// empty (no filter).
	BPFFilter string
	// EBPFLBFile is ebpf-lb-file, the eBPF load balancer Suricata loads
	// for cluster_ebpf; default empty. The bridge loads no external
	// program: it is recorded so the binary can say what it does instead.
	EBPFLBFile string
	// Bypass turns on the kernel fast path for flows the rules bypass (Suricata's af-packet
	// bypass, done with tcx instead of XDP); default false.
	Bypass bool
	// Inherited lists the keys whose values came from the
	// "interface: default" entry, in that entry's order.
	Inherited []string
}

// defaults returns Suricata's built-in values for an entry.
func defaults(name string, line int) Interface {
	return Interface{
		Name:           name,
		Line:           line,
		ThreadsAuto:    true,
		ClusterType:    ClusterFlow,
		Defrag:         true,
		UseMmap:        true,
		BlockSize:      32768,
		BlockTimeout:   10 * time.Millisecond,
		ChecksumChecks: ChecksumKernel,
	}
}

// Bridge is a pair of interfaces that copy to each other: frames received
// on A go out of B according to AToB, and frames received on B go out of A
// according to BToA. A is the entry that comes first in the file.
type Bridge struct {
	// A and B are the two entries, resolved; A.CopyIface is B.Name and
	// B.CopyIface is A.Name.
	A, B Interface
	// AToB is A's copy-mode; BToA is B's. Suricata lets them differ, for
	// example ips one way and tap the other.
	AToB, BToA CopyMode
}

// File is what the bridge reads from a configuration file and the files
// it includes.
type File struct {
	// Name is the name given to Parse, used in every message.
	Name string
	// Interfaces holds the af-packet entries in file order, resolved, and
	// without the "interface: default" entry.
	Interfaces []Interface
	// RuleFiles lists the rule-files entries, each joined to
	// default-rule-path (Suricata's default: /var/lib/suricata/rules)
	// unless absolute; empty when the file has none.
	RuleFiles []string
	// EVEFile is the filename of the first enabled eve-log output of
	// type regular (the default), joined to default-log-dir (Suricata's
	// default: /var/log/suricata) unless absolute; "" when there is none.
	EVEFile string
	// StatsInterval is the stats section's interval (Suricata's default:
	// 8 s) when its enabled key is yes; 0 otherwise.
	StatsInterval time.Duration
	// WorkerCPUs is threading.cpu-affinity's worker-cpu-set, expanded
	// ("all" and ranges such as "2-5" resolved) and in the order written,
	// when threading.set-cpu-affinity is yes; nil otherwise.
	WorkerCPUs []int
	// ExceptionPolicy is the top-level exception-policy, resolved as
	// Suricata does in IPS mode; the zero value means it was not set.
	ExceptionPolicy ExceptionPolicy
	// RunAs is the run-as section: the user and group to run as once the
	// sockets are open. Empty when the file has none.
	RunAs RunAs
	// Notes lists what was ignored or assumed, such as the sections
	// other than those read, or threads set to "auto", file by file in
	// the order read, each file's in line order. Each reads
	// FILE:LINE: TEXT or FILE: TEXT.
	Notes []string
}

// ExceptionPolicy is Suricata's exception-policy, reduced to what a bridge
// can do when something fails: keep traffic moving or stop it. The zero
// value means the key was absent.
type ExceptionPolicy int

// Exception policies.
const (
	// ExceptionFailOpen is pass-packet, pass-flow, bypass and ignore:
	// traffic keeps moving.
	ExceptionFailOpen ExceptionPolicy = iota + 1
	// ExceptionFailClosed is drop-packet, drop-flow, reject, and auto
	// (which Suricata resolves to drop-flow in IPS mode): nothing that was
	// not inspected normally goes through.
	ExceptionFailClosed
)

// String returns "fail-open" or "fail-closed".
func (e ExceptionPolicy) String() string {
	switch e {
	case ExceptionFailOpen:
		return "fail-open"
	case ExceptionFailClosed:
		return "fail-closed"
	}
	return fmt.Sprintf("ExceptionPolicy(%d)", int(e))
}

// Load reads and parses the file at path; see Parse. A read failure is
// returned as the *fs.PathError from os.ReadFile.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}
