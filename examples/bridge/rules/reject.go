package rules

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Direction says which endpoint of the offending packet a reject frame is
// sent to. The zero value is invalid.
type Direction uint8

// Directions for BuildReject.
const (
	// ToSource addresses the frame to the sender of the offending packet,
	// as if the destination had answered.
	ToSource Direction = iota + 1
	// ToDestination addresses the frame to the receiver of the offending
	// packet, as if the source had sent it.
	ToDestination
)

// MaxRejectLen is the largest frame BuildReject writes: an Ethernet header
// with MaxVLANs tags and a 1280-byte IPv6 packet, the ICMPv6 error limit of
// RFC 4443 section 2.4(c): 1302 bytes. An out buffer of this size is
// always enough.
const MaxRejectLen = ethHeaderLen + MaxVLANs*vlanTagLen + 1280

// Errors returned by BuildReject.
var (
	// ErrNotRejectable means nothing may be sent for the frame: it is not
	// TCP or UDP over IP with a complete L4 header, it is a non-first
	// fragment, it is a TCP reset (RFC 793: never answer a reset), or it
	// is addressed to or from a multicast, broadcast or unspecified
	// address (RFC 1122 section 3.2.2 and RFC 4443 section 2.4(e)).
	ErrNotRejectable = errors.New("rules: frame cannot be rejected")
	// ErrShortBuffer means out is too small; MaxRejectLen always fits.
	ErrShortBuffer = errors.New("rules: reject buffer too small")
	// ErrDirection means the Direction is neither ToSource nor ToDestination.
	ErrDirection = errors.New("rules: invalid reject direction")
)

// Header field values for the frames built here.
const (
	rejectTTL           = 64
	ipv4DontFragment    = 0x4000
	tosInternetControl  = 0xc0 // RFC 1812 section 4.3.2.5: precedence 6 for ICMP errors
	icmpDestUnreachable = 3
	icmpPortUnreachable = 3
	icmp6DestUnreach    = 1
	icmp6PortUnreach    = 4
	icmpErrorHdrLen     = 8
	ipv4ErrorQuote      = 8 // bytes of the offending payload quoted, RFC 792
	ipv6MinMTU          = 1280
)

// BuildReject writes into out the frame that carries out a reject verdict
// towards one endpoint of frame, the offending Ethernet frame, and returns
// its length. A reject rule needs up to two frames: call BuildReject with
// ToSource and with ToDestination, and send each one with n > 0 out of the
// bridge side the offending frame came in on (ToSource) or was heading for
// (ToDestination).
//
// For TCP the RSTs follow RFC 9293 section 3.10.7.1, the reset a TCP sends in reply to a segment
// that belongs to no connection:
//   - ToSource comes from the destination: MACs, addresses and ports are
//     swapped. If the offending segment has the ACK bit, the RST's sequence
//     number is SEG.ACK and it carries no ACK: that is exactly what the
//     source expects next. Otherwise (a SYN, or a stray segment) its sequence
//     number is 0 and it is RST|ACK acknowledging SEG.SEQ+SEG.LEN, where a SYN
//     and a FIN count one each; the segment's acknowledgment field is then
//     ignored, whatever it holds.
//   - ToDestination comes from the source, with the offending segment's
//     headers kept: its sequence number is the segment's own, since the
//     segment is dropped and the destination still expects exactly that
//     number (RFC 5961 makes Linux accept a RST only there), and it repeats
//     the segment's ACK. A segment without the ACK bit gets no RST towards
//     its destination (n is 0): the destination has no connection such a
//     segment could belong to (RFC 9293 section 3.10.7.4 drops segments
//     without ACK in a synchronized state), and after a SYN it is at most in
//     SYN-RECEIVED, whose window starts past the SYN's sequence number.
//
// For UDP the source gets an ICMP port unreachable (ICMPv4 type 3 code 3,
// quoting the offending IPv4 header and 8 bytes of its payload; or ICMPv6
// type 1 code 4, quoting as much of the offending IPv6 packet as fits in
// 1280 bytes) from the destination address, and ToDestination returns 0 and
// no error: there is nothing to tell the destination.
//
// VLAN tags are copied unchanged. IPv4 frames get TTL 64 and a correct header
// checksum, IPv6 hop limit 64; TCP and ICMP checksums are computed. Any other
// frame returns ErrNotRejectable: the caller just drops it. BuildReject does
// not allocate.
func BuildReject(frame []byte, dir Direction, out []byte) (int, error) {
	if dir != ToSource && dir != ToDestination {
		return 0, ErrDirection
	}
	var p Packet
	if !p.Decode(frame) || !p.HasL4 || p.NonFirstFragment || !unicast(frame, &p) {
		return 0, ErrNotRejectable
	}
	switch p.Proto {
	case protoTCP:
		return buildRST(frame, &p, dir, out)
	case protoUDP:
		if dir == ToDestination {
			return 0, nil
		}
		if p.SrcIP.Is4() {
			return buildICMPv4(frame, &p, out)
		}
		return buildICMPv6(frame, &p, out)
	}
	return 0, ErrNotRejectable
}

// unicast reports whether both ends are unicast, at the link and IP layers.
func unicast(frame []byte, p *Packet) bool {
	const groupBit = 0x01 // I/G bit of the first MAC octet
	if frame[0]&groupBit != 0 || frame[6]&groupBit != 0 {
		return false
	}
	for _, a := range [2]netip.Addr{p.SrcIP, p.DstIP} {
		if a.IsMulticast() || a.IsUnspecified() || (a.Is4() && a.As4() == [4]byte{255, 255, 255, 255}) {
			return false
		}
	}
	return true
}

// writeL2 copies the Ethernet header and VLAN tags, swapping the MACs when
// the frame goes back to the source.
func writeL2(frame []byte, p *Packet, dir Direction, out []byte) {
	copy(out[:p.ipOff], frame[:p.ipOff])
	if dir == ToSource {
		copy(out[0:6], frame[6:12])
		copy(out[6:12], frame[0:6])
	}
}

// writeIP writes an IP header of the packet's version for a payload of
// plen bytes and protocol proto, from src to dst, and returns its length.
func writeIP(out []byte, p *Packet, proto uint8, plen int, src, dst netip.Addr, tos uint8) int {
	if p.SrcIP.Is4() {
		h := out[:ipv4MinHdrLen]
		h[0] = 0x45
		h[1] = tos
		binary.BigEndian.PutUint16(h[2:], uint16(ipv4MinHdrLen+plen))
		binary.BigEndian.PutUint32(h[4:], ipv4DontFragment) // id 0, DF
		h[8] = rejectTTL
		h[9] = proto
		h[10], h[11] = 0, 0
		s4, d4 := src.As4(), dst.As4()
		copy(h[12:16], s4[:])
		copy(h[16:20], d4[:])
		binary.BigEndian.PutUint16(h[10:], finish(sum(0, h)))
		return ipv4MinHdrLen
	}
	h := out[:ipv6HdrLen]
	binary.BigEndian.PutUint32(h[0:], 6<<28|uint32(tos)<<20)
	binary.BigEndian.PutUint16(h[4:], uint16(plen))
	h[6] = proto
	h[7] = rejectTTL
	s16, d16 := src.As16(), dst.As16()
	copy(h[8:24], s16[:])
	copy(h[24:40], d16[:])
	return ipv6HdrLen
}

// pseudoSum is the checksum of the TCP/UDP/ICMPv6 pseudo-header of RFC 793
// (IPv4) or RFC 8200 section 8.1 (IPv6) for the IP header at ip.
func pseudoSum(ip []byte, proto uint8, l4len int) uint32 {
	var s uint32
	if ip[0]>>4 == 4 {
		s = sum(0, ip[12:20])
	} else {
		s = sum(0, ip[8:40])
	}
	return s + uint32(proto) + uint32(l4len)
}

func buildRST(frame []byte, p *Packet, dir Direction, out []byte) (int, error) {
	tcp := frame[p.l4Off:]
	flags := tcp[13]
	if flags&TCPRst != 0 {
		return 0, ErrNotRejectable
	}
	ipLen := ipv4MinHdrLen
	if p.SrcIP.Is6() {
		ipLen = ipv6HdrLen
	}
	n := p.ipOff + ipLen + tcpMinHdrLen
	if len(out) < n {
		return 0, ErrShortBuffer
	}
	seq := binary.BigEndian.Uint32(tcp[4:])
	ack := binary.BigEndian.Uint32(tcp[8:])
	seglen := uint32(p.end - p.payOff)
	if flags&TCPSyn != 0 {
		seglen++
	}
	if flags&TCPFin != 0 {
		seglen++
	}

	src, dst, sport, dport := p.SrcIP, p.DstIP, p.SrcPort, p.DstPort
	var oseq, oack uint32
	oflags := uint8(TCPRst)
	if dir == ToSource {
		src, dst, sport, dport = dst, src, dport, sport
		if flags&TCPAck != 0 {
			oseq = ack
		} else {
			oack = seq + seglen
			oflags |= TCPAck
		}
	} else {
		if flags&TCPAck == 0 {
			return 0, nil // nothing the destination could accept: see BuildReject
		}
		// The offending segment is dropped, so the destination still expects its sequence
		// number: Linux accepts a RST only at exactly rcv_nxt (RFC 5961).
		oseq, oack = seq, ack
		oflags |= TCPAck
	}

	writeL2(frame, p, dir, out)
	ip := out[p.ipOff:]
	writeIP(ip, p, protoTCP, tcpMinHdrLen, src, dst, 0)
	t := ip[ipLen : ipLen+tcpMinHdrLen]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], oseq)
	binary.BigEndian.PutUint32(t[8:], oack)
	t[12] = tcpMinHdrLen / 4 << 4
	t[13] = oflags
	clear(t[14:20]) // window, checksum, urgent pointer
	binary.BigEndian.PutUint16(t[16:], finish(sum(pseudoSum(ip, protoTCP, tcpMinHdrLen), t)))
	return n, nil
}

func buildICMPv4(frame []byte, p *Packet, out []byte) (int, error) {
	ihl := p.l4Off - p.ipOff
	quote := ihl + min(ipv4ErrorQuote, p.end-p.l4Off)
	plen := icmpErrorHdrLen + quote
	n := p.ipOff + ipv4MinHdrLen + plen
	if len(out) < n {
		return 0, ErrShortBuffer
	}
	writeL2(frame, p, ToSource, out)
	ip := out[p.ipOff:]
	writeIP(ip, p, protoICMP, plen, p.DstIP, p.SrcIP, tosInternetControl)
	icmp := ip[ipv4MinHdrLen : ipv4MinHdrLen+plen]
	icmp[0], icmp[1] = icmpDestUnreachable, icmpPortUnreachable
	clear(icmp[2:8]) // checksum, unused
	copy(icmp[8:], frame[p.ipOff:p.ipOff+quote])
	binary.BigEndian.PutUint16(icmp[2:], finish(sum(0, icmp)))
	return n, nil
}

func buildICMPv6(frame []byte, p *Packet, out []byte) (int, error) {
	quote := min(p.end-p.ipOff, ipv6MinMTU-ipv6HdrLen-icmpErrorHdrLen)
	plen := icmpErrorHdrLen + quote
	n := p.ipOff + ipv6HdrLen + plen
	if len(out) < n {
		return 0, ErrShortBuffer
	}
	writeL2(frame, p, ToSource, out)
	ip := out[p.ipOff:]
	writeIP(ip, p, protoICMPv6, plen, p.DstIP, p.SrcIP, 0)
	icmp := ip[ipv6HdrLen : ipv6HdrLen+plen]
	icmp[0], icmp[1] = icmp6DestUnreach, icmp6PortUnreach
	clear(icmp[2:8])
	copy(icmp[8:], frame[p.ipOff:p.ipOff+quote])
	binary.BigEndian.PutUint16(icmp[2:], finish(sum(pseudoSum(ip, protoICMPv6, plen), icmp)))
	return n, nil
}

// sum adds b to the Internet checksum accumulator s (RFC 1071), 16 bits at a
// time, big-endian, padding an odd final byte with zero.
func sum(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// finish folds the carries of s into 16 bits and complements the result.
func finish(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
