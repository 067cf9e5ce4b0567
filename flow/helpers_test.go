package flow_test

import (
	"encoding/binary"
	"net/netip"

	"github.com/afbridge/afbridge/flow"
)

// Frame builders for tests: headers only, checksums left 0 (the parser never reads them).

var (
	macA = []byte{0x02, 0, 0, 0, 0, 0xa}
	macB = []byte{0x02, 0, 0, 0, 0, 0xb}
)

type tag struct{ tpid, tci uint16 }

// eth returns an Ethernet header with the given tags and EtherType, followed by payload.
func eth(et uint16, tags []tag, payload []byte) []byte {
	b := append(append([]byte{}, macB...), macA...)
	for _, t := range tags {
		b = binary.BigEndian.AppendUint16(b, t.tpid)
		b = binary.BigEndian.AppendUint16(b, t.tci)
	}
	b = binary.BigEndian.AppendUint16(b, et)
	return append(b, payload...)
}

type ip4opts struct {
	id       uint16
	fragOff  uint16 // bytes, multiple of 8
	mf, df   bool
	ttl      uint8
	options  int // bytes of IPv4 options (multiple of 4)
	totDelta int // added to the correct total length
}

func ip4(src, dst string, proto uint8, o ip4opts, payload []byte) []byte {
	hl := 20 + o.options
	b := make([]byte, hl, hl+len(payload))
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hl+len(payload)+o.totDelta))
	binary.BigEndian.PutUint16(b[4:], o.id)
	fo := o.fragOff >> 3
	if o.mf {
		fo |= 0x2000
	}
	if o.df {
		fo |= 0x4000
	}
	binary.BigEndian.PutUint16(b[6:], fo)
	b[8] = o.ttl
	b[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	for i := 20; i < hl; i++ {
		b[i] = 1 // NOP options
	}
	return append(b, payload...)
}

// ext is one IPv6 extension header; typ 44 is a fragment header.
type ext struct {
	typ     uint8
	len8    uint8 // generic: length in 8-byte units beyond the first 8
	fragOff uint16
	m       bool
	id      uint32
}

func ip6(src, dst string, exts []ext, proto uint8, hop uint8, payload []byte) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	b[7] = hop
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	nextAt := 6
	for _, e := range exts {
		b[nextAt] = e.typ
		nextAt = len(b)
		switch e.typ {
		case 44:
			h := make([]byte, 8)
			fo := e.fragOff &^ 7
			if e.m {
				fo |= 1
			}
			binary.BigEndian.PutUint16(h[2:], fo)
			binary.BigEndian.PutUint32(h[4:], e.id)
			b = append(b, h...)
		case 51:
			h := make([]byte, (int(e.len8)+2)*4)
			h[1] = e.len8
			b = append(b, h...)
		default:
			h := make([]byte, (int(e.len8)+1)*8)
			h[1] = e.len8
			b = append(b, h...)
		}
	}
	b[nextAt] = proto
	b = append(b, payload...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

func tcp(sp, dp uint16, seq, ack uint32, flags flow.TCPFlags, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(b[0:], sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = 5 << 4
	b[13] = byte(flags)
	binary.BigEndian.PutUint16(b[14:], 65535)
	return append(b, payload...)
}

func udp(sp, dp uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func icmp(typ, code uint8, id, seq uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	return append(b, payload...)
}

// tcp4 is the common case: an untagged IPv4 TCP frame.
func tcp4(src string, sp uint16, dst string, dp uint16, flags flow.TCPFlags, payload []byte) []byte {
	return eth(flow.EtherTypeIPv4, nil, ip4(src, dst, flow.ProtoTCP, ip4opts{ttl: 64}, tcp(sp, dp, 1000, 2000, flags, payload)))
}
