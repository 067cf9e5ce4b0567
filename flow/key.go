package flow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Key identifies a flow in both directions: the frames of one flow, whichever way they travel,
// give the same Key. It is 40 bytes with no padding, and the eBPF fast path builds the very same
// bytes (in the host's byte order) as its map key, so a Key can be used to look a flow up there.
//
// Endpoint i is the tuple (Addr[i][0], Addr[i][1], Addr[i][2], Addr[i][3], Port[i]); endpoint 0 is
// the smaller of the two in unsigned lexicographic order. A frame whose source is endpoint 1 is
// reversed ([Packet].Reversed); that fact is not part of the Key.
type Key struct {
	// Addr holds the two endpoints' addresses. Each word is binary.BigEndian.Uint32 of 4 address
	// bytes, so a word holds the numeric value. IPv4 uses word 0; words 1 to 3 are 0.
	Addr [2][4]uint32
	// Port holds the TCP or UDP ports. For an ICMP or ICMPv6 echo request or reply both are the
	// echo identifier. For anything else, and for a fragment that is not the first, both are 0.
	Port [2]uint16
	// VLAN is the outer VLAN ID (TCI & 0x0fff); 0 when the frame is untagged.
	VLAN uint16
	// Proto is the upper-layer protocol: the IPv4 protocol field, or for IPv6 the first header
	// that is not an extension header the parser walks (so ESP, 50, and no next header, 59, end
	// the walk). For an IPv6 fragment that is not the first, it is the fragment header's next
	// header; when the walk stops early ([ErrExtHeaderLimit], [ErrTruncated]) it is the type of the
	// header it stopped at.
	Proto uint8
	// Family is 4 or 6; 0 in the zero Key.
	Family uint8
}

// KeySize is the size of a [Key] in bytes, in Go and in the eBPF map.
const KeySize = 40

// Protocol numbers the parser and the [Table] tell apart.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// NewKey returns the Key of a flow from src to dst, and whether src is endpoint 1 (as
// [Packet].Reversed would say for a frame from src). Addresses in the IPv4-mapped IPv6 form stay
// IPv6, as on the wire. For ICMP echo, pass the identifier as both ports. The Key is the zero Key
// (Family 0, which no frame has) when an address is invalid or the two families differ.
func NewKey(src, dst netip.AddrPort, proto uint8, vlan uint16) (Key, bool) {
	a, b := src.Addr(), dst.Addr()
	if !a.IsValid() || !b.IsValid() || a.Is4() != b.Is4() {
		return Key{}, false
	}
	k := Key{Port: [2]uint16{src.Port(), dst.Port()}, VLAN: vlan & 0x0fff, Proto: proto, Family: 6}
	if a.Is4() {
		k.Family = 4
		x, y := a.As4(), b.As4()
		k.Addr[0][0], k.Addr[1][0] = binary.BigEndian.Uint32(x[:]), binary.BigEndian.Uint32(y[:])
	} else {
		x, y := a.As16(), b.As16()
		for w := range 4 {
			k.Addr[0][w], k.Addr[1][w] = binary.BigEndian.Uint32(x[4*w:]), binary.BigEndian.Uint32(y[4*w:])
		}
	}
	if less(&k.Addr[1], k.Port[1], &k.Addr[0], k.Port[0]) {
		k.Addr[0], k.Addr[1] = k.Addr[1], k.Addr[0]
		k.Port[0], k.Port[1] = k.Port[1], k.Port[0]
		return k, true
	}
	return k, false
}

// Addrs returns the addresses of endpoint 0 and endpoint 1. For the zero Key they are invalid.
func (k Key) Addrs() (netip.Addr, netip.Addr) {
	return k.addr(0), k.addr(1)
}

func (k Key) addr(i int) netip.Addr {
	switch k.Family {
	case 4:
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], k.Addr[i][0])
		return netip.AddrFrom4(b)
	case 6:
		var b [16]byte
		for w := range 4 {
			binary.BigEndian.PutUint32(b[4*w:], k.Addr[i][w])
		}
		return netip.AddrFrom16(b)
	}
	return netip.Addr{}
}

// Ports returns the ports (or echo identifiers) of endpoint 0 and endpoint 1.
func (k Key) Ports() (uint16, uint16) {
	return k.Port[0], k.Port[1]
}

// Endpoints returns both endpoints as address and port pairs, endpoint 0 first.
func (k Key) Endpoints() (netip.AddrPort, netip.AddrPort) {
	a, b := k.Addrs()
	return netip.AddrPortFrom(a, k.Port[0]), netip.AddrPortFrom(b, k.Port[1])
}

// String formats the Key as "proto endpoint0 <-> endpoint1", with " vlan N" when tagged, for logs.
// It allocates; keep it off the hot path.
func (k Key) String() string {
	if k.Family == 0 {
		return "flow.Key{}"
	}
	a, b := k.Endpoints()
	s := fmt.Sprintf("%s %s <-> %s", protoName(k.Proto), a, b)
	if k.VLAN != 0 {
		s += fmt.Sprintf(" vlan %d", k.VLAN)
	}
	return s
}

func protoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmp6"
	}
	return fmt.Sprintf("proto-%d", p)
}

// Hash returns a hash of the Key that is the same in every process and on every run, for
// callers' own tables and for spreading flows over shards. It is not keyed: whoever controls the
// traffic can produce collisions, so a table that holds untrusted flows should mix in a secret
// seed as well ([Key.HashSeed]; [Table] does).
func (k Key) Hash() uint64 {
	return k.HashSeed(0)
}

// HashSeed is [Key.Hash] with a caller's seed mixed in; a random per-table seed makes
// collisions hard to craft from outside.
func (k Key) HashSeed(seed uint64) uint64 {
	h := seed ^ 0x9e3779b97f4a7c15
	h = mix(h ^ (uint64(k.Addr[0][0])<<32 | uint64(k.Addr[0][1])))
	h = mix(h ^ (uint64(k.Addr[0][2])<<32 | uint64(k.Addr[0][3])))
	h = mix(h ^ (uint64(k.Addr[1][0])<<32 | uint64(k.Addr[1][1])))
	h = mix(h ^ (uint64(k.Addr[1][2])<<32 | uint64(k.Addr[1][3])))
	h = mix(h ^ (uint64(k.Port[0])<<48 | uint64(k.Port[1])<<32 | uint64(k.VLAN)<<16 | uint64(k.Proto)<<8 | uint64(k.Family)))
	return h
}

// mix is the splitmix64 finaliser: cheap, and every input bit affects every output bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// less reports whether endpoint (a, pa) is smaller than (b, pb) in the canonical order.
func less(a *[4]uint32, pa uint16, b *[4]uint32, pb uint16) bool {
	for i := range 4 {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return pa < pb
}
