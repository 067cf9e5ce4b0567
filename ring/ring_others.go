//go:build !linux

package ring

import (
	"fmt"
	"runtime"
)

// errUnsupported is what every function returns outside Linux.
var errUnsupported = fmt.Errorf("ring: not implemented on %s: AF_PACKET rings are Linux-only", runtime.GOOS)

// Map is the mapping of a socket's rings; outside Linux, New always fails.
type Map struct {
	RX *RX
	TX *TX
}

// New returns an error outside Linux.
func New(sock Socket, cfg *Config) (*Map, error) { return nil, errUnsupported }

// Config returns the zero Config outside Linux.
func (m *Map) Config() Config { return Config{} }

// Close does nothing outside Linux.
func (m *Map) Close() error { return nil }

// RX is the receive ring; outside Linux there is none.
type RX struct{}

// Next reports no frame outside Linux.
func (r *RX) Next(f *Frame) bool { return false }

// Release returns an error outside Linux.
func (r *RX) Release() error { return errUnsupported }

// Wait returns an error outside Linux.
func (r *RX) Wait() error { return errUnsupported }

// TX is the transmit ring; outside Linux there is none.
type TX struct{}

// Reserve reports no slot outside Linux.
func (t *TX) Reserve() ([]byte, bool) { return nil, false }

// Commit returns an error outside Linux.
func (t *TX) Commit(n int) error { return errUnsupported }

// Flush returns an error outside Linux.
func (t *TX) Flush() error { return errUnsupported }

// Discard returns an error outside Linux.
func (t *TX) Discard(n int) (int, error) { return 0, errUnsupported }

// Cancel returns 0 outside Linux.
func (t *TX) Cancel() int { return 0 }

// Pending returns 0 outside Linux.
func (t *TX) Pending() int { return 0 }

// Free returns 0 outside Linux.
func (t *TX) Free() int { return 0 }

// Rejected returns 0 outside Linux.
func (t *TX) Rejected() uint64 { return 0 }

// MaxLen returns 0 outside Linux.
func (t *TX) MaxLen() int { return 0 }
