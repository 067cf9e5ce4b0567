package pcapfilter_test

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
)

// Frame corpus for the differential tests: realistic frames built from small pools of
// addresses, ports and VLAN ids that the test expressions name, mixed with random bytes and
// truncations, so that every primitive sees both matches and near misses.

var (
	v4Pool = []string{"198.18.0.1", "198.18.0.2", "198.18.1.1", "198.19.255.255", "198.18.0.255",
		"10.0.0.1", "224.0.0.1", "239.1.2.3", "255.255.255.255", "0.0.0.0"}
	v6Pool = []string{"2001:2::1", "2001:2::2", "2001:2:0:1::5", "2001:2:ffff::1", "2001:3::1",
		"ff02::1", "fe80::1", "::"}
	macPool = [][6]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{1, 0, 0x5e, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 1}, {2, 0, 0, 0, 1, 1}}
	portPool = []uint16{22, 53, 80, 443, 999, 1000, 1500, 2000, 2001, 8080, 65535, 0}
	vlanPool = []uint16{10, 20, 30, 0, 4095}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

type frameGen struct{ r *rand.Rand }

func (g frameGen) v4() [4]byte { return netip.MustParseAddr(pick(g.r, v4Pool)).As4() }
func (g frameGen) v6() [16]byte {
	if g.r.IntN(8) == 0 {
		var a [16]byte
		for i := range a {
			a[i] = byte(g.r.Uint32())
		}
		return a
	}
	return netip.MustParseAddr(pick(g.r, v6Pool)).As16()
}

func (g frameGen) port() uint16 {
	if g.r.IntN(6) == 0 {
		return uint16(g.r.Uint32())
	}
	return pick(g.r, portPool)
}

// l4 builds a transport header and a little payload for IP protocol p.
func (g frameGen) l4(p byte) []byte {
	n := 8 + g.r.IntN(40)
	if g.r.IntN(4) == 0 {
		n += g.r.IntN(300)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	switch p {
	case 6, 17, 132:
		if p == 6 && len(b) < 20 {
			b = append(b, make([]byte, 20-len(b))...)
		}
		binary.BigEndian.PutUint16(b[0:], g.port())
		binary.BigEndian.PutUint16(b[2:], g.port())
		if p == 6 {
			b[13] = pick(g.r, []byte{0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x00, byte(g.r.Uint32())})
		}
	case 1, 58:
		b[0] = pick(g.r, []byte{0, 3, 8, 11, 128, 129, 135, 136, byte(g.r.Uint32())})
		b[1] = byte(g.r.IntN(4))
	}
	return b
}

func (g frameGen) ipProto() byte {
	return pick(g.r, []byte{6, 6, 17, 17, 1, 58, 132, 2, 47, 50, byte(g.r.Uint32())})
}

func (g frameGen) ipv4() []byte {
	ihl := 5
	if g.r.IntN(5) == 0 {
		ihl = 5 + g.r.IntN(11)
	}
	if g.r.IntN(30) == 0 {
		ihl = g.r.IntN(5) // invalid, but filters must still agree
	}
	h := make([]byte, max(ihl*4, 20))
	h[0] = 0x40 | byte(ihl)
	p := g.ipProto()
	h[9] = p
	switch g.r.IntN(6) {
	case 0: // a later fragment
		binary.BigEndian.PutUint16(h[6:], uint16(1+g.r.IntN(0x1fff))|uint16(g.r.IntN(2))<<13)
	case 1: // first fragment
		binary.BigEndian.PutUint16(h[6:], 0x2000)
	case 2: // DF
		binary.BigEndian.PutUint16(h[6:], 0x4000)
	}
	s, d := g.v4(), g.v4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	b := append(h, g.l4(p)...)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	return b
}

func (g frameGen) ipv6() []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	p := g.ipProto()
	s, d := g.v6(), g.v6()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	var ext []byte
	switch g.r.IntN(5) {
	case 0: // fragment header
		ext = make([]byte, 8)
		ext[0] = p
		binary.BigEndian.PutUint16(ext[2:], uint16(g.r.IntN(3))<<3|uint16(g.r.IntN(2)))
		p = 44
	case 1: // hop-by-hop
		ext = make([]byte, 8)
		ext[0] = p
		p = 0
	}
	h[6] = p
	h[7] = 64
	next := h[6]
	if len(ext) > 0 {
		next = ext[0]
	}
	b := append(append(h, ext...), g.l4(next)...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

func (g frameGen) arp() []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[2:], 0x800)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], uint16(1+g.r.IntN(4)))
	m := pick(g.r, macPool)
	copy(b[8:], m[:])
	s, d := g.v4(), g.v4()
	copy(b[14:], s[:])
	copy(b[24:], d[:])
	return b
}

// frame returns one Ethernet frame, sometimes VLAN-tagged (up to two tags), sometimes cut short.
func (g frameGen) frame() []byte {
	if g.r.IntN(40) == 0 { // pure noise
		b := make([]byte, g.r.IntN(120))
		for i := range b {
			b[i] = byte(g.r.Uint32())
		}
		return b
	}
	dst, src := pick(g.r, macPool), pick(g.r, macPool)
	b := append(append([]byte{}, dst[:]...), src[:]...)
	tags := 0
	switch g.r.IntN(6) {
	case 0, 1:
		tags = 1
	case 2:
		tags = 2
	}
	for i := 0; i < tags; i++ {
		tpid := pick(g.r, []uint16{0x8100, 0x8100, 0x88a8, 0x9100})
		tci := pick(g.r, vlanPool) | uint16(g.r.IntN(8))<<13
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, tci)
	}
	var etype uint16
	var payload []byte
	switch g.r.IntN(12) {
	case 0, 1, 2, 3:
		etype, payload = 0x800, g.ipv4()
	case 4, 5, 6:
		etype, payload = 0x86dd, g.ipv6()
	case 7:
		etype, payload = 0x806, g.arp()
	case 8:
		etype, payload = 0x8035, g.arp()
	case 9: // 802.3 length with LLC
		payload = []byte{pick(g.r, []byte{0x42, 0xaa, 0xfe, 0x06, 0xf0, 100}), 0, 3, 1, 2, 3, 4, 5, 6}
		payload[1] = payload[0]
		etype = uint16(len(payload))
	case 10:
		etype = pick(g.r, []uint16{0x88cc, 0x8847, 0x888e, uint16(g.r.Uint32())})
		payload = make([]byte, g.r.IntN(60))
	default:
		etype = uint16(g.r.Uint32())
		payload = make([]byte, g.r.IntN(60))
		for i := range payload {
			payload[i] = byte(g.r.Uint32())
		}
	}
	b = binary.BigEndian.AppendUint16(b, etype)
	b = append(b, payload...)
	if g.r.IntN(6) == 0 {
		b = b[:g.r.IntN(len(b)+1)]
	}
	return b
}
