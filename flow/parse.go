package flow

import (
	"encoding/binary"
	"errors"
)

// Errors returned by [Parse]. Match them with errors.Is. On an error the [Packet] still holds
// what was read before the parser stopped (for example the addresses of a frame whose transport
// header is cut short).
var (
	// ErrNotIP: the frame is not IPv4 or IPv6 after at most two VLAN tags (more tags count as
	// not IP, as in the fast path). Such a frame has no flow; a bridge forwards or judges it as is.
	ErrNotIP = errors.New("flow: not an IPv4 or IPv6 frame")
	// ErrTruncated: the frame ends inside a header the parser needs.
	ErrTruncated = errors.New("flow: frame ends inside a header")
	// ErrMalformed: a header is impossible: an IP version that does not match the EtherType, an
	// IPv4 header length below 20 bytes, a TCP data offset below 20 bytes.
	ErrMalformed = errors.New("flow: malformed header")
	// ErrExtHeaderLimit: an IPv6 packet has more than [MaxExtHeaders] extension headers before
	// its upper layer. The parser did not reach the upper layer, so nothing in the packet was
	// inspected; an IPS should drop such a packet (and count it) rather than pass it uninspected.
	ErrExtHeaderLimit = errors.New("flow: more IPv6 extension headers than flow.MaxExtHeaders")
)

// MaxExtHeaders is the number of IPv6 extension headers [Parse] walks before it gives up with
// [ErrExtHeaderLimit]. Real traffic carries a handful at most; RFC 8200 expects each type at
// most once or twice, so 16 leaves room for anything legitimate.
const MaxExtHeaders = 16

// MaxBypassExtHeaders is the most IPv6 extension headers (hop-by-hop, routing and destination
// options only) a frame may carry and still be bypass-eligible; see [Packet.Bypassable].
const MaxBypassExtHeaders = 4

// EtherTypes the parser understands.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeIPv6 = 0x86dd
	EtherTypeVLAN = 0x8100 // 802.1Q
	EtherTypeQinQ = 0x88a8 // 802.1ad
)

const (
	ethHeaderLen   = 14
	ipv4HeaderLen  = 20
	ipv6HeaderLen  = 40
	tcpHeaderLen   = 20
	udpHeaderLen   = 8
	icmpHeaderLen  = 8
	maxVLANTags    = 2
	ipv6NextHdrLen = 8
)

// TCPFlags are the flag bits of a TCP header (byte 13).
type TCPFlags uint8

// TCP flag bits.
const (
	TCPFIN TCPFlags = 0x01
	TCPSYN TCPFlags = 0x02
	TCPRST TCPFlags = 0x04
	TCPPSH TCPFlags = 0x08
	TCPACK TCPFlags = 0x10
	TCPURG TCPFlags = 0x20
	TCPECE TCPFlags = 0x40
	TCPCWR TCPFlags = 0x80
)

// Has reports whether all bits of m are set in f.
func (f TCPFlags) Has(m TCPFlags) bool { return f&m == m }

// Packet is what [Parse] learns of one frame. The caller owns it and reuses it from frame to
// frame; Parse overwrites every field. Offsets are byte offsets into the parsed frame.
type Packet struct {
	// Key is the frame's canonical flow key.
	Key Key
	// Reversed is true when the frame's source is endpoint 1 of the Key (the larger endpoint).
	// Both directions of a flow give the same Key and opposite Reversed (unless the two
	// endpoints are equal, then both are false).
	Reversed bool

	// Len is the length of the parsed frame.
	Len int

	// Tags is the number of VLAN tags in the frame's bytes (0 to 2). Key.VLAN is the outer ID;
	// InnerVLAN is the inner ID when there are two tags.
	Tags      int
	InnerVLAN uint16
	// EtherType is the EtherType after the VLAN tags.
	EtherType uint16

	// L3 is where the IP header starts, L4 where the upper layer starts (after IPv4 options or
	// IPv6 extension headers; for a fragment that is not the first, where its data starts), and
	// Payload where the transport payload starts (after the TCP, UDP or ICMP header; equal to L4
	// for other protocols and for a fragment that is not the first). End is where the IP packet
	// ends by its length field: it excludes Ethernet padding. It is the frame's length when the
	// length field is 0 (IPv4 and IPv6 GSO super-frames above 64 KiB, jumbograms), smaller than
	// the IPv4 header, or claims more bytes than the frame holds. Payload can be larger than End
	// in a packet that lies about its length; [Packet.PayloadBytes] handles that.
	L3, L4, Payload, End int

	// TTL is the IPv4 TTL or the IPv6 hop limit.
	TTL uint8
	// ExtHeaders is the number of IPv6 extension headers walked.
	ExtHeaders int

	// Fragment is true for an IPv4 fragment (MF set or a non-zero offset) and for any IPv6
	// packet with a fragment header (atomic fragments included). A fragment whose FragOffset is 0
	// is the first one and has its ports; later fragments have ports 0 in the Key.
	Fragment bool
	// IPID is the IPv4 Identification, or the IPv6 fragment header's Identification.
	IPID uint32
	// FragOffset is the fragment offset in bytes (the header's 8-byte units times 8).
	FragOffset uint16
	// MoreFragments is IPv4 MF or the IPv6 fragment header's M flag; DontFragment is IPv4 DF.
	MoreFragments, DontFragment bool

	// TCP header fields, set when Key.Proto is TCP and the header is present.
	Seq, Ack     uint32
	TCPFlags     TCPFlags
	Window       uint16
	TCPHeaderLen uint8
	// UDPLength is the UDP header's length field.
	UDPLength uint16
	// ICMPType and ICMPCode are set for ICMP (IPv4) and ICMPv6.
	ICMPType, ICMPCode uint8

	bypassable bool
}

// Bypassable reports whether the frame may be handed to the kernel fast path: exactly the rule the
// eBPF programs implement, so Go and the kernel agree frame by frame. A frame is bypass-eligible
// when it is:
//   - IPv4 with version 4, IHL >= 5, and not a fragment (MF 0 and offset 0), or IPv6 with version 6
//     whose extension headers are at most [MaxBypassExtHeaders] of types 0 (hop-by-hop), 43
//     (routing) and 60 (destination options) and end in the upper layer; and
//   - the upper layer is TCP or UDP with its 4 port bytes in the frame, or an echo request or reply
//     (ICMP types 8 and 0 under IPv4, ICMPv6 types 128 and 129 under IPv6) with its identifier
//     (bytes 4 and 5 of the ICMP header) in the frame.
//
// Bounds are the frame's bytes, as in the kernel: the IP length fields are not consulted, and
// the rest of the transport header does not change the decision: a TCP header cut short after
// its ports, or with a data offset below 20, is eligible even though [Parse] returns
// [ErrTruncated] or [ErrMalformed] for it. Every other frame (fragments, AH, ESP, other
// extension headers, other protocols, non-IP) is not eligible.
func (p *Packet) Bypassable() bool { return p.bypassable }

// PayloadBytes returns the transport payload of the parsed frame, frame[Payload:End], or an
// empty slice when the headers leave none. frame must be the frame given to [Parse].
func (p *Packet) PayloadBytes(frame []byte) []byte {
	end := min(p.End, len(frame))
	if p.Payload <= 0 || p.Payload >= end {
		return frame[:0]
	}
	return frame[p.Payload:end]
}

// Src returns the index (0 or 1) of the frame's source endpoint in the Key.
func (p *Packet) Src() int {
	if p.Reversed {
		return 1
	}
	return 0
}

// Parse reads the headers of an Ethernet frame into p: VLAN tags (up to two, 802.1Q or 802.1ad),
// IPv4 or IPv6 with its extension headers (up to [MaxExtHeaders]), and TCP, UDP, ICMP or ICMPv6.
// The frame is as the verdict sees it (verdict.Packet.Data), with the outer VLAN tag in the bytes.
// Parse allocates nothing, never changes the frame, and keeps no reference to it.
//
// It returns nil, or one of [ErrNotIP], [ErrTruncated], [ErrMalformed], [ErrExtHeaderLimit].
// p is fully overwritten either way; on an error it holds what was read before the parser stopped.
func Parse(frame []byte, p *Packet) error {
	*p = Packet{Len: len(frame)}
	n := len(frame)
	if n < ethHeaderLen {
		return ErrTruncated
	}
	off := 12
	et := be16(frame, off)
	for et == EtherTypeVLAN || et == EtherTypeQinQ {
		if p.Tags == maxVLANTags {
			p.EtherType = et
			return ErrNotIP
		}
		if n < off+6 { // TCI and the next EtherType
			return ErrTruncated
		}
		tci := be16(frame, off+2) & 0x0fff
		if p.Tags == 0 {
			p.Key.VLAN = tci
		} else {
			p.InnerVLAN = tci
		}
		p.Tags++
		off += 4
		et = be16(frame, off)
	}
	p.EtherType = et
	p.L3 = off + 2
	var err error
	switch et {
	case EtherTypeIPv4:
		err = parse4(frame, p)
	case EtherTypeIPv6:
		err = parse6(frame, p)
	default:
		return ErrNotIP
	}
	// Canonical order: the smaller endpoint is endpoint 0.
	k := &p.Key
	if less(&k.Addr[1], k.Port[1], &k.Addr[0], k.Port[0]) {
		k.Addr[0], k.Addr[1] = k.Addr[1], k.Addr[0]
		k.Port[0], k.Port[1] = k.Port[1], k.Port[0]
		p.Reversed = true
	}
	return err
}

func parse4(frame []byte, p *Packet) error {
	n, l3 := len(frame), p.L3
	if n < l3+ipv4HeaderLen {
		return ErrTruncated
	}
	vihl := frame[l3]
	if vihl>>4 != 4 {
		return ErrMalformed
	}
	p.Key.Family = 4
	p.Key.Addr[0][0] = be32(frame, l3+12)
	p.Key.Addr[1][0] = be32(frame, l3+16)
	p.TTL = frame[l3+8]
	p.Key.Proto = frame[l3+9]
	p.IPID = uint32(be16(frame, l3+4))
	fo := be16(frame, l3+6)
	p.DontFragment = fo&0x4000 != 0
	p.MoreFragments = fo&0x2000 != 0
	p.FragOffset = (fo & 0x1fff) << 3
	p.Fragment = p.MoreFragments || p.FragOffset != 0
	ihl := int(vihl&0x0f) << 2
	if ihl < ipv4HeaderLen {
		return ErrMalformed
	}
	p.End = n
	if tot := int(be16(frame, l3+2)); tot >= ihl && l3+tot <= n {
		p.End = l3 + tot
	}
	p.L4 = l3 + ihl
	p.Payload = p.L4
	if n < p.L4 {
		return ErrTruncated
	}
	if p.FragOffset != 0 {
		return nil // no transport header in a later fragment
	}
	ok, err := transport(frame, p)
	p.bypassable = ok && !p.Fragment
	return err
}

func parse6(frame []byte, p *Packet) error {
	n, l3 := len(frame), p.L3
	if n < l3+ipv6HeaderLen {
		return ErrTruncated
	}
	if frame[l3]>>4 != 6 {
		return ErrMalformed
	}
	p.Key.Family = 6
	for w := range 4 {
		p.Key.Addr[0][w] = be32(frame, l3+8+4*w)
		p.Key.Addr[1][w] = be32(frame, l3+24+4*w)
	}
	p.TTL = frame[l3+7]
	p.End = n
	if plen := int(be16(frame, l3+4)); plen != 0 && l3+ipv6HeaderLen+plen <= n {
		p.End = l3 + ipv6HeaderLen + plen
	}
	next := frame[l3+6]
	off := l3 + ipv6HeaderLen
	plain := true // only hop-by-hop, routing and destination options so far
	for {
		var size int
		switch next {
		case 0, 43, 60, 135, 139, 140, 253, 254:
			// Hop-by-hop, routing, destination options, mobility, HIP, shim6, experimental:
			// the RFC 6564 layout, length in 8-byte units not counting the first 8.
			if n < off+2 {
				p.Key.Proto = next
				return ErrTruncated
			}
			if next != 0 && next != 43 && next != 60 {
				plain = false
			}
			size = (int(frame[off+1]) + 1) * 8
		case 44: // fragment
			if n < off+ipv6NextHdrLen {
				p.Key.Proto = next
				return ErrTruncated
			}
			plain = false
			p.Fragment = true
			fo := be16(frame, off+2)
			p.FragOffset = fo &^ 7
			p.MoreFragments = fo&1 != 0
			p.IPID = be32(frame, off+4)
			size = ipv6NextHdrLen
		case 51: // AH: length in 4-byte units, not counting the first 8 bytes
			if n < off+2 {
				p.Key.Proto = next
				return ErrTruncated
			}
			plain = false
			size = (int(frame[off+1]) + 2) * 4
		default:
			p.Key.Proto = next
			p.L4, p.Payload = off, off
			if n < off {
				return ErrTruncated
			}
			ok, err := transport(frame, p)
			p.bypassable = ok && plain && p.ExtHeaders <= MaxBypassExtHeaders
			return err
		}
		if p.ExtHeaders == MaxExtHeaders {
			p.Key.Proto = next
			p.L4, p.Payload = off, off
			return ErrExtHeaderLimit
		}
		p.ExtHeaders++
		next = frame[off]
		off += size
		if p.FragOffset == 0 {
			continue
		}
		// A later fragment: what follows is data, not headers.
		p.Key.Proto = next
		p.L4, p.Payload = off, off
		if n < off {
			return ErrTruncated
		}
		return nil
	}
}

// transport reads the upper-layer header at p.L4 and reports whether the bytes the fast path
// keys on (ports, echo identifier) are there and the protocol is one it bypasses.
func transport(frame []byte, p *Packet) (bool, error) {
	n, l4 := len(frame), p.L4
	switch p.Key.Proto {
	case ProtoTCP, ProtoUDP:
		if n < l4+4 {
			return false, ErrTruncated
		}
		p.Key.Port[0] = be16(frame, l4)
		p.Key.Port[1] = be16(frame, l4+2)
		if p.Key.Proto == ProtoUDP {
			if n < l4+udpHeaderLen {
				return true, ErrTruncated
			}
			p.UDPLength = be16(frame, l4+4)
			p.Payload = l4 + udpHeaderLen
			return true, nil
		}
		if n < l4+tcpHeaderLen {
			return true, ErrTruncated
		}
		p.Seq = be32(frame, l4+4)
		p.Ack = be32(frame, l4+8)
		hl := (frame[l4+12] >> 4) << 2
		p.TCPHeaderLen = hl
		p.TCPFlags = TCPFlags(frame[l4+13])
		p.Window = be16(frame, l4+14)
		if hl < tcpHeaderLen {
			return true, ErrMalformed
		}
		if n < l4+int(hl) {
			return true, ErrTruncated
		}
		p.Payload = l4 + int(hl)
		return true, nil
	case ProtoICMP, ProtoICMPv6:
		if n < l4+2 {
			return false, ErrTruncated
		}
		p.ICMPType, p.ICMPCode = frame[l4], frame[l4+1]
		echo := false
		if p.Key.Proto == ProtoICMP && p.Key.Family == 4 {
			echo = p.ICMPType == 8 || p.ICMPType == 0
		} else if p.Key.Proto == ProtoICMPv6 && p.Key.Family == 6 {
			echo = p.ICMPType == 128 || p.ICMPType == 129
		}
		if echo && n >= l4+6 {
			id := be16(frame, l4+4)
			p.Key.Port = [2]uint16{id, id}
		} else {
			echo = false
		}
		if n < l4+icmpHeaderLen {
			return echo, ErrTruncated
		}
		p.Payload = l4 + icmpHeaderLen
		return echo, nil
	}
	return false, nil
}

func be16(b []byte, off int) uint16 { return binary.BigEndian.Uint16(b[off:]) }
func be32(b []byte, off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }
