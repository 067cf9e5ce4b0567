//go:build !linux

package ippair

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/afbridge/afbridge/fanout"
)

// Program is the loaded IP-pair hash program. It exists only on Linux.
type Program struct{}

// ErrClosed is returned by [Program.Hash] after [Program.Close].
var ErrClosed = os.ErrClosed

var errNotLinux = fmt.Errorf("ippair: PACKET_FANOUT_EBPF is not implemented on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Load loads the program. It works only on Linux.
func Load(opts *Options) (*Program, error) { return nil, errNotLinux }

// FD returns -1.
func (p *Program) FD() int { return -1 }

// Group returns an EBPF group without a program.
func (p *Program) Group(id uint16, flags fanout.Flags) fanout.Group {
	return fanout.Group{ID: id, Mode: fanout.EBPF, Flags: flags, ProgramFD: -1}
}

// Hash works only on Linux.
func (p *Program) Hash(frame []byte) (uint32, error) { return 0, errNotLinux }

// Close does nothing.
func (p *Program) Close() error { return nil }

// ID returns 0.
func (p *Program) ID() uint32 { return 0 }
