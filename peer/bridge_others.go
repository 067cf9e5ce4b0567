//go:build !linux

package peer

import (
	"context"
	"fmt"
	"runtime"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/flow"
)

var errUnsupported = fmt.Errorf("peer: AF_PACKET bridging is not implemented on %s", runtime.GOOS)

// Bridge is an inline bridge between two interfaces; on this platform it cannot start.
type Bridge struct{}

// New returns a Bridge whose Start fails: AF_PACKET exists only on Linux.
func New(Config) (*Bridge, error) { return &Bridge{}, nil }

// Start returns an error: AF_PACKET exists only on Linux.
func (*Bridge) Start() error { return errUnsupported }

// Run returns an error: AF_PACKET exists only on Linux.
func (*Bridge) Run(context.Context) error { return errUnsupported }

// Close does nothing.
func (*Bridge) Close() error { return nil }

// Stats returns zero counters.
func (*Bridge) Stats() Stats { return Stats{} }

// Interfaces returns zero values.
func (*Bridge) Interfaces() (a, b afpacket.Interface) { return }

// Preflight reports that the bridge cannot run here.
func Preflight(Config) []Finding {
	return []Finding{{Severity: Critical, Problem: errUnsupported.Error(), Fix: "run on Linux"}}
}

// Withdraw does nothing: there is no fast path on this platform.
func (*Bridge) Withdraw(flow.Key) (bool, error) { return false, nil }

// WithdrawAll does nothing: there is no fast path on this platform.
func (*Bridge) WithdrawAll() (int, error) { return 0, nil }
