package ring

import (
	"syscall"
	"time"
)

// Socket is the AF_PACKET socket a ring is built on; *afpacket.Conn satisfies it, and so does an
// *os.File holding a non-blocking AF_PACKET socket. The ring uses SyscallConn for its socket
// options, mmap and send(2), and waits for frames in the runtime poller through RawConn.Read, so
// the descriptor must be non-blocking and registered with the poller (os.NewFile does that for a
// non-blocking descriptor). SetReadDeadline bounds RX.Wait; Close uses it to wake a waiter.
type Socket interface {
	SyscallConn() (syscall.RawConn, error)
	SetReadDeadline(t time.Time) error
}
