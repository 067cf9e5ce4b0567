package bypass

import "github.com/afbridge/afbridge/flow"

// goParse is the Go side of every agreement check: the flow package's key and eligibility rule,
// for a frame as the verdict sees it (outer VLAN tag in the bytes).
func goParse(f []byte) (flow.Key, bool) {
	var p flow.Packet
	_ = flow.Parse(f, &p) // an error still leaves the key and the decision set
	return p.Key, p.Bypassable()
}

// teardown reports whether an eligible frame is a TCP FIN or RST whose flags byte is in the
// frame, which returns its flow to the bridge.
func teardown(f []byte) bool {
	var p flow.Packet
	_ = flow.Parse(f, &p)
	return p.Bypassable() && p.Key.Proto == flow.ProtoTCP && len(f) >= p.L4+14 && f[p.L4+13]&0x05 != 0
}
