//go:build !linux

package bypass

import (
	"errors"
	"github.com/afbridge/afbridge/flow"
	"runtime"
	"syscall"

	"golang.org/x/net/bpf"
)

var errOS = &UnavailableError{Op: "open", Fix: "the fast path is Linux only", Err: errors.New("not implemented on " + runtime.GOOS)}

// Path is the kernel fast path; on this platform [Open] always fails with [ErrUnavailable].
type Path struct{}

// Filter is a fanout member's socket filter; it cannot be built on this platform.
type Filter struct{}

// Open returns an error matching [ErrUnavailable].
func Open(*Config) (*Path, error) { return nil, errOS }

// Attach returns an error matching [ErrUnavailable].
func (*Path) Attach(a, b int) error { return errOS }

// Filter returns an error matching [ErrUnavailable].
func (*Path) Filter(Side, int, []bpf.Instruction) (*Filter, error) { return nil, errOS }

// Add returns an error matching [ErrUnavailable].
func (*Path) Add(flow.Key) error { return errOS }

// Withdraw returns an error matching [ErrUnavailable].
func (*Path) Withdraw(flow.Key) (bool, error) { return false, errOS }

// WithdrawAll returns an error matching [ErrUnavailable].
func (*Path) WithdrawAll() (int, error) { return 0, errOS }

// Lookup returns an error matching [ErrUnavailable].
func (*Path) Lookup(flow.Key) (FlowStats, bool, error) { return FlowStats{}, false, errOS }

// Stats returns an error matching [ErrUnavailable].
func (*Path) Stats() (Stats, error) { return Stats{}, errOS }

// Close does nothing.
func (*Path) Close() error { return nil }

// Attach returns an error matching [ErrUnavailable].
func (*Filter) Attach(syscall.Conn) error { return errOS }

// Observe does nothing.
func (*Filter) Observe(packets, drops uint64) {}

// Settle reports false.
func (*Filter) Settle(received uint64) bool { return false }

// Admitted returns 0.
func (*Filter) Admitted() uint64 { return 0 }

// Close does nothing.
func (*Filter) Close() error { return nil }
