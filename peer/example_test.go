//go:build linux

package peer_test

import (
	"bytes"
	"context"
	"log"
	"os/signal"
	"syscall"

	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
)

// An inline bridge between eth0 and eth1 with two workers that drops every frame carrying the
// bytes "forbidden", until SIGINT or SIGTERM.
func Example() {
	block := verdict.Func(func(p *verdict.Packet) verdict.Verdict {
		if bytes.Contains(p.Data, []byte("forbidden")) {
			return verdict.Drop
		}
		return verdict.Pass
	})
	br, err := peer.New(peer.Config{
		A:       peer.Side{Interface: "eth0"},
		B:       peer.Side{Interface: "eth1"},
		Threads: 2,
		Verdict: verdict.Shared(block),
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := br.Run(ctx); err != nil {
		log.Fatal(err) // e.g. "peer: MTUs differ: eth0 has 1500, eth1 has 9000; ..."
	}
	log.Printf("A->B: %+v", br.Stats().Dir(verdict.AToB))
}
