package flow_test

import (
	"errors"
	"fmt"

	"github.com/afbridge/afbridge/flow"
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
