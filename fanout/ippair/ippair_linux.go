//go:build linux

package ippair

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/afbridge/afbridge/fanout"
	"github.com/cilium/ebpf"
)

// Program is the loaded IP-pair hash program. Its methods are safe for concurrent use.
type Program struct {
	mu   sync.Mutex
	prog *ebpf.Program
	opts Options
}

// ErrClosed is returned by [Program.Hash] and [Program.Group] after [Program.Close].
var ErrClosed = os.ErrClosed

// Load verifies and loads the program into the kernel. It needs CAP_BPF (or CAP_SYS_ADMIN)
// unless unprivileged BPF is enabled; the error says so. nil opts means the zero [Options].
func Load(opts *Options) (*Program, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name:         programName,
		Type:         ebpf.SocketFilter,
		License:      license,
		Instructions: Instructions(&o),
	}, ebpf.ProgramOptions{})
	if err != nil {
		hint := ""
		if errors.Is(err, os.ErrPermission) {
			hint = ": loading a BPF program needs CAP_BPF or CAP_SYS_ADMIN (run as root, or keep those capabilities until the bridge has started)"
		}
		return nil, fmt.Errorf("ippair: load program: %w%s", err, hint)
	}
	return &Program{prog: prog, opts: o}, nil
}

// FD returns the program's file descriptor for [fanout.Group.ProgramFD], or -1 after Close. The
// descriptor belongs to the Program: do not close it.
func (p *Program) FD() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prog == nil {
		return -1
	}
	return p.prog.FD()
}

// Group returns the [fanout.Group] a member joins to be balanced by this program: mode
// [fanout.EBPF] with the program's descriptor, the given id and flags. After Close the group's
// ProgramFD is -1, which [fanout.Join] refuses.
func (p *Program) Group(id uint16, flags fanout.Flags) fanout.Group {
	return fanout.Group{ID: id, Mode: fanout.EBPF, Flags: flags, ProgramFD: p.FD()}
}

// Hash runs the program on frame (from its MAC header, at least 14 bytes) with BPF_PROG_TEST_RUN
// and returns the value it returns to the fanout group, which picks member Hash % members. The
// frame is hashed as if it arrived untagged: a test run has no outer VLAN tag in its metadata.
func (p *Program) Hash(frame []byte) (uint32, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prog == nil {
		return 0, fmt.Errorf("ippair: hash: %w", ErrClosed)
	}
	v, err := p.prog.Run(&ebpf.RunOptions{Data: frame})
	if err != nil {
		return 0, fmt.Errorf("ippair: hash: %w", err)
	}
	return v, nil
}

// Close unloads the program. Groups that already use it keep it until their last member closes;
// the kernel holds its own reference. Close is idempotent.
func (p *Program) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prog == nil {
		return nil
	}
	err := p.prog.Close()
	p.prog = nil
	return err
}

// ID returns the kernel's id of the loaded program (as bpftool lists it), for tests and
// diagnostics; 0 after Close.
func (p *Program) ID() uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prog == nil {
		return 0
	}
	info, err := p.prog.Info()
	if err != nil {
		return 0
	}
	id, _ := info.ID()
	return uint32(id)
}
