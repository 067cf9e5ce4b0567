package flow_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/afbridge/afbridge/flow"
	"github.com/afbridge/afbridge/verdict"
)

// Parse fills a Packet the caller keeps and reuses, so parsing allocates nothing. Both directions
// of a connection give the same Key; Reversed tells them apart.
func ExampleParse() {
	var p flow.Packet
	for _, frame := range [][]byte{
		tcp4("198.18.0.1", 40000, "198.18.0.2", 80, flow.TCPSYN, nil),
		tcp4("198.18.0.2", 80, "198.18.0.1", 40000, flow.TCPSYN|flow.TCPACK, nil),
	} {
		if err := flow.Parse(frame, &p); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(p.Key, "reversed:", p.Reversed, "bypassable:", p.Bypassable())
	}

	// An IPS drops what it cannot inspect.
	exts := make([]ext, flow.MaxExtHeaders+1)
	for i := range exts {
		exts[i] = ext{typ: 60}
	}
	err := flow.Parse(eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", exts, flow.ProtoUDP, 64, udp(1, 2, nil))), &p)
	fmt.Println("drop:", errors.Is(err, flow.ErrExtHeaderLimit))
	// Output:
	// tcp 198.18.0.1:40000 <-> 198.18.0.2:80 reversed: false bypassable: true
	// tcp 198.18.0.1:40000 <-> 198.18.0.2:80 reversed: true bypassable: true
	// drop: true
}

// A stateful verdict: each worker keeps a flow table, counts the TCP payload each flow has
// carried, and drops the flow, both directions, retransmissions included, once it passes a
// limit. Expire runs from time to time to bound the work per frame.
func ExampleTable() {
	const limit = 1000 // payload bytes per flow, both directions together
	type state struct{ payload int }

	factory := verdict.FactoryFunc(func(worker int) verdict.Handler {
		flows, err := flow.NewTable(flow.Config[state]{Capacity: 4096})
		if err != nil {
			panic(err) // a constant, valid config
		}
		var p flow.Packet
		frames := 0
		return verdict.Func(func(vp *verdict.Packet) verdict.Verdict {
			if frames++; frames%1024 == 0 {
				flows.Expire(vp.Time)
			}
			if err := flow.Parse(vp.Data, &p); err != nil {
				if errors.Is(err, flow.ErrExtHeaderLimit) {
					return verdict.Drop // cannot be inspected
				}
				return verdict.Pass
			}
			if p.Key.Proto != flow.ProtoTCP {
				return verdict.Pass
			}
			f, _ := flows.Lookup(&p, vp.Time)
			if f == nil || f.Dropped() {
				return verdict.Drop
			}
			if f.State.payload += len(p.PayloadBytes(vp.Data)); f.State.payload > limit {
				f.Drop()
				return verdict.Drop
			}
			return verdict.Pass
		})
	})

	h := factory.New(0)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	send := func(frame []byte) {
		now = now.Add(time.Millisecond)
		fmt.Print(h.Handle(&verdict.Packet{Data: frame, Time: now}), " ")
	}
	chunk := make([]byte, 400)
	send(tcp4("198.18.0.1", 40000, "198.18.0.2", 80, flow.TCPSYN, nil))
	send(tcp4("198.18.0.2", 80, "198.18.0.1", 40000, flow.TCPSYN|flow.TCPACK, nil))
	send(tcp4("198.18.0.1", 40000, "198.18.0.2", 80, flow.TCPACK, chunk)) // 400
	send(tcp4("198.18.0.2", 80, "198.18.0.1", 40000, flow.TCPACK, chunk)) // 800
	send(tcp4("198.18.0.1", 40000, "198.18.0.2", 80, flow.TCPACK, chunk)) // 1200: over the limit
	send(tcp4("198.18.0.1", 40000, "198.18.0.2", 80, flow.TCPACK, chunk)) // the retransmission
	send(tcp4("198.18.0.2", 80, "198.18.0.1", 40000, flow.TCPACK, nil))   // the other direction
	send(tcp4("198.18.0.1", 40001, "198.18.0.2", 80, flow.TCPSYN, nil))   // another flow
	fmt.Println()
	// Output:
	// pass pass pass pass drop drop drop pass
}
