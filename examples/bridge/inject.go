//go:build linux

package main

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/afbridge/afbridge/afpacket"
	"golang.org/x/sys/unix"
)

// Reject rate limit, per worker: a token bucket of rejectBurst frames refilled at rejectRate
// frames a second. Suricata sends a reject for every matching packet without a limit, and Snort's
// limits (max_responses, min_response_seconds) count per session, which needs flow state the
// bridge does not keep; so the default is Linux's own stateless limit for the ICMP errors a host
// sends, net.ipv4.icmp_msgs_per_sec=1000 and icmp_msgs_burst=50. A host's ICMP budget is the
// right scale for what is, to the spoofed sender, a host's answer.
const (
	rejectRate  = 1000
	rejectBurst = 50
)

// monoBase anchors monoNow.
var monoBase = time.Now()

// monoNow is the monotonic clock in nanoseconds: a wall clock stepped back (NTP, an operator)
// would otherwise leave the limiter's bucket empty until it caught up.
func monoNow() int64 { return int64(time.Since(monoBase)) }

// limiter is a token bucket in the GCRA form: tat is the time at which the bucket is full
// again, so allow needs one clock read and no division. One per worker: no lock, no atomics.
type limiter struct {
	interval int64 // nanoseconds per token
	tau      int64 // burst tolerance: (burst-1) intervals
	tat      int64 // theoretical arrival time, in monoNow's nanoseconds
}

func newLimiter(rate, burst int) limiter {
	iv := int64(time.Second) / int64(rate)
	return limiter{interval: iv, tau: int64(burst-1) * iv}
}

// allow takes a token at now (monoNow) and reports whether there was one.
func (l *limiter) allow(now int64) bool {
	tat := max(l.tat, now)
	if tat-now > l.tau {
		return false
	}
	l.tat = tat + l.interval
	return true
}

// rejectTx is one worker's state for sending reject frames: the frame and the result of the
// send, and the send itself as a method value bound once, so that a send allocates nothing.
type rejectTx struct {
	frame []byte
	err   error
	fn    func(fd uintptr)
}

func newRejectTx() *rejectTx {
	tx := &rejectTx{}
	tx.fn = tx.send
	return tx
}

// send is called by syscall.RawConn.Control, which holds a reference on the descriptor, so a
// socket closed by a re-bind meanwhile cannot have its number reused under us. MSG_DONTWAIT: a
// full socket buffer or a full qdisc drops the reject (EAGAIN, ENOBUFS); the worker never waits.
// The socket is bound to its interface, so no address is needed.
func (tx *rejectTx) send(fd uintptr) {
	tx.err = unix.Sendto(int(fd), tx.frame, unix.MSG_DONTWAIT, nil)
}

// frameSender sends reject frames out of one side of a bridge: an *injector, or a fake in tests.
type frameSender interface {
	// send sends frame with tx without waiting; errFull means the socket or queue was full.
	send(tx *rejectTx, frame []byte) error
	Close() error
}

// errFull is returned by frameSender.send when the frame was dropped because the socket buffer
// or the interface's queue was full.
var errFull = errors.New("reject dropped: the port's send queue is full")

// injectSock is one open reject socket and the interface index it is bound to.
type injectSock struct {
	c       *afpacket.Conn
	rc      syscall.RawConn
	ifindex int
}

// injector is the reject socket of one side of a bridge. The socket is swapped, not locked, when
// the interface is re-created under its name (refresh), so workers never wait on it.
type injector struct {
	name string
	cur  atomic.Pointer[injectSock]
}

// openInjector opens a send-only packet socket on name. Send-only: a socket bound to a protocol
// would receive a clone of every frame the bridge forwards (dev_queue_xmit_nit), only for its
// filter to drop it; the profile showed that at 4% of the bridge's CPU.
func openInjector(name string) (*injector, error) {
	s, err := openInjectSock(name)
	if err != nil {
		return nil, err
	}
	in := &injector{name: name}
	in.cur.Store(s)
	return in, nil
}

func openInjectSock(name string) (*injectSock, error) {
	c, err := afpacket.Listen(name, &afpacket.Config{SendOnly: true})
	if err != nil {
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	return &injectSock{c: c, rc: rc, ifindex: c.Addr().Ifindex}, nil
}

func (in *injector) send(tx *rejectTx, frame []byte) error {
	s := in.cur.Load()
	if s == nil {
		return os.ErrClosed
	}
	tx.frame = frame
	if err := s.rc.Control(tx.fn); err != nil {
		return err // closed by a re-bind or at the end
	}
	switch tx.err {
	case nil:
		return nil
	case unix.EAGAIN, unix.ENOBUFS:
		return errFull
	}
	return os.NewSyscallError("sendto", tx.err)
}

// refresh re-opens the socket when the interface has been re-created under its name (a new
// ifindex), as peer.Bridge re-binds its own sockets. It reports whether it did; an interface
// that does not exist (yet) is left for the next call.
func (in *injector) refresh() (bool, error) {
	ifi, err := afpacket.InterfaceByName(in.name)
	if err != nil {
		return false, nil // gone for now: peer.Bridge waits for it too
	}
	old := in.cur.Load()
	if old != nil && old.ifindex == ifi.Index {
		return false, nil
	}
	s, err := openInjectSock(in.name)
	if err != nil {
		return false, err
	}
	in.cur.Store(s)
	if old != nil {
		// A worker still inside Control holds a reference: the descriptor is closed after it.
		old.c.Close()
	}
	return true, nil
}

// Close closes the socket; sends after it fail with os.ErrClosed.
func (in *injector) Close() error {
	if s := in.cur.Swap(nil); s != nil {
		return s.c.Close()
	}
	return nil
}
