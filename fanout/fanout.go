package fanout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/net/bpf"
)

// Mode chooses the member that receives each frame. Its values are the kernel's
// PACKET_FANOUT_* modes.
//
// The zero Mode is Hash. That is the kernel's own zero, and it is deliberate: flow hashing is the
// mode an inline bridge needs, so a Group whose Mode was left out joins the right kind of group.
type Mode uint8

// Fanout modes (include/uapi/linux/if_packet.h).
const (
	// Hash sends each flow to one member, chosen by the kernel's symmetric flow hash: both
	// directions of a flow go to the same member. Suricata's cluster_flow.
	Hash Mode = 0
	// LB deals frames out round robin, ignoring flows. Suricata's cluster_round_robin.
	LB Mode = 1
	// CPU sends each frame to the member whose index is the receiving CPU modulo the member
	// count. Suricata's cluster_cpu.
	CPU Mode = 2
	// Rollover fills the first member and moves on to the next only when its buffer is full.
	Rollover Mode = 3
	// Random picks a member at random. Suricata's cluster_random.
	Random Mode = 4
	// QM uses the frame's receive queue (skb queue mapping) modulo the member count, so an RSS
	// NIC's queues map onto members. Suricata's cluster_qm.
	QM Mode = 5
	// CBPF runs the group's classic BPF program (Group.Program) and uses its return value
	// modulo the member count (Linux 4.3+).
	CBPF Mode = 6
	// EBPF runs a loaded BPF_PROG_TYPE_SOCKET_FILTER program (Group.ProgramFD) and uses its
	// return value modulo the member count (Linux 4.3+). Suricata's cluster_ebpf.
	EBPF Mode = 7
)

var modeNames = [...]string{
	Hash:     "hash",
	LB:       "lb",
	CPU:      "cpu",
	Rollover: "rollover",
	Random:   "random",
	QM:       "qm",
	CBPF:     "cbpf",
	EBPF:     "ebpf",
}

// Valid reports whether m is a mode this package knows.
func (m Mode) Valid() bool { return int(m) < len(modeNames) && modeNames[m] != "" }

// String returns the mode's short name ("hash", "lb", ...), or Mode(n) for an unknown value.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Flags change how a group behaves, whatever its Mode. Its values are the kernel's
// PACKET_FANOUT_FLAG_* bits, which sit above the mode in the option's type_flags word.
type Flags uint16

// Fanout flags (include/uapi/linux/if_packet.h).
const (
	// FlagRollover sends a frame to the next member with room when the chosen member's buffer
	// is full, instead of dropping it. It breaks flow affinity under load, which is why
	// Suricata deprecated it. Not allowed with the Rollover mode, which already does this.
	FlagRollover Flags = 0x1000
	// FlagUniqueID asks the kernel to create a new group with an unused id: Group.ID must be 0,
	// and Join returns the id chosen. Only the first socket passes it; the others join the id
	// Join returned, without the flag. The kernel drops the flag from the group's settings.
	FlagUniqueID Flags = 0x2000
	// FlagIgnoreOutgoing keeps frames the host sends out of the interface away from the group
	// (Linux 6.2+). PACKET_IGNORE_OUTGOING on a member socket has no effect once it joins a
	// group; this flag is the group-level equivalent. Older kernels accept the bit and ignore it,
	// so Join refuses it there: see Supported.
	FlagIgnoreOutgoing Flags = 0x4000
	// FlagDefrag reassembles IPv4 fragments before the group sees them, so that every fragment
	// of a datagram is hashed like its first one. The member then receives the whole datagram,
	// which may exceed the MTU.
	FlagDefrag Flags = 0x8000

	knownFlags = FlagRollover | FlagUniqueID | FlagIgnoreOutgoing | FlagDefrag
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{FlagRollover, "rollover"},
	{FlagUniqueID, "unique-id"},
	{FlagIgnoreOutgoing, "ignore-outgoing"},
	{FlagDefrag, "defrag"},
}

// String returns the flags' names joined by "|" ("defrag|rollover"), "none" for no flags, and
// unknown bits in hex.
func (f Flags) String() string {
	if f == 0 {
		return "none"
	}
	var parts []string
	for _, n := range flagNames {
		if f&n.f != 0 {
			parts = append(parts, n.name)
		}
	}
	if rest := f &^ knownFlags; rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint16(rest)))
	}
	return strings.Join(parts, "|")
}

// Group describes a fanout group and how a socket joins it.
type Group struct {
	// ID names the group within the network namespace: Suricata's cluster-id. With FlagUniqueID
	// it must be 0 and the kernel chooses it.
	ID uint16
	// Mode picks each frame's member. The zero Mode is Hash.
	Mode Mode
	// Flags are the group's flags; every member must pass the same ones.
	Flags Flags
	// Program is the classic BPF program of a CBPF group, assembled with golang.org/x/net/bpf.
	// Its return value, modulo the member count, is the member index. The program belongs to
	// the group, not the socket: setting it from any member replaces it for all. An empty
	// Program leaves the group's program as it is; until one is set the kernel sends every frame
	// to member 0.
	Program []bpf.Instruction
	// ProgramFD is the file descriptor of a loaded BPF_PROG_TYPE_SOCKET_FILTER program for an
	// EBPF group; like Program it is the group's. 0 means none (fd 0 is standard input).
	ProgramFD int
	// MaxMembers caps the group's size (Linux 5.11+, up to 65536). 0 means the kernel's
	// default: 256 for a new group, whatever the group has for an existing one. A non-zero value
	// must match the existing group's.
	MaxMembers uint32
}

// String describes the group as error messages do: "group 7 (mode hash, flags defrag)".
func (g Group) String() string {
	return fmt.Sprintf("group %d (mode %s, flags %s)", g.ID, g.Mode, g.Flags)
}

// validate checks what the kernel would refuse, or silently misread, before any system call.
// Errors wrap EINVAL, as the kernel's refusal would.
func (g Group) validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{syscall.EINVAL}, args...)...)
	}
	switch {
	case !g.Mode.Valid():
		return invalid("unknown mode %d", uint8(g.Mode))
	case g.Flags&^knownFlags != 0:
		return invalid("unknown flag bits %#x", uint16(g.Flags&^knownFlags))
	case g.Mode == Rollover && g.Flags&FlagRollover != 0:
		return invalid("the rollover flag cannot be combined with the rollover mode, which already rolls over")
	case g.Flags&FlagUniqueID != 0 && g.ID != 0:
		return invalid("the unique-id flag needs ID 0: the kernel chooses the id")
	case len(g.Program) > 0 && g.Mode != CBPF:
		return invalid("a classic BPF Program needs mode cbpf, not %s", g.Mode)
	case len(g.Program) > maxProgram:
		return invalid("the Program has %d instructions, more than the kernel's %d", len(g.Program), maxProgram)
	case g.ProgramFD != 0 && g.Mode != EBPF:
		return invalid("a ProgramFD needs mode ebpf, not %s", g.Mode)
	case g.ProgramFD < 0:
		return invalid("ProgramFD %d is not a file descriptor", g.ProgramFD)
	case g.MaxMembers > maxMembers:
		return invalid("MaxMembers %d exceeds the kernel's limit of %d", g.MaxMembers, maxMembers)
	}
	return nil
}

const (
	maxMembers = 1 << 16 // PACKET_FANOUT_MAX (net/packet/internal.h)
	maxProgram = 4096    // BPF_MAXINSNS (include/uapi/linux/bpf_common.h)
)

// Error is the error of every operation on a socket: it names the operation, the group and the
// socket's interface, and wraps the cause, typically an *os.SyscallError, so that
// errors.Is(err, unix.EINVAL) works. Hint says what the kernel's terse errno most likely means.
type Error struct {
	Op      string // "join", "set program", "read group"
	Group   Group  // the group asked for; for "read group", the zero Group
	Ifindex int    // the socket's bound interface: 0 for all interfaces, -1 if unknown
	Err     error
	Hint    string // empty when there is nothing to add
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("fanout: ")
	b.WriteString(e.Op)
	if e.Op != "read group" {
		b.WriteString(" ")
		b.WriteString(e.Group.String())
	}
	switch {
	case e.Ifindex > 0:
		fmt.Fprintf(&b, " on ifindex %d", e.Ifindex)
	case e.Ifindex == 0:
		b.WriteString(" on all interfaces")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// clusterTypes maps Suricata's af-packet cluster-type names onto modes, in the order Suricata's
// runmode-af-packet.c lists them.
var clusterTypes = []struct {
	name string
	mode Mode
}{
	{"cluster_round_robin", LB},
	{"cluster_flow", Hash},
	{"cluster_rollover", Rollover},
	{"cluster_cpu", CPU},
	{"cluster_qm", QM},
	{"cluster_random", Random},
	{"cluster_ebpf", EBPF},
}

// ErrClusterType is wrapped by ParseClusterType's error for a name it does not know.
var ErrClusterType = errors.New("unknown cluster-type")

// ParseClusterType maps a Suricata af-packet cluster-type onto a mode and flags:
//
//	cluster_flow         Hash
//	cluster_round_robin  LB
//	cluster_cpu          CPU
//	cluster_qm           QM
//	cluster_random       Random
//	cluster_rollover     Rollover
//	cluster_ebpf         EBPF
//	"" (not set)         Hash with FlagDefrag
//
// The empty name gives what Suricata uses when cluster-type is missing. For cluster_flow,
// Suricata adds FlagDefrag only when the interface's defrag option is on, so the caller adds it
// from its own configuration. Suricata has no name for CBPF. Since Suricata 7, cluster_rollover is
// a deprecated alias for cluster_flow (ticket #6128, rollover breaks flow tracking); here it
// keeps its original meaning, the Rollover mode. Names are matched exactly, as Suricata does.
// cluster_ebpf needs a program; package [github.com/afbridge/afbridge/fanout/ippair] has the
// equivalent of Suricata's IPS load balancer (ebpf/lb.c), which peer loads for EBPF.
func ParseClusterType(s string) (Mode, Flags, error) {
	if s == "" {
		return Hash, FlagDefrag, nil
	}
	for _, c := range clusterTypes {
		if c.name == s {
			return c.mode, 0, nil
		}
	}
	names := make([]string, len(clusterTypes))
	for i, c := range clusterTypes {
		names[i] = c.name
	}
	return 0, 0, fmt.Errorf("fanout: %w %q: want one of %s", ErrClusterType, s, strings.Join(names, ", "))
}
