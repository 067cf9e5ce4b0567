// Package verdict is how a program decides, frame by frame, what an afbridge bridge does: pass the
// frame on, drop it, or pass it and declare its flow done ([Bypass]).
//
// A [Handler] looks at a [Packet] and returns a [Verdict]. The bridge asks a [Factory] for one
// Handler per worker, so a stateful handler (a flow table, a rate limiter) keeps its state per
// worker and needs no lock: the bridge's fanout keeps both directions of a flow on one worker. A
// Handler may also implement [Ticker], to expire state on a timer even when no frame arrives,
// and [Closer], to release what it holds when the bridge retires it (at Close, or after a
// [Switch] replaced it).
//
// The package imports nothing else of afbridge, so drop logic depends on it alone.
package verdict

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Verdict is a Handler's decision about one frame.
type Verdict uint8

const (
	// Pass forwards the frame. It is the zero value, so a handler that forgets to decide forwards
	// rather than silently black-holing traffic.
	Pass Verdict = iota
	// Drop discards the frame in ips mode; in tap mode the frame is still forwarded and counted as
	// a would-drop.
	Drop
	// Bypass passes the frame and says the program is done with its flow: later frames of the
	// flow may skip the verdict and be forwarded by the kernel's fast path. Where no fast path is
	// configured it means Pass (the bridge counts it apart, see peer.Counters.Bypassed), so a
	// handler must still give a verdict for every frame it is asked about.
	Bypass
)

// String returns "pass", "drop" or "bypass".
func (v Verdict) String() string {
	switch v {
	case Pass:
		return "pass"
	case Drop:
		return "drop"
	case Bypass:
		return "bypass"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Direction says which way a frame crosses the bridge.
type Direction uint8

const (
	// AToB is a frame received on side A, leaving through side B.
	AToB Direction = iota
	// BToA is a frame received on side B, leaving through side A.
	BToA
)

// String returns "A->B" or "B->A".
func (d Direction) String() string {
	if d == AToB {
		return "A->B"
	}
	return "B->A"
}

// Status holds facts the kernel reported about a frame.
type Status uint32

const (
	// ChecksumNotReady: the frame's transport checksum is unfinished (checksum offload); the
	// bridge or the kernel completes it on transmit.
	ChecksumNotReady Status = 1 << iota
	// ChecksumValid: the receiving device already verified the transport checksum.
	ChecksumValid
	// GSO: the frame is a segmentation-offload super-frame that the kernel splits into MTU-sized
	// frames on transmit; Data may be far larger than the MTU.
	GSO
	// VLAN: the frame carried an outer VLAN tag, which Data includes again.
	VLAN
	// Reassembled: the frame is an IPv4 datagram the kernel reassembled from fragments (fanout
	// defrag), which the bridge fragments again, keeping DF as it was, if it exceeds the egress
	// MTU. AF_PACKET does not say which frames were reassembled, so the flag is set exactly when
	// defrag is on and the datagram (not itself a fragment, without GSO status) is longer than the
	// ingress port's MTU, which no frame on the wire can be. A reassembled datagram that fits the
	// MTU looks like one sent whole and leaves whole, without the flag.
	Reassembled
)

// Interface names one side of the bridge.
type Interface struct {
	Index int
	Name  string
}

// Packet is the view of one frame handed to a Handler. It is valid only during the call: the bridge
// reuses it and its Data for the next frame, so a handler that wants to keep anything must copy it.
type Packet struct {
	// Data is the frame exactly as it will be sent, from the destination MAC on: the outer VLAN tag
	// the kernel stripped on receive is restored, with its real TPID. It is writable, and a handler
	// may rewrite bytes in place (its length is fixed); the rewritten frame is what leaves. A
	// handler that changes bytes covered by a checksum must fix the checksum itself.
	Data []byte
	// Len is the frame's length on the wire when it was received (before the VLAN tag was put back).
	Len int
	// In is the interface the frame arrived on, Out the one it leaves through.
	In, Out Interface
	// Dir is the direction, Worker the index of the worker handling it (0 ≤ Worker < threads).
	Dir    Direction
	Worker int
	// Time is when the kernel received the frame.
	Time time.Time
	// Status holds the kernel's facts about the frame.
	Status Status
}

// Handler decides what happens to a frame.
//
// Handle is called from one worker goroutine at a time for a given Handler returned by a Factory,
// so per-worker handlers need no locking. A Handler that panics is contained: the bridge applies
// its failure policy to the frame and counts the panic.
type Handler interface {
	Handle(p *Packet) Verdict
}

// Ticker is an optional interface a [Handler] implements to be called on a timer: the bridge
// calls Tick on the worker's goroutine, between frames (never during Handle), about once per
// peer.Config.TickInterval, whether or not frames arrive. now is the time of the call. It is the
// place to expire idle flows from a per-worker table. A Tick that panics is contained and counted
// like a Handle that panics.
type Ticker interface {
	Tick(now time.Time)
}

// Closer is an optional interface a [Handler] implements to release what it holds (flush logs,
// free a table) when the bridge retires it: when the bridge closes, after its workers have
// stopped, or when a [Switch] has replaced it. Close is called at most once, after the last call
// to Handle or Tick, and never concurrently with them. The bridge logs the error of a Handler it
// retires; a Switch discards the errors of the Handlers it replaces. A method Close() without a
// result is called too, so either form works.
type Closer interface {
	Close() error
}

// Retire calls h's Close method, if h implements [Closer] or has a Close() method without a
// result, and returns its error; a panic in Close is returned as an error. Wrappers such as
// [Chain] and [Switch] call it on the handlers they hold; a program that retires handlers of its
// own can use it too.
func Retire(h Handler) (err error) {
	if h == nil {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("verdict: Close panicked: %v", r)
		}
	}()
	switch c := h.(type) {
	case Closer:
		return c.Close()
	case interface{ Close() }:
		c.Close()
	}
	return nil
}

// Func adapts a function to a Handler.
type Func func(p *Packet) Verdict

// Handle calls f(p).
func (f Func) Handle(p *Packet) Verdict { return f(p) }

// Factory makes the Handler for one worker.
//
// A bridge with n workers calls New exactly once for each worker in [0, n), in order, from the
// goroutine that calls its Start, before any frame is forwarded and with none of the bridge's
// locks held: New may call the bridge's methods (Stats, for example). New must return a non-nil
// Handler; a nil Handler or a panic makes Start fail with an error that says so, and the bridge
// retires the Handlers already made. Each Handler is then used by its worker's goroutine alone
// until the bridge retires it.
//
// A [Switch] calls the New of the Factory it holds at the same moments, and again for every
// worker each time [Switch.Set] changes the Factory: on the goroutine that calls Set, one call at
// a time.
type Factory interface {
	New(worker int) Handler
}

// FactoryFunc adapts a function to a Factory.
type FactoryFunc func(worker int) Handler

// New calls f(worker).
func (f FactoryFunc) New(worker int) Handler { return f(worker) }

// Shared returns a Factory that gives every worker the same Handler, which must then be safe for
// concurrent use. If h implements [Ticker], every worker calls its Tick, concurrently; if it
// implements [Closer], it is closed once, when the last worker's handle on it is retired. A nil
// h gives a Factory whose New returns nil, which a bridge refuses with [ErrNilHandler].
func Shared(h Handler) Factory {
	if h == nil {
		return FactoryFunc(func(int) Handler { return nil })
	}
	s := &shared{h: h}
	_, tick := h.(Ticker)
	return FactoryFunc(func(int) Handler {
		s.refs.Add(1)
		if tick {
			return &sharedTicker{sharedRef{s}}
		}
		return &sharedRef{s}
	})
}

type shared struct {
	h    Handler
	refs atomic.Int64
}

// sharedRef is one worker's handle on a shared Handler.
type sharedRef struct{ s *shared }

func (r *sharedRef) Handle(p *Packet) Verdict { return r.s.h.Handle(p) }

// Close closes the shared Handler when the last handle on it closes.
func (r *sharedRef) Close() error {
	if r.s.refs.Add(-1) == 0 {
		return Retire(r.s.h)
	}
	return nil
}

type sharedTicker struct{ sharedRef }

func (r *sharedTicker) Tick(now time.Time) { r.s.h.(Ticker).Tick(now) }

// PassAll passes every frame.
var PassAll Handler = Func(func(*Packet) Verdict { return Pass })

// DropAll drops every frame.
var DropAll Handler = Func(func(*Packet) Verdict { return Drop })

// Chain returns a Handler that asks each handler in order. Drop wins: the chain drops the frame
// at the first Drop, and later handlers are not asked. Bypass needs a consensus: the chain
// returns Bypass only if every handler said Bypass, and Pass otherwise. An empty chain passes
// everything (it never bypasses).
//
// The chain implements [Closer], and [Ticker] if any of its handlers does: Tick and Close are
// passed on, in order, to the handlers that implement them.
func Chain(hs ...Handler) Handler {
	c := &chain{hs: append([]Handler(nil), hs...)}
	for _, h := range c.hs {
		if t, ok := h.(Ticker); ok {
			c.tickers = append(c.tickers, t)
		}
	}
	if len(c.tickers) > 0 {
		return &tickingChain{c}
	}
	return c
}

type chain struct {
	hs      []Handler
	tickers []Ticker
}

// tickingChain is a chain with handlers to tick.
type tickingChain struct{ *chain }

func (c *chain) Handle(p *Packet) Verdict {
	if len(c.hs) == 0 {
		return Pass
	}
	v := Bypass
	for _, h := range c.hs {
		switch h.Handle(p) {
		case Drop:
			return Drop
		case Bypass:
		default:
			v = Pass
		}
	}
	return v
}

// Tick calls Tick on each handler that implements [Ticker].
func (c *tickingChain) Tick(now time.Time) {
	for _, t := range c.tickers {
		t.Tick(now)
	}
}

// Close retires every handler (see [Retire]) and returns their errors, joined.
func (c *chain) Close() error {
	var errs []error
	for _, h := range c.hs {
		errs = append(errs, Retire(h))
	}
	return errors.Join(errs...)
}
