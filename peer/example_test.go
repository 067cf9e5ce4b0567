//go:build linux

package peer_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
)

// tcpFlow is a flow key that is the same in both directions: the lower endpoint first. A real
// program also keys on the VLAN, IPv6 and fragments: see verdict's ExampleFactoryFunc.
type tcpFlow struct{ lo, hi [6]byte } // IPv4 address and port

// tcpPayload returns the key and payload length of an untagged IPv4 TCP frame.
func tcpPayload(b []byte) (k tcpFlow, n int, ok bool) {
	if len(b) < 54 || binary.BigEndian.Uint16(b[12:]) != 0x0800 || b[23] != 6 {
		return k, 0, false
	}
	ihl := int(b[14]&0xf) * 4
	if len(b) < 14+ihl+20 {
		return k, 0, false
	}
	var src, dst [6]byte
	copy(src[:4], b[26:30])
	copy(src[4:], b[14+ihl:14+ihl+2])
	copy(dst[:4], b[30:34])
	copy(dst[4:], b[14+ihl+2:14+ihl+4])
	if string(dst[:]) < string(src[:]) {
		src, dst = dst, src
	}
	total := min(int(binary.BigEndian.Uint16(b[16:])), len(b)-14)
	if total == 0 { // a GSO super-frame may leave it 0
		total = len(b) - 14
	}
	return tcpFlow{src, dst}, max(total-ihl-int(b[14+ihl+12]>>4)*4, 0), true
}

// quota drops a TCP flow once it has carried 10 MB, both ways together, and forgets flows idle
// for a minute. One quota serves one worker, so it needs no lock.
type quota struct {
	bytes map[tcpFlow]int
	last  map[tcpFlow]time.Time
}

func (q *quota) Handle(p *verdict.Packet) verdict.Verdict {
	k, n, ok := tcpPayload(p.Data)
	if !ok {
		return verdict.Pass
	}
	if _, known := q.bytes[k]; !known && len(q.bytes) >= 1<<20 {
		return verdict.Pass // the table is full: pass rather than grow without bound
	}
	q.bytes[k] += n
	q.last[k] = p.Time
	if q.bytes[k] > 10<<20 {
		return verdict.Drop
	}
	return verdict.Pass
}

// Tick runs on the worker's goroutine every Config.TickInterval, traffic or not.
func (q *quota) Tick(now time.Time) {
	for k, t := range q.last {
		if now.Sub(t) > time.Minute {
			delete(q.bytes, k)
			delete(q.last, k)
		}
	}
}

// An inline bridge between eth0 and eth1 with two workers and a per-flow quota, until SIGINT or
// SIGTERM. Both directions of a flow meet on one worker, so each worker's table holds whole
// flows. (TestExamples runs this on veth pairs named eth0 and eth1.)
func Example() {
	br, err := peer.New(peer.Config{
		A:       peer.Side{Interface: "eth0"},
		B:       peer.Side{Interface: "eth1"},
		Threads: 2,
		Verdict: verdict.FactoryFunc(func(worker int) verdict.Handler {
			return &quota{bytes: map[tcpFlow]int{}, last: map[tcpFlow]time.Time{}}
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := br.Run(ctx); err != nil {
		log.Fatal(err) // e.g. "peer: MTUs differ: eth0 has 1500, eth1 has 9000; ..."
	}
	st := br.Stats()
	fmt.Printf("A->B: %v\nB->A: %v\n", st.Dir(verdict.AToB), st.Dir(verdict.BToA))
}

// Print each direction's frame and bit rates every second: two snapshots' counters apart, over
// the time between them. (TestExamples runs this on veth pairs named eth0 and eth1.)
func ExampleBridge_Stats() {
	br, err := peer.New(peer.Config{A: peer.Side{Interface: "eth0"}, B: peer.Side{Interface: "eth1"}})
	if err != nil {
		log.Fatal(err)
	}
	if err := br.Start(); err != nil {
		log.Fatal(err)
	}
	defer br.Close()
	prev := br.Stats()
	fmt.Printf("%d workers\n", len(prev.Workers))
	for range 3 {
		time.Sleep(time.Second)
		cur := br.Stats()
		secs := cur.Time.Sub(prev.Time).Seconds()
		for _, d := range []verdict.Direction{verdict.AToB, verdict.BToA} {
			c := cur.Total[d].Sub(prev.Total[d])
			fmt.Printf("%v: %.0f frames/s, %.0f bit/s, %.0f dropped/s, %.0f kernel drops/s\n", d,
				float64(c.Received)/secs, 8*float64(c.Bytes)/secs, float64(c.Dropped)/secs, float64(c.KernelDrops)/secs)
		}
		prev = cur
	}
}

// Validate reports every problem at once, each a *peer.ConfigError naming the field.
func ExampleValidate() {
	err := peer.Validate(peer.Config{
		A:       peer.Side{Interface: "afb-none0"},
		B:       peer.Side{Interface: "afb-none0"},
		Threads: -2,
	})
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *peer.ConfigError
		if errors.As(e, &ce) {
			fmt.Printf("%s: %v\n", ce.Field, e)
		}
	}
	// Output:
	// Interface: peer: interface afb-none0 is peered with itself: A and B must be two different interfaces
	// Threads: peer: threads -2 is negative; use 0 or 1 for one worker
	// Interface: peer: side A: interface afpacket afb-none0: if_nametoindex: no such device: no interface named "afb-none0" in this network namespace; list them with `ip link`
	// Interface: peer: side B: interface afpacket afb-none0: if_nametoindex: no such device: no interface named "afb-none0" in this network namespace; list them with `ip link`
}

// Preflight lists what would make the IPS silently ineffective, with the fix for each; it does
// not stop the bridge from starting. (TestExamples runs this on veth pairs named eth0 and eth1,
// with an address on eth1.)
func ExamplePreflight() {
	cfg := peer.Config{A: peer.Side{Interface: "eth0"}, B: peer.Side{Interface: "eth1"}}
	if err := peer.Validate(cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	for _, f := range peer.Preflight(cfg) {
		fmt.Println(f)
	}
	// For example:
	// critical: eth1: has IP address 198.18.0.9/24: the host itself answers and sends on a bridged port; fix: ip addr del 198.18.0.9/24 dev eth1
}
