//go:build !linux

package fanout

import (
	"errors"
	"fmt"
	"runtime"
	"syscall"

	"golang.org/x/net/bpf"
)

// errNotLinux is the cause of every error outside Linux, which alone has PACKET_FANOUT.
var errNotLinux = fmt.Errorf("PACKET_FANOUT is not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Join adds the socket to the fanout group g. It works only on Linux.
func Join(sock syscall.Conn, g Group) (Group, error) {
	return Group{}, &Error{Op: "join", Group: g, Ifindex: -1, Err: errNotLinux}
}

// GroupOf returns the group the socket belongs to. It works only on Linux.
func GroupOf(sock syscall.Conn) (Group, bool, error) {
	return Group{}, false, &Error{Op: "read group", Ifindex: -1, Err: errNotLinux}
}

// SetProgram replaces the classic BPF program of the socket's CBPF group. It works only on Linux.
func SetProgram(sock syscall.Conn, prog []bpf.Instruction) error {
	return &Error{Op: "set program", Ifindex: -1, Err: errNotLinux}
}

// SetProgramFD replaces the eBPF program of the socket's EBPF group. It works only on Linux.
func SetProgramFD(sock syscall.Conn, progFD int) error {
	return &Error{Op: "set program", Ifindex: -1, Err: errNotLinux}
}

// Supported reports whether the running kernel honours every flag in f: never, outside Linux.
func Supported(f Flags) bool { return false }
