//go:build linux

package fanout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/afbridge/afbridge/internal/tpacket"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The package's values are the kernel's; a mismatch fails to compile (a negative constant
// overflows the uint conversion).
const (
	_ = uint(unix.PACKET_FANOUT_HASH - int(Hash))
	_ = uint(int(Hash) - unix.PACKET_FANOUT_HASH)
	_ = uint(unix.PACKET_FANOUT_LB - int(LB))
	_ = uint(int(LB) - unix.PACKET_FANOUT_LB)
	_ = uint(unix.PACKET_FANOUT_CPU - int(CPU))
	_ = uint(int(CPU) - unix.PACKET_FANOUT_CPU)
	_ = uint(unix.PACKET_FANOUT_ROLLOVER - int(Rollover))
	_ = uint(int(Rollover) - unix.PACKET_FANOUT_ROLLOVER)
	_ = uint(unix.PACKET_FANOUT_RND - int(Random))
	_ = uint(int(Random) - unix.PACKET_FANOUT_RND)
	_ = uint(unix.PACKET_FANOUT_QM - int(QM))
	_ = uint(int(QM) - unix.PACKET_FANOUT_QM)
	_ = uint(unix.PACKET_FANOUT_CBPF - int(CBPF))
	_ = uint(int(CBPF) - unix.PACKET_FANOUT_CBPF)
	_ = uint(unix.PACKET_FANOUT_EBPF - int(EBPF))
	_ = uint(int(EBPF) - unix.PACKET_FANOUT_EBPF)
	_ = uint(unix.PACKET_FANOUT_FLAG_ROLLOVER - int(FlagRollover))
	_ = uint(int(FlagRollover) - unix.PACKET_FANOUT_FLAG_ROLLOVER)
	_ = uint(unix.PACKET_FANOUT_FLAG_UNIQUEID - int(FlagUniqueID))
	_ = uint(int(FlagUniqueID) - unix.PACKET_FANOUT_FLAG_UNIQUEID)
	_ = uint(unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING - int(FlagIgnoreOutgoing))
	_ = uint(int(FlagIgnoreOutgoing) - unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING)
	_ = uint(unix.PACKET_FANOUT_FLAG_DEFRAG - int(FlagDefrag))
	_ = uint(int(FlagDefrag) - unix.PACKET_FANOUT_FLAG_DEFRAG)
	_ = uint(tpacket.FanoutMax - maxMembers)
	_ = uint(maxMembers - tpacket.FanoutMax)
)

// Join adds the socket to the fanout group g and returns the group as the kernel now reports it
// for the socket: with FlagUniqueID, ID is the id the kernel chose and the flag is gone; Program,
// ProgramFD and MaxMembers are g's. sock is any AF_PACKET socket, such as an *afpacket.Conn or an
// *os.File.
//
// The socket must already be bound with a non-zero protocol (ETH_P_ALL, say): the kernel hooks a
// socket into the receive path only then, and refuses to add an unhooked socket to a group.
// Before Linux 6.13 the interface must also be up.
//
// For a CBPF or EBPF group, Join sets the program (PACKET_FANOUT_DATA) after joining, because
// the kernel keeps the program in the group, which exists only once a socket is in it. If the
// kernel refuses the program, the socket stays in the group (there is no way out but closing it)
// and the error says so.
//
// A socket joins one group in its lifetime; see the package documentation for member order and
// leaving.
func Join(sock syscall.Conn, g Group) (Group, error) {
	if err := g.validate(); err != nil {
		return Group{}, &Error{Op: "join", Group: g, Ifindex: -1, Err: err}
	}
	var filter []unix.SockFilter
	if len(g.Program) > 0 {
		raw, err := bpf.Assemble(g.Program)
		if err != nil {
			return Group{}, &Error{Op: "join", Group: g, Ifindex: -1, Err: fmt.Errorf("%w: assemble program: %w", unix.EINVAL, err)}
		}
		filter = make([]unix.SockFilter, len(raw))
		for i, ins := range raw {
			filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
		}
	}
	rc, err := sock.SyscallConn()
	if err != nil {
		return Group{}, &Error{Op: "join", Group: g, Ifindex: -1, Err: err}
	}

	var (
		joined Group
		jerr   *Error
	)
	cerr := rc.Control(func(fd uintptr) {
		joined, jerr = join(int(fd), g, filter)
	})
	if cerr != nil {
		return Group{}, &Error{Op: "join", Group: g, Ifindex: -1, Err: cerr}
	}
	if jerr != nil {
		return Group{}, jerr
	}
	return joined, nil
}

func join(fd int, g Group, filter []unix.SockFilter) (Group, *Error) {
	ifindex, proto := boundTo(fd)
	fail := func(err error, hint string) *Error {
		return &Error{Op: "join", Group: g, Ifindex: ifindex, Err: err, Hint: hint}
	}
	if g.Flags&FlagIgnoreOutgoing != 0 && !Supported(FlagIgnoreOutgoing) {
		return Group{}, fail(fmt.Errorf("%w: PACKET_FANOUT_FLAG_IGNORE_OUTGOING needs Linux 6.2+, this kernel is %s",
			errors.ErrUnsupported, kernelRelease()),
			"older kernels accept the flag and ignore it; join without it and skip PACKET_OUTGOING frames yourself")
	}

	arg := uint32(g.ID) | (uint32(g.Mode)|uint32(g.Flags))<<16
	var err error
	if g.MaxMembers == 0 {
		err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, int(arg))
	} else {
		// struct fanout_args, the long form that also sets the member limit.
		args := tpacket.FanoutArgs{IDTypeFlags: arg, MaxNumMembers: g.MaxMembers}
		b := make([]byte, 0, tpacket.SizeofFanoutArgs)
		b = binary.NativeEndian.AppendUint32(b, args.IDTypeFlags)
		b = binary.NativeEndian.AppendUint32(b, args.MaxNumMembers)
		err = unix.SetsockoptString(fd, unix.SOL_PACKET, unix.PACKET_FANOUT, string(b))
	}
	if err != nil {
		return Group{}, fail(os.NewSyscallError("setsockopt", err), joinHint(fd, g, ifindex, proto, err))
	}

	switch {
	case filter != nil:
		fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		err = unix.SetsockoptSockFprog(fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, &fprog)
	case g.ProgramFD != 0:
		err = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, g.ProgramFD)
	}
	if err != nil {
		return Group{}, fail(os.NewSyscallError("setsockopt", err),
			"the socket joined the group but the kernel refused its program ("+programHint(err)+
				"); the socket stays a member until it is closed")
	}

	// The socket is a member now, so a reading of 0 is group 0 in mode hash without flags.
	got, _, err := readGroup(fd)
	if err != nil {
		return Group{}, fail(err, "the socket joined the group, but reading it back failed")
	}
	got.Program, got.ProgramFD, got.MaxMembers = g.Program, g.ProgramFD, g.MaxMembers
	return got, nil
}

// GroupOf returns the group the socket belongs to, with ID, Mode and Flags as the kernel reports
// them, and false if it belongs to none.
//
// The kernel answers 0 both for "no group" and for group 0 in mode hash without flags; GroupOf
// then asks the socket diagnostics interface (sock_diag), which tells the two apart when the
// calling thread is in the socket's network namespace, and otherwise reports false.
func GroupOf(sock syscall.Conn) (Group, bool, error) {
	rc, err := sock.SyscallConn()
	if err != nil {
		return Group{}, false, &Error{Op: "read group", Ifindex: -1, Err: err}
	}
	var (
		g    Group
		ok   bool
		gerr error
		ifi  = -1
	)
	cerr := rc.Control(func(fd uintptr) {
		ifi, _ = boundTo(int(fd))
		g, ok, gerr = groupOf(int(fd))
	})
	if cerr != nil {
		gerr = cerr
	}
	if gerr != nil {
		return Group{}, false, &Error{Op: "read group", Ifindex: ifi, Err: gerr}
	}
	return g, ok, nil
}

// readGroup reads PACKET_FANOUT: id | mode << 16 | flags << 24, where the flags are the
// option's type_flags >> 8. It returns the raw value too: 0 is ambiguous.
func readGroup(fd int) (Group, uint32, error) {
	v, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
	if err != nil {
		return Group{}, 0, os.NewSyscallError("getsockopt", err)
	}
	u := uint32(v)
	return Group{ID: uint16(u), Mode: Mode(u >> 16), Flags: Flags(u>>24) << 8}, u, nil
}

func groupOf(fd int) (Group, bool, error) {
	g, u, err := readGroup(fd)
	if err != nil {
		return Group{}, false, err
	}
	if u != 0 {
		return g, true, nil
	}
	self, err := selfDiag(fd)
	if err != nil || self == nil {
		return Group{}, false, nil
	}
	return g, self.inGroup, nil
}

// SetProgram replaces the classic BPF program of the CBPF group the socket belongs to. The
// program is the group's, so the change applies to every member at once; the kernel swaps it
// atomically.
func SetProgram(sock syscall.Conn, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return &Error{Op: "set program", Group: Group{Mode: CBPF}, Ifindex: -1, Err: fmt.Errorf("%w: assemble program: %w", unix.EINVAL, err)}
	}
	if len(raw) == 0 || len(raw) > maxProgram {
		return &Error{Op: "set program", Group: Group{Mode: CBPF}, Ifindex: -1,
			Err: fmt.Errorf("%w: a program has 1 to %d instructions, not %d", unix.EINVAL, maxProgram, len(raw))}
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return setData(sock, func(fd int) error {
		fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		return unix.SetsockoptSockFprog(fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, &fprog)
	})
}

// SetProgramFD replaces the eBPF program of the EBPF group the socket belongs to with the loaded
// BPF_PROG_TYPE_SOCKET_FILTER program progFD. The kernel takes its own reference: the caller may
// close progFD afterwards.
func SetProgramFD(sock syscall.Conn, progFD int) error {
	return setData(sock, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_FANOUT_DATA, progFD)
	})
}

func setData(sock syscall.Conn, set func(fd int) error) error {
	rc, err := sock.SyscallConn()
	if err != nil {
		return &Error{Op: "set program", Ifindex: -1, Err: err}
	}
	var serr *Error
	cerr := rc.Control(func(fd uintptr) {
		ifindex, _ := boundTo(int(fd))
		g, ok, _ := groupOf(int(fd))
		if err := set(int(fd)); err != nil {
			hint := programHint(err)
			if !ok {
				hint = "the socket is in no fanout group: join a cbpf or ebpf group first"
			} else if g.Mode != CBPF && g.Mode != EBPF {
				hint = "the socket's group has mode " + g.Mode.String() + "; only cbpf and ebpf groups take a program"
			}
			serr = &Error{Op: "set program", Group: g, Ifindex: ifindex, Err: os.NewSyscallError("setsockopt", err), Hint: hint}
		}
	})
	if cerr != nil {
		return &Error{Op: "set program", Ifindex: -1, Err: cerr}
	}
	if serr != nil {
		return serr
	}
	return nil
}

func programHint(err error) string {
	switch {
	case errors.Is(err, unix.EPERM):
		return "the socket's filter is locked (SO_LOCK_FILTER)"
	case errors.Is(err, unix.EINVAL):
		return "the group's mode takes no program of this kind, or the program does not verify"
	case errors.Is(err, unix.EBADF):
		return "the program fd is not open"
	}
	return "an eBPF program must be a loaded BPF_PROG_TYPE_SOCKET_FILTER"
}

// Supported reports whether the running kernel honours every flag in f, judged by its release
// (uname -r): FlagDefrag needs Linux 3.1, FlagRollover 3.10, FlagUniqueID 4.12 and
// FlagIgnoreOutgoing 6.2. Unknown bits are never supported.
//
// The check matters for FlagIgnoreOutgoing: older kernels take the bit without complaint and
// deliver outgoing frames all the same, so a caller that gets false should join without it and
// skip frames whose packet type is PACKET_OUTGOING. A distribution kernel that backported the
// flag under an older release number is reported unsupported, which costs only that filtering.
func Supported(f Flags) bool {
	if f&^knownFlags != 0 {
		return false
	}
	major, minor, ok := parseRelease(kernelRelease())
	if !ok {
		return false
	}
	for _, s := range flagSince {
		if f&s.f != 0 && (major < s.major || major == s.major && minor < s.minor) {
			return false
		}
	}
	return true
}

var flagSince = []struct {
	f            Flags
	major, minor int
}{
	{FlagDefrag, 3, 1},
	{FlagRollover, 3, 10},
	{FlagUniqueID, 4, 12},
	{FlagIgnoreOutgoing, 6, 2},
}

// kernelRelease returns uname -r; tests replace it.
var kernelRelease = func() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// parseRelease reads major and minor from a release such as "6.18.44-fc-v782".
func parseRelease(rel string) (major, minor int, ok bool) {
	maj, rest, ok := strings.Cut(rel, ".")
	if !ok || !allDigits(maj) {
		return 0, 0, false
	}
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(rest[:end])
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return a, b, true
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// boundTo returns the socket's bound ifindex (0: all interfaces; -1: unknown) and protocol in
// host byte order.
func boundTo(fd int) (ifindex int, proto uint16) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return -1, 0
	}
	ll, ok := sa.(*unix.SockaddrLinklayer)
	if !ok {
		return -1, 0
	}
	return ll.Ifindex, ntohs(ll.Protocol)
}

// ntohs converts a sockaddr_ll protocol, which x/sys/unix copies unconverted, to host order.
func ntohs(v uint16) uint16 {
	return binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, v))
}
