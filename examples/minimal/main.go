// Command minimal is the smallest useful afbridge program: an inline bridge between two
// interfaces with a verdict that drops frames carrying a byte string. It is the README's
// example, runnable:
//
//	go run -exec "$PWD/scripts/asroot" ./examples/minimal -a eth1 -b eth2 -drop forbidden
//
// from the repository root (scripts/asroot runs the built program as root, through sudo unless
// you are root already).
package main

import (
	"bytes"
	"context"
	"flag"
	"log"
	"os/signal"
	"syscall"

	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
)

func main() {
	a := flag.String("a", "", "first interface")
	b := flag.String("b", "", "second interface")
	threads := flag.Int("threads", 1, "workers per side")
	drop := flag.String("drop", "", "drop frames containing this string (empty: pass all)")
	batch := flag.Int("batch", 0, "frames per batch (0: the library default)")
	busy := flag.Duration("busy-poll", 0, "spin this long over idle rings before sleeping (negative: forever)")
	bypass := flag.Bool("qdisc-bypass", false, "send with PACKET_QDISC_BYPASS (tcpdump on the egress port no longer sees forwarded frames)")
	flag.Parse()

	v := verdict.PassAll
	if *drop != "" {
		needle := []byte(*drop)
		v = verdict.Func(func(p *verdict.Packet) verdict.Verdict {
			if bytes.Contains(p.Data, needle) {
				return verdict.Drop
			}
			return verdict.Pass
		})
	}
	br, err := peer.New(peer.Config{
		A:        peer.Side{Interface: *a, QdiscBypass: *bypass},
		B:        peer.Side{Interface: *b, QdiscBypass: *bypass},
		Threads:  *threads,
		Verdict:  verdict.Shared(v),
		BusyPoll: *busy,
		Batch:    *batch,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Printf("bridging %s <-> %s", *a, *b)
	if err := br.Run(ctx); err != nil {
		log.Fatal(err)
	}
	st := br.Stats()
	log.Printf("A->B %+v", st.Dir(verdict.AToB))
	log.Printf("B->A %+v", st.Dir(verdict.BToA))
}
