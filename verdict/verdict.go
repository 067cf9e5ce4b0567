// Package verdict is how a program decides, frame by frame, what an afbridge bridge does: pass the
// frame on or drop it.
//
// A Handler looks at a Packet and returns Pass or Drop. The bridge asks a Factory for one Handler
// per worker, so a stateful handler (a flow table, a rate limiter) keeps its state per worker and
// needs no lock: with equal thread counts on both sides, both directions of a flow are handled by
// the same worker. The package imports nothing else of afbridge, so drop logic depends on it alone.
package verdict

import (
	"fmt"
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
)

// String returns "pass" or "drop".
func (v Verdict) String() string {
	switch v {
	case Pass:
		return "pass"
	case Drop:
		return "drop"
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

// Func adapts a function to a Handler.
type Func func(p *Packet) Verdict

// Handle calls f(p).
func (f Func) Handle(p *Packet) Verdict { return f(p) }

// Factory makes the Handler for one worker. The bridge calls New once per worker before it starts
// forwarding (and again when a Switch changes), with worker in [0, threads).
type Factory interface {
	New(worker int) Handler
}

// FactoryFunc adapts a function to a Factory.
type FactoryFunc func(worker int) Handler

// New calls f(worker).
func (f FactoryFunc) New(worker int) Handler { return f(worker) }

// Shared returns a Factory that gives every worker the same Handler, which must then be safe for
// concurrent use.
func Shared(h Handler) Factory { return FactoryFunc(func(int) Handler { return h }) }

// PassAll passes every frame.
var PassAll Handler = Func(func(*Packet) Verdict { return Pass })

// DropAll drops every frame.
var DropAll Handler = Func(func(*Packet) Verdict { return Drop })

// Chain returns a Handler that asks each handler in order and drops the frame at the first Drop;
// later handlers are not asked. An empty chain passes everything.
func Chain(hs ...Handler) Handler {
	hs = append([]Handler(nil), hs...)
	return Func(func(p *Packet) Verdict {
		for _, h := range hs {
			if h.Handle(p) == Drop {
				return Drop
			}
		}
		return Pass
	})
}
