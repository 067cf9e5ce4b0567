package bypass_test

import (
	"errors"
	"log"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/bypass"
	"github.com/afbridge/afbridge/flow"
)

// Example shows the fast path's life with one bridge worker: open, attach to both ports, give the
// worker's sockets their filters, hand a flow over, settle after each flushed batch. peer does
// all of this when Config.Bypass is enabled.
func Example() {
	p, err := bypass.Open(&bypass.Config{Members: 1})
	if errors.Is(err, bypass.ErrUnavailable) {
		log.Printf("no fast path, Bypass means Pass: %v", err) // the error says what fixes it
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	a, _ := afpacket.InterfaceByName("eth1")
	b, _ := afpacket.InterfaceByName("eth2")
	if err := p.Attach(a.Index, b.Index); err != nil {
		log.Fatal(err)
	}
	// The worker's socket on eth1, opened with a drop-all filter that this one replaces.
	conn, err := afpacket.Listen("eth1", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	f, err := p.Filter(bypass.A, 0, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Attach(conn); err != nil {
		log.Fatal(err)
	}

	// The verdict bypassed a frame: its flow goes to the kernel.
	var pkt flow.Packet
	frame := []byte{ /* the frame as the verdict saw it */ }
	if flow.Parse(frame, &pkt) == nil && pkt.Bypassable() {
		_ = p.Add(pkt.Key)
	}

	// After taking each batch from the ring, before sending it:
	wants := f.Wants()
	if wants {
		if st, err := conn.Stats(); err == nil {
			f.Observe(st.Packets, st.Drops)
		}
	}
	// ... and once it is sent:
	var taken uint64 // frames the worker took from conn's ring so far
	if wants {
		f.Settle(taken)
	}
	st, _ := p.Stats()
	log.Printf("%d flows bypassed, %d frames forwarded A to B in the kernel", st.Current, st.Frames[bypass.A])
}
