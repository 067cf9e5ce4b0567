package rules

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkInvariants asserts what must hold for any decoded frame, valid or not.
func checkInvariants(t testing.TB, p *Packet, frame []byte, ok bool) {
	t.Helper()
	if p.SrcIP.IsValid() != p.DstIP.IsValid() || ok != p.SrcIP.IsValid() || ok != p.IsIP() {
		t.Fatalf("address validity inconsistent: ok=%v src=%v dst=%v", ok, p.SrcIP, p.DstIP)
	}
	if p.NumVLAN < 0 || p.NumVLAN > MaxVLANs {
		t.Fatalf("NumVLAN %d", p.NumVLAN)
	}
	if !ok {
		if p.Proto != 0 || p.ProtoName != "" || p.HasL4 || p.NonFirstFragment || p.SrcPort != 0 || p.DstPort != 0 {
			t.Fatalf("non-IP frame has IP fields: %+v", p)
		}
		return
	}
	if p.SrcIP.Is4() != p.DstIP.Is4() {
		t.Fatalf("mixed families %v %v", p.SrcIP, p.DstIP)
	}
	if !(0 <= p.ipOff && p.ipOff <= p.l4Off && p.l4Off <= p.payOff && p.payOff <= p.end && p.end <= len(frame)) {
		t.Fatalf("offsets out of order: ip %d l4 %d pay %d end %d len %d", p.ipOff, p.l4Off, p.payOff, p.end, len(frame))
	}
	if p.ProtoName != protoNames[p.Proto] {
		t.Fatalf("ProtoName %q for proto %d", p.ProtoName, p.Proto)
	}
	if p.HasL4 && p.NonFirstFragment {
		t.Fatalf("non-first fragment with an L4 header")
	}
	if !p.HasPorts() && (p.SrcPort != 0 || p.DstPort != 0) {
		t.Fatalf("ports without a TCP or UDP header: %+v", p)
	}
	if p.HasL4 && !(p.Proto == protoTCP || p.Proto == protoUDP || p.Proto == protoICMP || p.Proto == protoICMPv6) {
		t.Fatalf("HasL4 for proto %d", p.Proto)
	}
	if !p.HasL4 && !p.NonFirstFragment && p.payOff != p.end {
		t.Fatalf("L4 payload without an L4 header")
	}
}

func TestDecode(t *testing.T) {
	addr := netip.MustParseAddr
	payload := "hello, payload"
	type want struct {
		ok       bool
		vlans    []uint16
		src, dst string
		proto    uint8
		name     string
		hasL4    bool
		frag     bool
		sport    uint16
		dport    uint16
		flags    uint8
		icmp     [2]uint8
		payload  string // L4 payload for TCP/UDP, IP payload for fragments
	}
	ipv6ext := []extHdr{{typ: ipv6HopByHop, size: 8}, {typ: ipv6Routing, size: 24}, {typ: ipv6DestOpts, size: 16}}
	tests := []struct {
		name  string
		frame []byte
		want  want
	}{
		{"tcp4", tcp4("10.0.0.1", "10.0.0.2", 1234, 80, payload).build(),
			want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 6, name: "TCP", hasL4: true, sport: 1234, dport: 80, flags: TCPAck | TCPPsh, payload: payload}},
		{"tcp4 with IP and TCP options", func() []byte {
			f := tcp4("10.0.0.1", "10.0.0.2", 1, 2, payload)
			f.ipOpts, f.tcpOpts = 8, 12
			return f.build()
		}(), want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 6, name: "TCP", hasL4: true, sport: 1, dport: 2, flags: TCPAck | TCPPsh, payload: payload}},
		{"udp4 with ethernet padding", func() []byte {
			f := udp4("10.0.0.1", "10.0.0.2", 53, 5353, "ab")
			f.pad = 30
			return f.build()
		}(), want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 17, name: "UDP", hasL4: true, sport: 53, dport: 5353, payload: "ab"}},
		{"icmp4", frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoICMP, icmpType: 8, payload: []byte("ping")}.build(),
			want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 1, name: "ICMP", hasL4: true, icmp: [2]uint8{8, 0}, payload: "ping"}},
		{"single vlan", func() []byte {
			f := tcp4("10.0.0.1", "10.0.0.2", 1, 2, payload)
			f.tags = []vlanTag{{etherTypeVLAN, 0x2000 | 100}} // PCP bits must not leak into the id
			return f.build()
		}(), want{ok: true, vlans: []uint16{100}, src: "10.0.0.1", dst: "10.0.0.2", proto: 6, name: "TCP", hasL4: true, sport: 1, dport: 2, flags: TCPAck | TCPPsh, payload: payload}},
		{"QinQ 88a8 then 8100", func() []byte {
			f := udp4("10.0.0.1", "10.0.0.2", 1, 2, payload)
			f.tags = []vlanTag{{etherTypeQinQ, 10}, {etherTypeVLAN, 20}}
			return f.build()
		}(), want{ok: true, vlans: []uint16{10, 20}, src: "10.0.0.1", dst: "10.0.0.2", proto: 17, name: "UDP", hasL4: true, sport: 1, dport: 2, payload: payload}},
		{"double 8100", func() []byte {
			f := udp4("10.0.0.1", "10.0.0.2", 1, 2, payload)
			f.tags = []vlanTag{{etherTypeVLAN, 4094}, {etherTypeVLAN, 1}}
			return f.build()
		}(), want{ok: true, vlans: []uint16{4094, 1}, src: "10.0.0.1", dst: "10.0.0.2", proto: 17, name: "UDP", hasL4: true, sport: 1, dport: 2, payload: payload}},
		{"double 88a8", func() []byte {
			f := udp4("10.0.0.1", "10.0.0.2", 1, 2, payload)
			f.tags = []vlanTag{{etherTypeQinQ, 7}, {etherTypeQinQ, 8}}
			return f.build()
		}(), want{ok: true, vlans: []uint16{7, 8}, src: "10.0.0.1", dst: "10.0.0.2", proto: 17, name: "UDP", hasL4: true, sport: 1, dport: 2, payload: payload}},
		{"three tags are not decoded", func() []byte {
			f := udp4("10.0.0.1", "10.0.0.2", 1, 2, payload)
			f.tags = []vlanTag{{etherTypeQinQ, 1}, {etherTypeVLAN, 2}, {etherTypeVLAN, 3}}
			return f.build()
		}(), want{vlans: []uint16{1, 2}}},
		{"tcp6", frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoTCP, sport: 443, dport: 50000, flags: TCPSyn, payload: []byte(payload)}.build(),
			want{ok: true, src: "2001:db8::1", dst: "2001:db8::2", proto: 6, name: "TCP", hasL4: true, sport: 443, dport: 50000, flags: TCPSyn, payload: payload}},
		{"udp6 after extension headers", frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoUDP, sport: 1, dport: 2, ext: ipv6ext, payload: []byte(payload)}.build(),
			want{ok: true, src: "2001:db8::1", dst: "2001:db8::2", proto: 17, name: "UDP", hasL4: true, sport: 1, dport: 2, payload: payload}},
		{"first ipv6 fragment", frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoTCP, sport: 1, dport: 2,
			ext: []extHdr{{typ: ipv6Fragment, size: 8}}, payload: []byte(payload)}.build(),
			want{ok: true, src: "2001:db8::1", dst: "2001:db8::2", proto: 6, name: "TCP", hasL4: true, sport: 1, dport: 2, payload: payload}},
		{"later ipv6 fragment", frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoTCP, rawL4: true,
			ext: []extHdr{{typ: ipv6HopByHop, size: 8}, {typ: ipv6Fragment, size: 8, fragOff: 185}}, payload: []byte(payload)}.build(),
			want{ok: true, src: "2001:db8::1", dst: "2001:db8::2", proto: 6, name: "TCP", frag: true, payload: payload}},
		{"later ipv4 fragment", frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoUDP, rawL4: true, fragOff: 3, payload: []byte(payload)}.build(),
			want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 17, name: "UDP", frag: true, payload: payload}},
		{"first ipv4 fragment", func() []byte {
			f := udp4("10.0.0.1", "10.0.0.2", 1, 2, payload)
			f.more = true
			return f.build()
		}(), want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 17, name: "UDP", hasL4: true, sport: 1, dport: 2, payload: payload}},
		{"icmp6", frameSpec{src: "fe80::1", dst: "ff02::1", proto: protoICMPv6, icmpType: 135}.build(),
			want{ok: true, src: "fe80::1", dst: "ff02::1", proto: 58, name: "IPv6-ICMP", hasL4: true, icmp: [2]uint8{135, 0}}},
		{"other protocol", frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: 47, payload: []byte(payload)}.build(),
			want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 47, name: "GRE"}},
		{"unnamed protocol", frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: 253}.build(),
			want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 253, name: "253"}},
		{"too many ipv6 extension headers", frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoUDP, sport: 1, dport: 2,
			ext: []extHdr{{0, 8, 0}, {60, 8, 0}, {60, 8, 0}, {60, 8, 0}, {60, 8, 0}, {60, 8, 0}, {60, 8, 0}, {60, 8, 0}, {60, 8, 0}}}.build(),
			want{ok: true, src: "2001:db8::1", dst: "2001:db8::2", proto: 60, name: "IPv6-Opts"}},
		{"truncated tcp header", tcp4("10.0.0.1", "10.0.0.2", 1, 2, "").build()[:14+20+19],
			want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 6, name: "TCP"}},
		{"tcp data offset below 5", func() []byte {
			b := tcp4("10.0.0.1", "10.0.0.2", 1, 2, payload).build()
			b[14+20+12] = 4 << 4
			return b
		}(), want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 6, name: "TCP"}},
		{"tcp data offset beyond packet", func() []byte {
			b := tcp4("10.0.0.1", "10.0.0.2", 1, 2, "").build()
			b[14+20+12] = 15 << 4
			return b
		}(), want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 6, name: "TCP"}},
		{"ip total length beyond frame", func() []byte {
			b := tcp4("10.0.0.1", "10.0.0.2", 1, 2, payload).build()
			return b[:len(b)-4]
		}(), want{ok: true, src: "10.0.0.1", dst: "10.0.0.2", proto: 6, name: "TCP", hasL4: true, sport: 1, dport: 2, flags: TCPAck | TCPPsh, payload: payload[:len(payload)-4]}},
		{"ipv4 header length 16", func() []byte {
			b := tcp4("10.0.0.1", "10.0.0.2", 1, 2, payload).build()
			b[14] = 0x44
			return b
		}(), want{}},
		{"ipv4 total length below header", func() []byte {
			b := tcp4("10.0.0.1", "10.0.0.2", 1, 2, payload).build()
			binary.BigEndian.PutUint16(b[16:], 19)
			return b
		}(), want{}},
		{"ipv4 ethertype with version 6", func() []byte {
			b := tcp4("10.0.0.1", "10.0.0.2", 1, 2, payload).build()
			b[14] = 0x65
			return b
		}(), want{}},
		{"arp", append(append(append([]byte{}, macB[:]...), macA[:]...), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1), want{}},
		{"runt", []byte{1, 2, 3}, want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Packet
			p.SrcPort = 9999 // Decode must reset everything.
			ok := p.Decode(tt.frame)
			checkInvariants(t, &p, tt.frame, ok)
			w := tt.want
			require.Equal(t, w.ok, ok)
			if w.vlans == nil {
				w.vlans = []uint16{}
			}
			assert.Equal(t, w.vlans, p.VLANs())
			if !ok {
				return
			}
			assert.Equal(t, addr(w.src), p.SrcIP)
			assert.Equal(t, addr(w.dst), p.DstIP)
			assert.Equal(t, w.proto, p.Proto)
			assert.Equal(t, w.name, p.ProtoName)
			assert.Equal(t, w.hasL4, p.HasL4)
			assert.Equal(t, w.frag, p.NonFirstFragment)
			assert.Equal(t, w.sport, p.SrcPort)
			assert.Equal(t, w.dport, p.DstPort)
			assert.Equal(t, w.flags, p.TCPFlags)
			assert.Equal(t, w.icmp, [2]uint8{p.ICMPType, p.ICMPCode})
			if p.Proto == protoTCP || p.Proto == protoUDP {
				assert.Equal(t, w.payload, string(tt.frame[p.payOff:p.end]))
			}
			if p.Proto == protoICMP {
				assert.Equal(t, w.payload, string(tt.frame[p.l4Off+8:p.end]))
			}
		})
	}
}

// TestDecodeEveryTruncation cuts valid frames at every length: Decode must
// never panic, and must only lose information as the frame gets shorter.
func TestDecodeEveryTruncation(t *testing.T) {
	frames := testFrames()
	for name, full := range frames {
		var whole Packet
		require.True(t, whole.Decode(full), name)
		for n := 0; n <= len(full); n++ {
			var p Packet
			ok := p.Decode(full[:n])
			checkInvariants(t, &p, full[:n], ok)
			if ok {
				assert.Equal(t, whole.SrcIP, p.SrcIP, "%s cut at %d", name, n)
				if p.HasPorts() {
					assert.Equal(t, whole.SrcPort, p.SrcPort, "%s cut at %d", name, n)
					assert.Equal(t, whole.DstPort, p.DstPort, "%s cut at %d", name, n)
				}
			}
		}
	}
}

// testFrames returns one valid frame of each kind the decoder handles.
func testFrames() map[string][]byte {
	ext := []extHdr{{typ: ipv6HopByHop, size: 8}, {typ: ipv6Routing, size: 24}, {typ: ipv6Fragment, size: 8}, {typ: ipv6DestOpts, size: 8}}
	return map[string][]byte{
		"tcp4":       tcp4("10.0.0.1", "10.0.0.2", 1234, 80, "GET /etc/passwd HTTP/1.1\r\n").build(),
		"udp4 vlan":  frameSpec{tags: []vlanTag{{etherTypeVLAN, 5}}, src: "10.0.0.1", dst: "10.0.0.2", proto: protoUDP, sport: 5, dport: 69, payload: []byte("\x00\x01file")}.build(),
		"icmp4 qinq": frameSpec{tags: []vlanTag{{etherTypeQinQ, 5}, {etherTypeVLAN, 6}}, src: "10.0.0.1", dst: "10.0.0.2", proto: protoICMP, icmpType: 8, payload: []byte{0xde, 0xad, 0xbe, 0xef}}.build(),
		"tcp6 ext":   frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoTCP, sport: 1, dport: 23, ext: ext, flags: TCPSyn, payload: []byte("x")}.build(),
		"udp6":       frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoUDP, sport: 1, dport: 53, payload: []byte("query")}.build(),
		"icmp6":      frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoICMPv6, icmpType: 128, payload: []byte("ping")}.build(),
		"frag4":      frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, fragOff: 10, rawL4: true, payload: []byte("fragment data")}.build(),
	}
}
