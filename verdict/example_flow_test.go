package verdict_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/afbridge/afbridge/verdict"
)

// flowKey names a flow the same way in both directions: the lower (address, port) endpoint comes
// first. It includes the outer VLAN ID, since the same addresses on two VLANs are two flows.
// Fragments carry no ports past the first, so a fragment's key has none: every fragment of a
// datagram shares one key (with fanout defrag on, the bridge hands over whole datagrams, flagged
// verdict.Reassembled, and their keys have ports).
type flowKey struct {
	vlan   uint16
	proto  uint8
	lo, hi netip.AddrPort
}

// parseFlow returns the key of an IPv4 or IPv6 frame (after any VLAN tags) and its transport
// payload length. A GSO super-frame stands for many segments on the wire; its payload length is
// theirs added up, so a byte count per flow is right without knowing how it will be cut.
func parseFlow(b []byte) (k flowKey, payload int, ok bool) {
	if len(b) < 14 {
		return k, 0, false
	}
	typ, off := binary.BigEndian.Uint16(b[12:]), 14
	for (typ == 0x8100 || typ == 0x88a8) && len(b) >= off+4 {
		if k.vlan == 0 {
			k.vlan = binary.BigEndian.Uint16(b[off:]) & 0x0fff
		}
		typ, off = binary.BigEndian.Uint16(b[off+2:]), off+4
	}
	var src, dst netip.Addr
	var l4, end int
	frag := false
	switch {
	case typ == 0x0800 && len(b) >= off+20:
		ihl := int(b[off]&0x0f) * 4
		k.proto = b[off+9]
		src, _ = netip.AddrFromSlice(b[off+12 : off+16])
		dst, _ = netip.AddrFromSlice(b[off+16 : off+20])
		frag = binary.BigEndian.Uint16(b[off+6:])&0x3fff != 0 // MF or an offset
		l4, end = off+ihl, off+int(binary.BigEndian.Uint16(b[off+2:]))
	case typ == 0x86dd && len(b) >= off+40:
		k.proto = b[off+6]
		src, _ = netip.AddrFromSlice(b[off+8 : off+24])
		dst, _ = netip.AddrFromSlice(b[off+24 : off+40])
		l4, end = off+40, off+40+int(binary.BigEndian.Uint16(b[off+4:]))
		if k.proto == 44 && len(b) >= l4+8 { // a fragment header
			k.proto, frag, l4 = b[l4], true, l4+8
		}
	default:
		return k, 0, false
	}
	if end <= l4 || end > len(b) {
		end = len(b) // a GSO frame's length field may be 0; Ethernet padding is not payload
	}
	var sport, dport uint16
	hdr := 0
	if !frag && (k.proto == 6 || k.proto == 17) && end >= l4+8 {
		sport, dport = binary.BigEndian.Uint16(b[l4:]), binary.BigEndian.Uint16(b[l4+2:])
		hdr = 8
		if k.proto == 6 && end >= l4+20 {
			hdr = int(b[l4+12]>>4) * 4
		}
	}
	a, z := netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	if z.Compare(a) < 0 {
		a, z = z, a
	}
	k.lo, k.hi = a, z
	return k, max(end-l4-hdr, 0), true
}

// limiter drops a TCP flow once it has carried more than limit payload bytes, both directions
// together. One limiter serves one worker: no lock. Its table is bounded; flows that do not fit
// are passed and counted.
type limiter struct {
	limit, maxFlows int
	idle            time.Duration
	flows           map[flowKey]*flowState
	overflow        int
}

type flowState struct {
	bytes int
	last  time.Time
}

func (l *limiter) Handle(p *verdict.Packet) verdict.Verdict {
	k, payload, ok := parseFlow(p.Data)
	if !ok || k.proto != 6 {
		return verdict.Pass
	}
	st := l.flows[k]
	if st == nil {
		if len(l.flows) >= l.maxFlows {
			l.overflow++
			return verdict.Pass
		}
		st = &flowState{}
		l.flows[k] = st
	}
	st.bytes += payload
	st.last = p.Time
	if st.bytes > l.limit {
		return verdict.Drop
	}
	return verdict.Pass
}

// Tick forgets flows idle for longer than l.idle. The bridge calls it on the worker's goroutine
// every Config.TickInterval, even when no frame arrives.
func (l *limiter) Tick(now time.Time) {
	for k, st := range l.flows {
		if now.Sub(st.last) > l.idle {
			delete(l.flows, k)
		}
	}
}

// Close runs when the bridge retires the handler (Close, or a Switch to new rules).
func (l *limiter) Close() error {
	l.flows = nil
	return nil
}

// tcp4 builds an Ethernet frame (802.1Q-tagged if vlan is not 0) with a TCP segment.
func tcp4(vlan uint16, src, dst string, sport, dport uint16, payload int) []byte {
	b := make([]byte, 0, 18+40+payload)
	b = append(b, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1)
	if vlan != 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, vlan)
	}
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	b = append(b, 0x45, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(40+payload))
	b = append(b, 0, 0, 0x40, 0, 64, 6, 0, 0)
	b = append(b, netip.MustParseAddr(src).AsSlice()...)
	b = append(b, netip.MustParseAddr(dst).AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = append(b, make([]byte, 8)...)
	b = append(b, 5<<4, 0x18, 0xff, 0xff, 0, 0, 0, 0)
	return append(b, make([]byte, payload)...)
}

// A stateful verdict: each worker gets its own limiter, which drops a TCP flow after 1000
// payload bytes in both directions together and forgets flows idle for a minute. Both
// directions of a flow reach the same worker, so the key is direction-independent; the same
// addresses on another VLAN are another flow.
func ExampleFactoryFunc() {
	factory := verdict.FactoryFunc(func(worker int) verdict.Handler {
		return &limiter{limit: 1000, maxFlows: 100000, idle: time.Minute, flows: map[flowKey]*flowState{}}
	})
	h := factory.New(0) // the bridge calls New once per worker, before it forwards
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	for _, f := range []struct {
		what  string
		frame []byte
	}{
		{"client -> server, 600 bytes", tcp4(0, "198.18.0.1", "198.19.0.1", 40000, 443, 600)},
		{"server -> client, 300 bytes", tcp4(0, "198.19.0.1", "198.18.0.1", 443, 40000, 300)},
		{"same flow on VLAN 7, 600 bytes", tcp4(7, "198.18.0.1", "198.19.0.1", 40000, 443, 600)},
		{"server -> client, 200 bytes", tcp4(0, "198.19.0.1", "198.18.0.1", 443, 40000, 200)},
	} {
		fmt.Printf("%-31s %v\n", f.what, h.Handle(&verdict.Packet{Data: f.frame, Time: t0}))
	}
	lim := h.(*limiter)
	fmt.Println("flows:", len(lim.flows))
	lim.Tick(t0.Add(2 * time.Minute))
	fmt.Println("flows after two idle minutes:", len(lim.flows))
	// Output:
	// client -> server, 600 bytes     pass
	// server -> client, 300 bytes     pass
	// same flow on VLAN 7, 600 bytes  pass
	// server -> client, 200 bytes     drop
	// flows: 2
	// flows after two idle minutes: 0
}
