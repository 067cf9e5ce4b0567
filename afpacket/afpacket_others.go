//go:build !linux

package afpacket

import (
	"fmt"
	"net"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/net/bpf"
)

var errUnsupported = fmt.Errorf("afpacket: AF_PACKET sockets are not implemented on %s", runtime.GOOS)

// Conn is an AF_PACKET socket; on this platform it cannot be opened.
type Conn struct{}

var _ net.PacketConn = (*Conn)(nil)

// Listen returns an error: AF_PACKET exists only on Linux.
func Listen(string, *Config) (*Conn, error) { return nil, errUnsupported }

// ListenIndex returns an error: AF_PACKET exists only on Linux.
func ListenIndex(int, *Config) (*Conn, error) { return nil, errUnsupported }

// InterfaceByName returns an error: AF_PACKET exists only on Linux.
func InterfaceByName(string) (Interface, error) { return Interface{}, errUnsupported }

// InterfaceByIndex returns an error: AF_PACKET exists only on Linux.
func InterfaceByIndex(int) (Interface, error) { return Interface{}, errUnsupported }

// SetBPF returns an error: AF_PACKET exists only on Linux.
func (*Conn) SetBPF([]bpf.Instruction) error { return errUnsupported }

// Stats returns an error: AF_PACKET exists only on Linux.
func (*Conn) Stats() (Stats, error) { return Stats{}, errUnsupported }

// Addr returns nil.
func (*Conn) Addr() *Addr { return nil }

// LocalAddr returns nil.
func (*Conn) LocalAddr() net.Addr { return nil }

// Config returns the zero Config.
func (*Conn) Config() Config { return Config{} }

// Interface returns an error: AF_PACKET exists only on Linux.
func (*Conn) Interface() (Interface, error) { return Interface{}, errUnsupported }

// SyscallConn returns an error: AF_PACKET exists only on Linux.
func (*Conn) SyscallConn() (syscall.RawConn, error) { return nil, errUnsupported }

// SetDeadline returns an error: AF_PACKET exists only on Linux.
func (*Conn) SetDeadline(time.Time) error { return errUnsupported }

// SetReadDeadline returns an error: AF_PACKET exists only on Linux.
func (*Conn) SetReadDeadline(time.Time) error { return errUnsupported }

// SetWriteDeadline returns an error: AF_PACKET exists only on Linux.
func (*Conn) SetWriteDeadline(time.Time) error { return errUnsupported }

// Close returns an error: AF_PACKET exists only on Linux.
func (*Conn) Close() error { return errUnsupported }

// ReadFrom returns an error: AF_PACKET exists only on Linux.
func (*Conn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, errUnsupported }

// ReadMsg returns an error: AF_PACKET exists only on Linux.
func (*Conn) ReadMsg([]byte) (int, Info, error) { return 0, Info{}, errUnsupported }

// WriteTo returns an error: AF_PACKET exists only on Linux.
func (*Conn) WriteTo([]byte, net.Addr) (int, error) { return 0, errUnsupported }
