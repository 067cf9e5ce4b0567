package rules

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// MaxVLANs is how many 802.1Q (TPID 0x8100) or 802.1ad (TPID 0x88a8) tags
// Decode skips. A frame with more is not decoded as IP.
const MaxVLANs = 2

// maxExtHeaders bounds the IPv6 extension header walk, so a frame made of
// nothing but extension headers costs a fixed amount of work.
const maxExtHeaders = 8

// EtherTypes and IP protocol numbers the decoder knows.
const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100
	etherTypeQinQ  = 0x88a8
	protoICMP      = 1
	protoTCP       = 6
	protoUDP       = 17
	protoICMPv6    = 58
	ipv6HopByHop   = 0
	ipv6Routing    = 43
	ipv6Fragment   = 44
	ipv6DestOpts   = 60
	ethHeaderLen   = 14
	ipv4MinHdrLen  = 20
	ipv6HdrLen     = 40
	tcpMinHdrLen   = 20
	udpHdrLen      = 8
	icmpMinHdrLen  = 4
	vlanTagLen     = 4
	ipv4FragOffset = 0x1fff
)

// TCP flags, as in the 14th byte of the TCP header.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
	TCPUrg = 0x20
)

// Packet is what Decode learned about a frame. Fields that Decode could not
// determine are zero; a zero SrcIP means the frame is not IP.
type Packet struct {
	// VLAN holds the VLAN ids of the first NumVLAN tags, outermost first.
	VLAN    [MaxVLANs]uint16
	NumVLAN int
	// EtherType is the type after the VLAN tags.
	EtherType uint16
	// SrcIP and DstIP are the IP addresses; both are valid or neither is.
	SrcIP, DstIP netip.Addr
	// Proto is the IP protocol number of the upper-layer header: the IPv4
	// protocol field, or the IPv6 next header after the extension headers.
	// If the IPv6 extension headers are truncated or too many, it is the
	// next header that could not be skipped.
	Proto uint8
	// ProtoName is Proto as Suricata's EVE output names it: "TCP", "UDP",
	// "ICMP", "IPv6-ICMP", a few other names, or the number in decimal. It
	// is "" for a frame that is not IP.
	ProtoName string
	// NonFirstFragment is set for an IPv4 or IPv6 fragment with a non-zero
	// offset. Such a fragment carries no L4 header.
	NonFirstFragment bool
	// HasL4 is set when the TCP, UDP, ICMP or ICMPv6 header is complete.
	// Ports, TCPFlags and the ICMP type and code are valid only then.
	HasL4 bool
	// SrcPort and DstPort are the TCP or UDP ports.
	SrcPort, DstPort uint16
	// TCPFlags is the TCP flags byte (TCPSyn, TCPAck, ...).
	TCPFlags uint8
	// ICMPType and ICMPCode are the ICMP or ICMPv6 type and code.
	ICMPType, ICMPCode uint8

	// Offsets into the frame: ipOff is the IP header, l4Off the upper-layer
	// header (the IP payload), payOff the TCP or UDP payload, end the end of
	// the IP packet. 0 <= ipOff <= l4Off <= payOff <= end <= len(frame).
	ipOff, l4Off, payOff, end int
}

// VLANs returns the decoded VLAN ids, outermost first. The slice aliases p.
func (p *Packet) VLANs() []uint16 { return p.VLAN[:p.NumVLAN] }

// HasPorts reports whether the packet has a decoded TCP or UDP header.
func (p *Packet) HasPorts() bool {
	return p.HasL4 && (p.Proto == protoTCP || p.Proto == protoUDP)
}

// IsIP reports whether an IPv4 or IPv6 header was decoded.
func (p *Packet) IsIP() bool { return p.SrcIP.IsValid() }

// Decode fills p from frame, an Ethernet frame without FCS, and reports
// whether it holds an IPv4 or IPv6 packet. It never reads outside frame:
// whatever is truncated or malformed is left zero, and the rest is decoded.
// The IP total length (or IPv6 payload length) bounds the packet, so
// Ethernet padding is never taken for payload; a frame shorter than the IP
// length is decoded up to its end. Decode does not allocate.
func (p *Packet) Decode(frame []byte) bool {
	*p = Packet{}
	if len(frame) < ethHeaderLen {
		return false
	}
	et := binary.BigEndian.Uint16(frame[12:])
	off := ethHeaderLen
	for (et == etherTypeVLAN || et == etherTypeQinQ) && p.NumVLAN < MaxVLANs {
		if len(frame) < off+vlanTagLen {
			p.EtherType = et
			return false
		}
		p.VLAN[p.NumVLAN] = binary.BigEndian.Uint16(frame[off:]) & 0x0fff
		p.NumVLAN++
		et = binary.BigEndian.Uint16(frame[off+2:])
		off += vlanTagLen
	}
	p.EtherType = et
	var ok bool
	switch et {
	case etherTypeIPv4:
		ok = p.decodeIPv4(frame, off)
	case etherTypeIPv6:
		ok = p.decodeIPv6(frame, off)
	}
	if ok {
		p.ProtoName = protoNames[p.Proto]
	}
	return ok
}

func (p *Packet) decodeIPv4(frame []byte, off int) bool {
	if len(frame)-off < ipv4MinHdrLen {
		return false
	}
	h := frame[off:]
	if h[0]>>4 != 4 {
		return false
	}
	ihl := int(h[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(h[2:]))
	if ihl < ipv4MinHdrLen || ihl > len(h) || total < ihl {
		return false
	}
	total = min(total, len(h))
	p.SrcIP = netip.AddrFrom4([4]byte(h[12:16]))
	p.DstIP = netip.AddrFrom4([4]byte(h[16:20]))
	p.Proto = h[9]
	p.ipOff, p.l4Off, p.end = off, off+ihl, off+total
	if binary.BigEndian.Uint16(h[6:])&ipv4FragOffset != 0 {
		p.NonFirstFragment = true
		p.payOff = p.l4Off
		return true
	}
	p.decodeL4(frame)
	return true
}

func (p *Packet) decodeIPv6(frame []byte, off int) bool {
	if len(frame)-off < ipv6HdrLen {
		return false
	}
	h := frame[off:]
	if h[0]>>4 != 6 {
		return false
	}
	// A zero payload length means a jumbogram or nothing at all; jumbograms
	// do not occur on Ethernet, so take it as an empty payload.
	end := min(off+ipv6HdrLen+int(binary.BigEndian.Uint16(h[4:])), len(frame))
	p.SrcIP = netip.AddrFrom16([16]byte(h[8:24]))
	p.DstIP = netip.AddrFrom16([16]byte(h[24:40]))
	p.ipOff, p.end = off, end
	next := h[6]
	cur := off + ipv6HdrLen
	for range maxExtHeaders {
		var n int
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			if end-cur < 8 {
				return p.stopIPv6(next, cur)
			}
			n = (int(frame[cur+1]) + 1) * 8
		case ipv6Fragment:
			if end-cur < 8 {
				return p.stopIPv6(next, cur)
			}
			n = 8
			if binary.BigEndian.Uint16(frame[cur+2:])>>3 != 0 {
				p.Proto = frame[cur]
				p.NonFirstFragment = true
				p.l4Off, p.payOff = cur+n, cur+n
				return true
			}
		default:
			p.Proto = next
			p.l4Off = cur
			p.decodeL4(frame)
			return true
		}
		if end-cur < n {
			return p.stopIPv6(next, cur)
		}
		next = frame[cur]
		cur += n
	}
	switch next {
	case ipv6HopByHop, ipv6Routing, ipv6DestOpts, ipv6Fragment:
		return p.stopIPv6(next, cur)
	}
	p.Proto = next
	p.l4Off = cur
	p.decodeL4(frame)
	return true
}

// stopIPv6 records an extension header chain that could not be followed:
// the addresses are known, the upper-layer protocol and payload are not.
func (p *Packet) stopIPv6(next uint8, cur int) bool {
	p.Proto = next
	p.l4Off, p.payOff = cur, p.end
	return true
}

// decodeL4 decodes the header at l4Off. Without a complete header there is
// no L4 payload: payOff is end.
func (p *Packet) decodeL4(frame []byte) {
	p.payOff = p.end
	h := frame[p.l4Off:p.end]
	switch p.Proto {
	case protoTCP:
		if len(h) < tcpMinHdrLen {
			return
		}
		doff := int(h[12]>>4) * 4
		if doff < tcpMinHdrLen || doff > len(h) {
			return
		}
		p.SrcPort = binary.BigEndian.Uint16(h[0:])
		p.DstPort = binary.BigEndian.Uint16(h[2:])
		p.TCPFlags = h[13]
		p.payOff = p.l4Off + doff
	case protoUDP:
		if len(h) < udpHdrLen {
			return
		}
		p.SrcPort = binary.BigEndian.Uint16(h[0:])
		p.DstPort = binary.BigEndian.Uint16(h[2:])
		p.payOff = p.l4Off + udpHdrLen
	case protoICMP, protoICMPv6:
		if len(h) < icmpMinHdrLen {
			return
		}
		p.ICMPType, p.ICMPCode = h[0], h[1]
		p.payOff = p.l4Off + icmpMinHdrLen
	default:
		return
	}
	p.HasL4 = true
}

// protoNames are the names EVE uses (from /etc/protocols), precomputed so
// that Decode never formats a number.
var protoNames = func() (t [256]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	t[0] = "HOPOPT"
	t[protoICMP] = "ICMP"
	t[2] = "IGMP"
	t[4] = "IPv4"
	t[protoTCP] = "TCP"
	t[protoUDP] = "UDP"
	t[41] = "IPv6"
	t[ipv6Routing] = "IPv6-Route"
	t[ipv6Fragment] = "IPv6-Frag"
	t[47] = "GRE"
	t[50] = "ESP"
	t[51] = "AH"
	t[protoICMPv6] = "IPv6-ICMP"
	t[59] = "IPv6-NoNxt"
	t[ipv6DestOpts] = "IPv6-Opts"
	t[132] = "SCTP"
	return t
}()
