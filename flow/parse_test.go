package flow_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/afbridge/afbridge/flow"
)

func key4(a string, pa uint16, b string, pb uint16, proto uint8, vlan uint16) flow.Key {
	k := flow.Key{Port: [2]uint16{pa, pb}, VLAN: vlan, Proto: proto, Family: 4}
	k.Addr[0][0] = binary.BigEndian.Uint32(netip.MustParseAddr(a).AsSlice())
	k.Addr[1][0] = binary.BigEndian.Uint32(netip.MustParseAddr(b).AsSlice())
	return k
}

func key6(a string, pa uint16, b string, pb uint16, proto uint8) flow.Key {
	k := flow.Key{Port: [2]uint16{pa, pb}, Proto: proto, Family: 6}
	for i, s := range []string{a, b} {
		x := netip.MustParseAddr(s).As16()
		for w := range 4 {
			k.Addr[i][w] = binary.BigEndian.Uint32(x[4*w:])
		}
	}
	return k
}

func TestKeyLayout(t *testing.T) {
	var k flow.Key
	assert.Equal(t, uintptr(flow.KeySize), unsafe.Sizeof(k))
	assert.Equal(t, uintptr(0), unsafe.Offsetof(k.Addr))
	assert.Equal(t, uintptr(32), unsafe.Offsetof(k.Port))
	assert.Equal(t, uintptr(36), unsafe.Offsetof(k.VLAN))
	assert.Equal(t, uintptr(38), unsafe.Offsetof(k.Proto))
	assert.Equal(t, uintptr(39), unsafe.Offsetof(k.Family))
	// binary.Size counts no padding, so equal sizes mean there is none.
	assert.Equal(t, flow.KeySize, binary.Size(k))
}

func TestKeyMethods(t *testing.T) {
	k := key4("198.18.0.1", 1234, "198.18.0.2", 80, flow.ProtoTCP, 7)
	a, b := k.Addrs()
	assert.Equal(t, netip.MustParseAddr("198.18.0.1"), a)
	assert.Equal(t, netip.MustParseAddr("198.18.0.2"), b)
	pa, pb := k.Ports()
	assert.Equal(t, uint16(1234), pa)
	assert.Equal(t, uint16(80), pb)
	assert.Equal(t, "tcp 198.18.0.1:1234 <-> 198.18.0.2:80 vlan 7", k.String())

	k6 := key6("2001:2::1", 53, "2001:2::2", 5353, flow.ProtoUDP)
	a, b = k6.Addrs()
	assert.Equal(t, netip.MustParseAddr("2001:2::1"), a)
	assert.Equal(t, netip.MustParseAddr("2001:2::2"), b)
	assert.Equal(t, "udp [2001:2::1]:53 <-> [2001:2::2]:5353", k6.String())
	assert.Equal(t, "flow.Key{}", flow.Key{}.String())
	assert.Equal(t, "proto-47 198.18.0.1:0 <-> 198.18.0.2:0", key4("198.18.0.1", 0, "198.18.0.2", 0, 47, 0).String())
	a, _ = flow.Key{}.Addrs()
	assert.False(t, a.IsValid())
}

func TestKeyHash(t *testing.T) {
	k := key4("198.18.0.1", 1234, "198.18.0.2", 80, flow.ProtoTCP, 0)
	// Stable across processes and releases: users may persist it or shard by it.
	assert.Equal(t, uint64(0x69e0ed24c6229ee6), k.Hash(), "Hash changed: it is documented as stable")
	assert.Equal(t, k.Hash(), k.HashSeed(0))
	assert.NotEqual(t, k.Hash(), k.HashSeed(1))
	// Every field counts.
	seen := map[uint64]string{k.Hash(): "base"}
	vary := map[string]func(*flow.Key){
		"addr0w0": func(k *flow.Key) { k.Addr[0][0]++ },
		"addr0w3": func(k *flow.Key) { k.Addr[0][3]++ },
		"addr1w0": func(k *flow.Key) { k.Addr[1][0]++ },
		"addr1w3": func(k *flow.Key) { k.Addr[1][3]++ },
		"port0":   func(k *flow.Key) { k.Port[0]++ },
		"port1":   func(k *flow.Key) { k.Port[1]++ },
		"vlan":    func(k *flow.Key) { k.VLAN++ },
		"proto":   func(k *flow.Key) { k.Proto++ },
		"family":  func(k *flow.Key) { k.Family = 6 },
	}
	for name, f := range vary {
		v := k
		f(&v)
		h := v.Hash()
		assert.NotContains(t, seen, h, name)
		seen[h] = name
	}
}

type parseCase struct {
	name     string
	frame    []byte
	err      error
	key      flow.Key
	reversed bool
	bypass   bool
	check    func(t *testing.T, p *flow.Packet, frame []byte)
}

func parseCases() []parseCase {
	payload := []byte("hello, flow")
	var cases []parseCase
	add := func(c parseCase) { cases = append(cases, c) }

	add(parseCase{
		name:   "ipv4 tcp",
		frame:  tcp4("198.18.0.1", 40000, "198.18.0.2", 80, flow.TCPSYN|flow.TCPACK, payload),
		key:    key4("198.18.0.1", 40000, "198.18.0.2", 80, flow.ProtoTCP, 0),
		bypass: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, 14, p.L3)
			assert.Equal(t, 34, p.L4)
			assert.Equal(t, 54, p.Payload)
			assert.Equal(t, len(f), p.End)
			assert.Equal(t, payload, p.PayloadBytes(f))
			assert.Equal(t, uint32(1000), p.Seq)
			assert.Equal(t, uint32(2000), p.Ack)
			assert.Equal(t, flow.TCPSYN|flow.TCPACK, p.TCPFlags)
			assert.True(t, p.TCPFlags.Has(flow.TCPSYN))
			assert.False(t, p.TCPFlags.Has(flow.TCPFIN))
			assert.Equal(t, uint16(65535), p.Window)
			assert.Equal(t, uint8(20), p.TCPHeaderLen)
			assert.Equal(t, uint8(64), p.TTL)
			assert.Equal(t, 0, p.Src())
			assert.False(t, p.Fragment)
		},
	})
	add(parseCase{
		name:     "ipv4 tcp reversed",
		frame:    tcp4("198.18.0.2", 80, "198.18.0.1", 40000, flow.TCPACK, nil),
		key:      key4("198.18.0.1", 40000, "198.18.0.2", 80, flow.ProtoTCP, 0),
		reversed: true,
		bypass:   true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, 1, p.Src())
			assert.Empty(t, p.PayloadBytes(f))
		},
	})
	add(parseCase{
		name:     "same address, ports decide",
		frame:    tcp4("198.18.0.1", 9000, "198.18.0.1", 80, flow.TCPACK, nil),
		key:      key4("198.18.0.1", 80, "198.18.0.1", 9000, flow.ProtoTCP, 0),
		reversed: true,
		bypass:   true,
	})
	padded := eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoUDP, ip4opts{id: 77, df: true}, udp(53, 5353, []byte("x"))))
	padded = append(padded, make([]byte, 60-len(padded))...)
	add(parseCase{
		name:   "ipv4 udp with ethernet padding",
		frame:  padded,
		key:    key4("198.18.0.1", 53, "198.18.0.2", 5353, flow.ProtoUDP, 0),
		bypass: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, 14+20+8+1, p.End)
			assert.Equal(t, []byte("x"), p.PayloadBytes(f))
			assert.Equal(t, uint16(9), p.UDPLength)
			assert.Equal(t, uint32(77), p.IPID)
			assert.True(t, p.DontFragment)
			assert.False(t, p.MoreFragments)
		},
	})
	add(parseCase{
		name:   "802.1Q",
		frame:  eth(flow.EtherTypeIPv4, []tag{{0x8100, 0xe064}}, ip4("198.18.0.1", "198.18.0.2", flow.ProtoUDP, ip4opts{}, udp(1, 2, nil))),
		key:    key4("198.18.0.1", 1, "198.18.0.2", 2, flow.ProtoUDP, 100),
		bypass: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, 1, p.Tags)
			assert.Equal(t, 18, p.L3)
			assert.Equal(t, uint16(flow.EtherTypeIPv4), p.EtherType)
		},
	})
	add(parseCase{
		name:   "QinQ",
		frame:  eth(flow.EtherTypeIPv4, []tag{{0x88a8, 0x2064}, {0x8100, 200}}, ip4("198.18.0.1", "198.18.0.2", flow.ProtoUDP, ip4opts{}, udp(1, 2, nil))),
		key:    key4("198.18.0.1", 1, "198.18.0.2", 2, flow.ProtoUDP, 100),
		bypass: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, 2, p.Tags)
			assert.Equal(t, uint16(200), p.InnerVLAN)
			assert.Equal(t, 22, p.L3)
		},
	})
	add(parseCase{
		name:  "three tags are not IP",
		frame: eth(flow.EtherTypeIPv4, []tag{{0x88a8, 1}, {0x8100, 2}, {0x8100, 3}}, ip4("198.18.0.1", "198.18.0.2", flow.ProtoUDP, ip4opts{}, udp(1, 2, nil))),
		err:   flow.ErrNotIP,
		key:   flow.Key{VLAN: 1},
	})
	add(parseCase{
		name:  "arp",
		frame: eth(0x0806, nil, make([]byte, 28)),
		err:   flow.ErrNotIP,
	})
	add(parseCase{
		name:  "ipv4 first fragment has ports",
		frame: eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoUDP, ip4opts{id: 9, mf: true}, udp(1000, 9999, make([]byte, 1472)))),
		key:   key4("198.18.0.1", 1000, "198.18.0.2", 9999, flow.ProtoUDP, 0),
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.True(t, p.Fragment)
			assert.True(t, p.MoreFragments)
			assert.Equal(t, uint16(0), p.FragOffset)
			assert.Equal(t, uint32(9), p.IPID)
			assert.Equal(t, 42, p.Payload)
		},
	})
	add(parseCase{
		name:  "ipv4 later fragment has no ports",
		frame: eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.2", "198.18.0.1", flow.ProtoUDP, ip4opts{id: 9, fragOff: 1480}, []byte("forbidden"))),
		key:   key4("198.18.0.1", 0, "198.18.0.2", 0, flow.ProtoUDP, 0),
		// Source 198.18.0.2 is endpoint 1.
		reversed: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.True(t, p.Fragment)
			assert.False(t, p.MoreFragments)
			assert.Equal(t, uint16(1480), p.FragOffset)
			assert.Equal(t, 34, p.L4)
			assert.Equal(t, 34, p.Payload)
			assert.Equal(t, []byte("forbidden"), p.PayloadBytes(f))
		},
	})
	add(parseCase{
		name:   "ipv4 options",
		frame:  eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoTCP, ip4opts{options: 8}, tcp(1, 2, 0, 0, flow.TCPSYN, nil))),
		key:    key4("198.18.0.1", 1, "198.18.0.2", 2, flow.ProtoTCP, 0),
		bypass: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, 42, p.L4)
			assert.Equal(t, 62, p.Payload)
		},
	})
	badIHL := eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoTCP, ip4opts{}, tcp(1, 2, 0, 0, flow.TCPSYN, nil)))
	badIHL[14] = 0x44
	add(parseCase{name: "ipv4 ihl 4", frame: badIHL, err: flow.ErrMalformed, key: key4("198.18.0.1", 0, "198.18.0.2", 0, flow.ProtoTCP, 0)})
	badVer := eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoTCP, ip4opts{}, tcp(1, 2, 0, 0, flow.TCPSYN, nil)))
	badVer[14] = 0x65
	add(parseCase{name: "ipv4 ethertype, version 6", frame: badVer, err: flow.ErrMalformed})
	badOff := tcp4("198.18.0.1", 1, "198.18.0.2", 2, flow.TCPSYN, nil)
	badOff[14+20+12] = 4 << 4
	add(parseCase{name: "tcp data offset 16", frame: badOff, err: flow.ErrMalformed, key: key4("198.18.0.1", 1, "198.18.0.2", 2, flow.ProtoTCP, 0), bypass: true})
	shortTCP := tcp4("198.18.0.1", 1, "198.18.0.2", 2, flow.TCPSYN, nil)[:14+20+4]
	add(parseCase{
		name: "tcp cut after the ports: key and bypass as the kernel sees it, error for inspection",
		// The fast path needs only the 4 port bytes; Parse still says the header is short.
		frame: shortTCP, err: flow.ErrTruncated, key: key4("198.18.0.1", 1, "198.18.0.2", 2, flow.ProtoTCP, 0), bypass: true,
	})
	add(parseCase{
		name:   "icmp echo request",
		frame:  eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.2", "198.18.0.1", flow.ProtoICMP, ip4opts{}, icmp(8, 0, 0x4242, 1, payload))),
		key:    key4("198.18.0.1", 0x4242, "198.18.0.2", 0x4242, flow.ProtoICMP, 0),
		bypass: true, reversed: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, uint8(8), p.ICMPType)
			assert.Equal(t, payload, p.PayloadBytes(f))
		},
	})
	add(parseCase{
		name:   "icmp echo reply",
		frame:  eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoICMP, ip4opts{}, icmp(0, 0, 0x4242, 1, payload))),
		key:    key4("198.18.0.1", 0x4242, "198.18.0.2", 0x4242, flow.ProtoICMP, 0),
		bypass: true,
	})
	add(parseCase{
		name:  "icmp unreachable has no identifier",
		frame: eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoICMP, ip4opts{}, icmp(3, 1, 0x4242, 1, payload))),
		key:   key4("198.18.0.1", 0, "198.18.0.2", 0, flow.ProtoICMP, 0),
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, uint8(3), p.ICMPType)
			assert.Equal(t, uint8(1), p.ICMPCode)
		},
	})
	add(parseCase{
		name:  "icmpv6 type number under ipv4 is not echo",
		frame: eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoICMP, ip4opts{}, icmp(128, 0, 0x4242, 1, nil))),
		key:   key4("198.18.0.1", 0, "198.18.0.2", 0, flow.ProtoICMP, 0),
	})
	add(parseCase{
		name:  "other protocol (GRE)",
		frame: eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", 47, ip4opts{}, payload)),
		key:   key4("198.18.0.1", 0, "198.18.0.2", 0, 47, 0),
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, payload, p.PayloadBytes(f))
		},
	})
	big := eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoTCP, ip4opts{}, tcp(1, 2, 0, 0, flow.TCPACK, make([]byte, 65000))))
	add(parseCase{
		name: "gso super-frame", frame: big, key: key4("198.18.0.1", 1, "198.18.0.2", 2, flow.ProtoTCP, 0), bypass: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, len(f), p.End)
			assert.Len(t, p.PayloadBytes(f), 65000)
		},
	})
	bigTCP := eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoTCP, ip4opts{}, tcp(1, 2, 0, 0, flow.TCPACK, make([]byte, 70000))))
	binary.BigEndian.PutUint16(bigTCP[16:], 0) // BIG TCP: total length 0
	add(parseCase{
		name: "ipv4 big tcp, total length 0", frame: bigTCP, key: key4("198.18.0.1", 1, "198.18.0.2", 2, flow.ProtoTCP, 0), bypass: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Len(t, p.PayloadBytes(f), 70000)
		},
	})
	add(parseCase{
		name:   "ipv4 total length beyond the frame",
		frame:  eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoUDP, ip4opts{totDelta: 100}, udp(1, 2, payload))),
		key:    key4("198.18.0.1", 1, "198.18.0.2", 2, flow.ProtoUDP, 0),
		bypass: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, len(f), p.End)
		},
	})

	// IPv6.
	add(parseCase{
		name:   "ipv6 tcp",
		frame:  eth(flow.EtherTypeIPv6, nil, ip6("2001:2::2", "2001:2::1", nil, flow.ProtoTCP, 63, tcp(443, 50000, 1, 2, flow.TCPFIN|flow.TCPACK, payload))),
		key:    key6("2001:2::1", 50000, "2001:2::2", 443, flow.ProtoTCP),
		bypass: true, reversed: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, 54, p.L4)
			assert.Equal(t, 74, p.Payload)
			assert.Equal(t, uint8(63), p.TTL)
			assert.Equal(t, payload, p.PayloadBytes(f))
		},
	})
	add(parseCase{
		name:   "icmpv6 echo",
		frame:  eth(flow.EtherTypeIPv6, []tag{{0x8100, 5}}, ip6("2001:2::1", "2001:2::2", nil, flow.ProtoICMPv6, 64, icmp(128, 0, 7, 1, nil))),
		key:    func() flow.Key { k := key6("2001:2::1", 7, "2001:2::2", 7, flow.ProtoICMPv6); k.VLAN = 5; return k }(),
		bypass: true,
	})
	add(parseCase{
		name:  "icmpv6 neighbour solicitation",
		frame: eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", nil, flow.ProtoICMPv6, 255, icmp(135, 0, 7, 1, nil))),
		key:   key6("2001:2::1", 0, "2001:2::2", 0, flow.ProtoICMPv6),
	})
	add(parseCase{
		name:   "ipv6 hop-by-hop, routing, destination options",
		frame:  eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", []ext{{typ: 0}, {typ: 43, len8: 2}, {typ: 60, len8: 1}}, flow.ProtoUDP, 64, udp(1, 2, payload))),
		key:    key6("2001:2::1", 1, "2001:2::2", 2, flow.ProtoUDP),
		bypass: true,
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, 3, p.ExtHeaders)
			assert.Equal(t, 54+8+24+16, p.L4)
			assert.Equal(t, payload, p.PayloadBytes(f))
		},
	})
	add(parseCase{
		name:  "ipv6 first fragment has ports",
		frame: eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", []ext{{typ: 44, m: true, id: 0xdeadbeef}}, flow.ProtoUDP, 64, udp(1, 9999, payload))),
		key:   key6("2001:2::1", 1, "2001:2::2", 9999, flow.ProtoUDP),
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.True(t, p.Fragment)
			assert.True(t, p.MoreFragments)
			assert.Equal(t, uint32(0xdeadbeef), p.IPID)
			assert.Equal(t, 1, p.ExtHeaders)
		},
	})
	add(parseCase{
		name:  "ipv6 atomic fragment is a fragment",
		frame: eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", []ext{{typ: 44}}, flow.ProtoUDP, 64, udp(1, 2, payload))),
		key:   key6("2001:2::1", 1, "2001:2::2", 2, flow.ProtoUDP),
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.True(t, p.Fragment)
			assert.False(t, p.MoreFragments)
		},
	})
	add(parseCase{
		name:  "ipv6 later fragment has no ports",
		frame: eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", []ext{{typ: 60}, {typ: 44, fragOff: 1232, id: 5}}, flow.ProtoUDP, 64, []byte("forbidden"))),
		key:   key6("2001:2::1", 0, "2001:2::2", 0, flow.ProtoUDP),
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.True(t, p.Fragment)
			assert.Equal(t, uint16(1232), p.FragOffset)
			assert.Equal(t, 2, p.ExtHeaders)
			assert.Equal(t, []byte("forbidden"), p.PayloadBytes(f))
		},
	})
	add(parseCase{
		name:  "ipv6 AH",
		frame: eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", []ext{{typ: 51, len8: 4}}, flow.ProtoTCP, 64, tcp(1, 2, 0, 0, flow.TCPSYN, nil))),
		key:   key6("2001:2::1", 1, "2001:2::2", 2, flow.ProtoTCP),
		check: func(t *testing.T, p *flow.Packet, f []byte) {
			assert.Equal(t, 54+24, p.L4)
		},
	})
	add(parseCase{
		name:  "ipv6 mobility header is not bypassed",
		frame: eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", []ext{{typ: 135}}, flow.ProtoUDP, 64, udp(1, 2, nil))),
		key:   key6("2001:2::1", 1, "2001:2::2", 2, flow.ProtoUDP),
	})
	add(parseCase{
		name:  "ipv6 ESP ends the walk",
		frame: eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", nil, 50, 64, payload)),
		key:   key6("2001:2::1", 0, "2001:2::2", 0, 50),
	})
	badVer6 := eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", nil, flow.ProtoTCP, 64, tcp(1, 2, 0, 0, 0, nil)))
	badVer6[14] = 0x40
	add(parseCase{name: "ipv6 ethertype, version 4", frame: badVer6, err: flow.ErrMalformed})

	// 0 to 20 destination-options headers: walked up to MaxExtHeaders, bypassed up to 4.
	for n := 0; n <= 20; n++ {
		exts := make([]ext, n)
		for i := range exts {
			exts[i] = ext{typ: 60}
		}
		c := parseCase{
			name:   fmt.Sprintf("ipv6 %d destination options", n),
			frame:  eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", exts, flow.ProtoUDP, 64, udp(1, 9999, []byte("forbidden")))),
			key:    key6("2001:2::1", 1, "2001:2::2", 9999, flow.ProtoUDP),
			bypass: n <= flow.MaxBypassExtHeaders,
			check: func(t *testing.T, p *flow.Packet, f []byte) {
				assert.Equal(t, min(n, flow.MaxExtHeaders), p.ExtHeaders)
				if n <= flow.MaxExtHeaders {
					assert.Equal(t, []byte("forbidden"), p.PayloadBytes(f))
				}
			},
		}
		if n > flow.MaxExtHeaders {
			c.err = flow.ErrExtHeaderLimit
			c.key = key6("2001:2::1", 0, "2001:2::2", 0, 60)
		}
		add(c)
	}
	return cases
}

func TestParse(t *testing.T) {
	for _, c := range parseCases() {
		t.Run(c.name, func(t *testing.T) {
			var p flow.Packet
			err := flow.Parse(c.frame, &p)
			if c.err != nil {
				require.ErrorIs(t, err, c.err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, c.key, p.Key)
			assert.Equal(t, c.reversed, p.Reversed)
			assert.Equal(t, c.bypass, p.Bypassable())
			if c.check != nil {
				c.check(t, &p, c.frame)
			}
		})
	}
}

// TestParseReuse checks that a reused Packet keeps nothing of the previous frame.
func TestParseReuse(t *testing.T) {
	var fresh, reused flow.Packet
	cases := parseCases()
	for i, c := range cases {
		prev := cases[(i+len(cases)-1)%len(cases)]
		_ = flow.Parse(prev.frame, &reused)
		err1 := flow.Parse(c.frame, &reused)
		err2 := flow.Parse(c.frame, &fresh)
		assert.Equal(t, err2, err1, c.name)
		assert.Equal(t, fresh, reused, c.name)
	}
}

// TestParseTruncated parses every prefix of every case: no panic, offsets stay sane, and a
// prefix is never bypassable unless it holds the bytes the kernel keys on.
func TestParseTruncated(t *testing.T) {
	for _, c := range parseCases() {
		var full flow.Packet
		_ = flow.Parse(c.frame, &full)
		for n := range min(len(c.frame), 200) {
			var p flow.Packet
			err := flow.Parse(c.frame[:n], &p)
			if p.Bypassable() {
				assert.True(t, full.Bypassable(), "%s[:%d]", c.name, n)
				assert.Equal(t, full.Key, p.Key, "%s[:%d]", c.name, n)
				checkBypassable(t, c.frame[:n], &p)
			}
			if err == nil {
				assert.LessOrEqual(t, p.Payload, n, "%s[:%d]", c.name, n)
			}
		}
		var p flow.Packet
		require.ErrorIs(t, flow.Parse(c.frame[:13], &p), flow.ErrTruncated)
	}
}

// checkBypassable asserts what Bypassable promises about the frame.
func checkBypassable(t *testing.T, frame []byte, p *flow.Packet) {
	t.Helper()
	assert.Contains(t, []uint8{4, 6}, p.Key.Family)
	assert.False(t, p.Fragment)
	assert.LessOrEqual(t, p.ExtHeaders, flow.MaxBypassExtHeaders)
	assert.Greater(t, p.L4, p.L3)
	switch p.Key.Proto {
	case flow.ProtoTCP, flow.ProtoUDP:
		assert.LessOrEqual(t, p.L4+4, len(frame))
	case flow.ProtoICMP, flow.ProtoICMPv6:
		assert.LessOrEqual(t, p.L4+6, len(frame))
		assert.Equal(t, p.Key.Port[0], p.Key.Port[1])
	default:
		t.Errorf("bypassable protocol %d", p.Key.Proto)
	}
}

// reverse returns a copy of a parsed frame with source and destination swapped (addresses,
// and ports where the parser read them), or nil when the parser did not read the addresses.
func reverse(frame []byte, p *flow.Packet) []byte {
	if p.Key.Family == 0 {
		return nil
	}
	r := bytes.Clone(frame)
	alen, at := 4, p.L3+12
	if p.Key.Family == 6 {
		alen, at = 16, p.L3+8
	}
	for i := range alen {
		r[at+i], r[at+alen+i] = r[at+alen+i], r[at+i]
	}
	if (p.Key.Proto == flow.ProtoTCP || p.Key.Proto == flow.ProtoUDP) && p.FragOffset == 0 && p.L4 > 0 && p.L4+4 <= len(r) {
		l4 := p.L4
		r[l4], r[l4+1], r[l4+2], r[l4+3] = r[l4+2], r[l4+3], r[l4], r[l4+1]
	}
	return r
}

func TestParseBothDirections(t *testing.T) {
	for _, c := range parseCases() {
		var p, q flow.Packet
		err := flow.Parse(c.frame, &p)
		r := reverse(c.frame, &p)
		if r == nil {
			continue
		}
		assert.Equal(t, err, flow.Parse(r, &q), c.name)
		assert.Equal(t, p.Key, q.Key, c.name)
		assert.Equal(t, p.Bypassable(), q.Bypassable(), c.name)
		a, b := p.Key.Endpoints()
		if a != b {
			assert.NotEqual(t, p.Reversed, q.Reversed, c.name)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range parseCases() {
		if len(c.frame) < 2000 {
			f.Add(c.frame)
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p, q flow.Packet
		orig := bytes.Clone(frame)
		err := flow.Parse(frame, &p)
		require.Equal(t, orig, frame, "Parse changed the frame")
		if err != nil {
			assert.False(t, p.Bypassable() && !(err == flow.ErrTruncated || err == flow.ErrMalformed),
				"bypassable with %v", err)
		}
		if p.Bypassable() {
			checkBypassable(t, frame, &p)
		}
		if err == nil && p.Key.Family != 0 {
			assert.LessOrEqual(t, p.L3, p.L4)
			assert.LessOrEqual(t, p.L4, p.Payload)
			assert.LessOrEqual(t, p.Payload, len(frame))
			assert.LessOrEqual(t, p.End, len(frame))
		}
		_ = p.PayloadBytes(frame)
		// Deterministic, and the same Key from the other direction.
		require.Equal(t, err, flow.Parse(frame, &q))
		require.Equal(t, p, q)
		if r := reverse(frame, &p); r != nil {
			assert.Equal(t, err, flow.Parse(r, &q))
			assert.Equal(t, p.Key, q.Key)
			assert.Equal(t, p.Bypassable(), q.Bypassable())
			a, b := p.Key.Endpoints()
			if a != b {
				assert.NotEqual(t, p.Reversed, q.Reversed)
			}
		}
	})
}

func TestParseAllocs(t *testing.T) {
	cases := parseCases()
	var p flow.Packet
	allocs := testing.AllocsPerRun(100, func() {
		for _, c := range cases {
			_ = flow.Parse(c.frame, &p)
			_ = p.Key.Hash()
		}
	})
	assert.Zero(t, allocs)
}

func BenchmarkParse(b *testing.B) {
	frames := map[string][]byte{
		"ipv4-tcp":      tcp4("198.18.0.1", 40000, "198.18.0.2", 80, flow.TCPACK, make([]byte, 1400)),
		"qinq-ipv4-udp": eth(flow.EtherTypeIPv4, []tag{{0x88a8, 1}, {0x8100, 2}}, ip4("198.18.0.1", "198.18.0.2", flow.ProtoUDP, ip4opts{}, udp(1, 2, make([]byte, 18)))),
		"ipv6-3ext-udp": eth(flow.EtherTypeIPv6, nil, ip6("2001:2::1", "2001:2::2", []ext{{typ: 0}, {typ: 43}, {typ: 60}}, flow.ProtoUDP, 64, udp(1, 2, nil))),
	}
	for name, frame := range frames {
		b.Run(name, func(b *testing.B) {
			var p flow.Packet
			b.ReportAllocs()
			for b.Loop() {
				if err := flow.Parse(frame, &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPacketHoldsNoReference keeps Parse's promise that it keeps no reference to the frame:
// Packet has no field that could hold one.
func TestPacketHoldsNoReference(t *testing.T) {
	var check func(typ reflect.Type)
	check = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			switch f.Type.Kind() {
			case reflect.Slice, reflect.Pointer, reflect.UnsafePointer, reflect.Interface, reflect.Map, reflect.String, reflect.Chan, reflect.Func:
				t.Errorf("Packet.%s is a %v", f.Name, f.Type.Kind())
			case reflect.Struct:
				check(f.Type)
			}
		}
	}
	check(reflect.TypeFor[flow.Packet]())
}

// TestNewKey checks that NewKey gives the Key and direction Parse gives for the same frame.
func TestNewKey(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		src, dst netip.AddrPort
		proto    uint8
		vlan     uint16
		frame    []byte
	}{
		{ap("198.18.0.1:40000"), ap("198.18.0.2:80"), flow.ProtoTCP, 0, tcp4("198.18.0.1", 40000, "198.18.0.2", 80, flow.TCPSYN, nil)},
		{ap("198.18.0.2:80"), ap("198.18.0.1:40000"), flow.ProtoTCP, 0, tcp4("198.18.0.2", 80, "198.18.0.1", 40000, flow.TCPSYN, nil)},
		{ap("198.18.0.2:7"), ap("198.18.0.1:7"), flow.ProtoICMP, 100,
			eth(flow.EtherTypeIPv4, []tag{{0x8100, 0xe064}}, ip4("198.18.0.2", "198.18.0.1", flow.ProtoICMP, ip4opts{}, icmp(8, 0, 7, 1, nil)))},
		{ap("[2001:2::9]:53"), ap("[2001:2::1]:5353"), flow.ProtoUDP, 0,
			eth(flow.EtherTypeIPv6, nil, ip6("2001:2::9", "2001:2::1", nil, flow.ProtoUDP, 64, udp(53, 5353, nil)))},
		{ap("[::ffff:198.18.0.1]:1"), ap("[2001:2::1]:2"), flow.ProtoUDP, 0,
			eth(flow.EtherTypeIPv6, nil, ip6("::ffff:198.18.0.1", "2001:2::1", nil, flow.ProtoUDP, 64, udp(1, 2, nil)))},
	} {
		var p flow.Packet
		require.NoError(t, flow.Parse(c.frame, &p))
		k, rev := flow.NewKey(c.src, c.dst, c.proto, c.vlan)
		assert.Equal(t, p.Key, k, "%v -> %v", c.src, c.dst)
		assert.Equal(t, p.Reversed, rev, "%v -> %v", c.src, c.dst)
	}
	k, rev := flow.NewKey(ap("198.18.0.1:1"), ap("[2001:2::1]:2"), flow.ProtoUDP, 0)
	assert.Equal(t, flow.Key{}, k, "mixed families")
	assert.False(t, rev)
	k, _ = flow.NewKey(netip.AddrPort{}, ap("198.18.0.1:1"), flow.ProtoUDP, 0)
	assert.Equal(t, flow.Key{}, k, "invalid address")
}
