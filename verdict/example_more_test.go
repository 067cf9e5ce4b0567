package verdict_test

import (
	"fmt"
	"log"

	"github.com/afbridge/afbridge/verdict"
	"golang.org/x/net/bpf"
)

// Chain a cBPF filter (tcpdump -dd "udp dst port 53" style, here written by hand) with a
// handler of your own: the filter runs first, and Drop wins.
func ExampleChain() {
	// Pass only IPv4 UDP to port 53; everything else returns 0, which drops.
	dnsOnly, err := verdict.BPF([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},                         // EtherType
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 5}, // IPv4?
		bpf.LoadAbsolute{Off: 23, Size: 1},                         // protocol
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 17, SkipFalse: 3},     // UDP?
		bpf.LoadMemShift{Off: 14},                                  // X = IP header length
		bpf.LoadIndirect{Off: 14 + 2, Size: 2},                     // destination port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 53, SkipFalse: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		log.Fatal(err)
	}
	var seen int
	count := verdict.Func(func(*verdict.Packet) verdict.Verdict { seen++; return verdict.Pass })
	h := verdict.Chain(dnsOnly, count)

	fmt.Println("DNS query:", h.Handle(&verdict.Packet{Data: udp4(53)}))
	fmt.Println("NTP:", h.Handle(&verdict.Packet{Data: udp4(123)}))
	fmt.Println("frames the second handler saw:", seen)
	// Output:
	// DNS query: pass
	// NTP: drop
	// frames the second handler saw: 1
}

// udp4 is an Ethernet, IPv4 and UDP header to port dport.
func udp4(dport uint16) []byte {
	return []byte{
		2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00,
		0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 19, 0, 1,
		0x9c, 0x40, byte(dport >> 8), byte(dport), 0, 8, 0, 0,
	}
}

// Replace the rules of a running bridge: give it a Switch as its Factory, and call Set. Set
// makes every worker's new Handler at once, on its own goroutine; each worker starts using its
// new Handler at its next frame or tick and retires the old one.
func ExampleSwitch() {
	rules := func(name string, v verdict.Verdict) verdict.Factory {
		return verdict.FactoryFunc(func(worker int) verdict.Handler {
			fmt.Printf("%s: handler for worker %d\n", name, worker)
			return verdict.Func(func(*verdict.Packet) verdict.Verdict { return v })
		})
	}
	sw := verdict.NewSwitch(rules("v1", verdict.Pass))
	// The bridge (peer.Config.Verdict = sw) asks for one handler per worker at Start:
	w0, w1 := sw.New(0), sw.New(1)
	p := &verdict.Packet{Data: udp4(53)}
	fmt.Println(w0.Handle(p), w1.Handle(p))

	// A reload, for example on SIGHUP:
	if err := sw.Set(rules("v2", verdict.Drop)); err != nil {
		log.Print(err) // a Factory that panics or returns nil changes nothing
	}
	fmt.Println(w0.Handle(p), w1.Handle(p))
	// Output:
	// v1: handler for worker 0
	// v1: handler for worker 1
	// pass pass
	// v2: handler for worker 0
	// v2: handler for worker 1
	// drop drop
}
