package rules

import (
	"encoding/binary"
	"net/netip"
)

// This file builds test frames. It deliberately shares no code with the
// package: the checksum here adds with end-around carry at every step, where
// the package defers folding, so a bug in one does not hide in the other.

// onesSum is the ones'-complement sum of b, 16 bits at a time, carrying
// after each addition.
func onesSum(acc uint16, b []byte) uint16 {
	padded := b
	if len(b)%2 == 1 {
		padded = append(append([]byte(nil), b...), 0)
	}
	for i := 0; i < len(padded); i += 2 {
		w := binary.BigEndian.Uint16(padded[i:])
		s := uint32(acc) + uint32(w)
		acc = uint16(s) + uint16(s>>16)
	}
	return acc
}

// pseudo returns the pseudo-header bytes for an upper-layer checksum.
func pseudo(src, dst netip.Addr, proto uint8, l4len int) []byte {
	var b []byte
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		b = append(b, 0, proto)
		b = binary.BigEndian.AppendUint16(b, uint16(l4len))
		return b
	}
	s, d := src.As16(), dst.As16()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(l4len))
	b = append(b, 0, 0, 0, proto)
	return b
}

// csumOK reports whether data (with its checksum field filled in) sums to
// all ones, optionally after a pseudo-header.
func csumOK(pseudoHdr, data []byte) bool {
	return onesSum(onesSum(0, pseudoHdr), data) == 0xffff
}

type vlanTag struct {
	tpid uint16
	id   uint16
}

type extHdr struct {
	typ     uint8
	size    int    // total bytes, a multiple of 8 (fragment headers: 8)
	fragOff uint16 // fragment offset in 8-byte units, for typ 44
}

type frameSpec struct {
	dstMAC, srcMAC [6]byte
	tags           []vlanTag
	src, dst       string
	proto          uint8
	sport, dport   uint16
	seq, ack       uint32
	flags          uint8
	icmpType       uint8
	icmpCode       uint8
	payload        []byte
	ipOpts         int // IPv4 option bytes, a multiple of 4
	tcpOpts        int // TCP option bytes, a multiple of 4
	ext            []extHdr
	fragOff        uint16 // IPv4 fragment offset in 8-byte units
	more           bool   // IPv4 more-fragments flag
	pad            int    // Ethernet padding after the IP packet
	rawL4          bool   // payload is the whole IP payload: no L4 header built
}

var (
	macA = [6]byte{0x02, 0, 0, 0, 0, 0xaa}
	macB = [6]byte{0x02, 0, 0, 0, 0, 0xbb}
)

func (f frameSpec) build() []byte {
	src, dst := netip.MustParseAddr(f.src), netip.MustParseAddr(f.dst)
	if f.dstMAC == ([6]byte{}) {
		f.dstMAC = macB
	}
	if f.srcMAC == ([6]byte{}) {
		f.srcMAC = macA
	}

	var l4 []byte
	switch {
	case f.rawL4:
		l4 = append(l4, f.payload...)
	case f.proto == protoTCP:
		l4 = make([]byte, 20+f.tcpOpts)
		binary.BigEndian.PutUint16(l4[0:], f.sport)
		binary.BigEndian.PutUint16(l4[2:], f.dport)
		binary.BigEndian.PutUint32(l4[4:], f.seq)
		binary.BigEndian.PutUint32(l4[8:], f.ack)
		l4[12] = byte(len(l4)/4) << 4
		l4[13] = f.flags
		binary.BigEndian.PutUint16(l4[14:], 64240)
		for i := 20; i < len(l4); i++ {
			l4[i] = 1 // NOP options
		}
		l4 = append(l4, f.payload...)
		binary.BigEndian.PutUint16(l4[16:], ^onesSum(onesSum(0, pseudo(src, dst, protoTCP, len(l4))), l4))
	case f.proto == protoUDP:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], f.sport)
		binary.BigEndian.PutUint16(l4[2:], f.dport)
		binary.BigEndian.PutUint16(l4[4:], uint16(8+len(f.payload)))
		l4 = append(l4, f.payload...)
		binary.BigEndian.PutUint16(l4[6:], ^onesSum(onesSum(0, pseudo(src, dst, protoUDP, len(l4))), l4))
	case f.proto == protoICMP || f.proto == protoICMPv6:
		l4 = []byte{f.icmpType, f.icmpCode, 0, 0, 0x12, 0x34, 0, 1}
		l4 = append(l4, f.payload...)
		var ph []byte
		if f.proto == protoICMPv6 {
			ph = pseudo(src, dst, protoICMPv6, len(l4))
		}
		binary.BigEndian.PutUint16(l4[2:], ^onesSum(onesSum(0, ph), l4))
	default:
		l4 = append(l4, f.payload...)
	}

	var ip []byte
	var etype uint16
	if src.Is4() {
		etype = etherTypeIPv4
		hl := 20 + f.ipOpts
		ip = make([]byte, hl)
		ip[0] = 0x40 | byte(hl/4)
		binary.BigEndian.PutUint16(ip[2:], uint16(hl+len(l4)))
		binary.BigEndian.PutUint16(ip[4:], 0x1234)
		fo := f.fragOff
		if f.more {
			fo |= 0x2000
		}
		binary.BigEndian.PutUint16(ip[6:], fo)
		ip[8] = 64
		ip[9] = f.proto
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		for i := 20; i < hl; i++ {
			ip[i] = 1
		}
		binary.BigEndian.PutUint16(ip[10:], ^onesSum(0, ip))
		ip = append(ip, l4...)
	} else {
		etype = etherTypeIPv6
		var exts []byte
		for i, e := range f.ext {
			next := f.proto
			if i+1 < len(f.ext) {
				next = f.ext[i+1].typ
			}
			h := make([]byte, e.size)
			h[0] = next
			if e.typ == ipv6Fragment {
				binary.BigEndian.PutUint16(h[2:], e.fragOff<<3)
			} else {
				h[1] = byte(e.size/8 - 1)
			}
			exts = append(exts, h...)
		}
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(exts)+len(l4)))
		ip[6] = f.proto
		if len(f.ext) > 0 {
			ip[6] = f.ext[0].typ
		}
		ip[7] = 64
		s, d := src.As16(), dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		ip = append(ip, exts...)
		ip = append(ip, l4...)
	}

	fr := append([]byte(nil), f.dstMAC[:]...)
	fr = append(fr, f.srcMAC[:]...)
	for _, t := range f.tags {
		fr = binary.BigEndian.AppendUint16(fr, t.tpid)
		fr = binary.BigEndian.AppendUint16(fr, t.id)
	}
	fr = binary.BigEndian.AppendUint16(fr, etype)
	fr = append(fr, ip...)
	fr = append(fr, make([]byte, f.pad)...)
	return fr
}

// Common frames.
func tcp4(src, dst string, sport, dport uint16, payload string) frameSpec {
	return frameSpec{src: src, dst: dst, proto: protoTCP, sport: sport, dport: dport,
		seq: 1000, ack: 2000, flags: TCPAck | TCPPsh, payload: []byte(payload)}
}

func udp4(src, dst string, sport, dport uint16, payload string) frameSpec {
	return frameSpec{src: src, dst: dst, proto: protoUDP, sport: sport, dport: dport, payload: []byte(payload)}
}
