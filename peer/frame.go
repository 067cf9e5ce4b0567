package peer

import (
	"encoding/binary"

	"github.com/afbridge/afbridge/ring"
)

// This file turns a received frame into the bytes a TX slot carries. It is pure (no sockets, no
// rings) so it can be fuzzed with arbitrary metadata.

const (
	ethHdrLen  = 14
	vlanLen    = 4
	vnetHdrLen = ring.VnetHdrLen

	tpid8021Q  = 0x8100
	tpid8021AD = 0x88a8
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd

	// virtio_net_hdr fields, as package ring declares them (ring.VnetHdr); packet sockets use
	// host (little-endian here) byte order.
	vnetFlagNeedsCsum = ring.VnetNeedsCsum
	vnetGSONone       = ring.VnetGSONone
)

// inFrame is what the worker knows about a received frame.
type inFrame struct {
	data         []byte // from the MAC header, len = captured length
	wireLen      int    // length on the wire, without the stripped VLAN tag
	vnet         []byte // the 10-byte virtio_net_hdr, nil without PACKET_VNET_HDR
	vlan         bool   // the kernel stripped an outer tag
	tpid, tci    uint16
	csumNotReady bool // TP_STATUS_CSUMNOTREADY
	// reassembled: the kernel reassembled this IPv4 datagram (see reassembled), so it is
	// fragmented again to fit the egress MTU even if it carries DF, as its fragments did.
	reassembled bool
}

// egress describes the port a frame leaves through.
type egress struct {
	vnet bool // the TX socket expects a virtio_net_hdr before each frame
	mtu  int
}

// outcome is what build did with a frame.
type outcome uint8

const (
	built     outcome = iota // dst holds the frame, ready to commit
	truncated                // captured length shorter than the wire length: never sent
	malformed                // shorter than an Ethernet header, or an unfinished checksum that cannot be completed
	oversize                 // larger than the egress MTU (or the TX slot) and not segmentable
	needsFrag                // an IPv4 datagram above the egress MTU: fragment it
)

// reassembled reports whether f (from the MAC header, outer tag stripped) can only be an IPv4
// datagram the kernel reassembled with fanout defrag: it is not a fragment, and its IP packet is
// longer than the ingress MTU, which no frame on the wire can be. The caller checks that the
// frame has no GSO status (GRO also builds packets above the MTU, always with a GSO type).
// A reassembled datagram that fits the MTU cannot be told from one sent whole.
func reassembled(f []byte, inMTU int) bool {
	etype, n := l3(f)
	if etype != etherIPv4 || n+20 > len(f) || f[n]>>4 != 4 {
		return false
	}
	total := int(binary.BigEndian.Uint16(f[n+2:]))
	return total > inMTU && total <= len(f)-n && binary.BigEndian.Uint16(f[n+6:])&0x3fff == 0
}

// build writes the frame for transmit into dst: the virtio_net_hdr when the egress socket has one,
// then the frame with its outer VLAN tag restored. It returns the bytes written, or why nothing
// is to be sent. With needsFrag, dst holds the whole frame (to be fragmented) and n its length.
func build(dst []byte, in *inFrame, eg egress) (n int, hdr int, out outcome) {
	if len(in.data) < in.wireLen {
		return 0, 0, truncated
	}
	if len(in.data) < ethHdrLen {
		return 0, 0, malformed
	}
	tag := 0
	if in.vlan {
		tag = vlanLen
	}
	if eg.vnet {
		hdr = vnetHdrLen
	}
	frameLen := len(in.data) + tag
	if hdr+frameLen > len(dst) {
		return 0, 0, oversize
	}

	f := dst[hdr : hdr+frameLen]
	if tag == 0 {
		copy(f, in.data) // one memmove: small frames are mostly call overhead
	} else {
		copy(f[:12], in.data[:12])
		tpid := in.tpid
		if tpid == 0 {
			tpid = tpid8021Q // kernels before TP_STATUS_VLAN_TPID_VALID only knew 802.1Q
		}
		binary.BigEndian.PutUint16(f[12:], tpid)
		binary.BigEndian.PutUint16(f[14:], in.tci)
		copy(f[16:], in.data[12:])
	}

	gso := false
	if hdr != 0 {
		v := dst[:vnetHdrLen]
		if len(in.vnet) >= vnetHdrLen {
			copy(v, in.vnet[:vnetHdrLen])
		} else {
			clear(v)
		}
		gso = v[1] != vnetGSONone
		if tag != 0 {
			// csum_start and hdr_len count from the MAC header, which is now 4 bytes longer.
			if v[0]&vnetFlagNeedsCsum != 0 {
				binary.LittleEndian.PutUint16(v[6:], binary.LittleEndian.Uint16(v[6:])+vlanLen)
			}
			if gso {
				if hl := binary.LittleEndian.Uint16(v[2:]); hl != 0 {
					binary.LittleEndian.PutUint16(v[2:], hl+vlanLen)
				}
			}
		}
	} else if in.csumNotReady {
		if !completeChecksum(f) {
			return 0, 0, malformed
		}
	}

	if hdr != 0 && !gso {
		// hdr_len is how many bytes tpacket_snd copies into the skb's linear part; the rest
		// become page fragments pointing into the TX ring, which every local receiver (veth,
		// a tap, the host stack) must then copy again page by page (skb_copy_ubufs). For a
		// frame that is not segmented, copying it whole is one small memcpy instead.
		binary.LittleEndian.PutUint16(dst[2:], uint16(min(frameLen, 0xffff)))
	}
	if !gso && frameLen > maxFrame(f, eg) {
		if fragmentable(f, in.reassembled) {
			if hdr != 0 && dst[0]&vnetFlagNeedsCsum != 0 && !completeChecksum(f) {
				return 0, 0, malformed // fragments cannot carry checksum offload
			}
			if hdr != 0 {
				copy(dst, f) // fragment from offset 0: the fragments get their own headers
			}
			return frameLen, 0, needsFrag
		}
		return 0, 0, oversize
	}
	return hdr + frameLen, hdr, built
}

// maxFrame is the longest non-GSO frame the kernel sends on egress: the MTU plus the Ethernet
// header, plus a VLAN tag if the frame starts with an 802.1Q tag or travels with a vnet header
// (af_packet.c allows the extra 4 bytes only in those cases).
func maxFrame(f []byte, eg egress) int {
	max := eg.mtu + ethHdrLen
	if eg.vnet || binary.BigEndian.Uint16(f[12:]) == tpid8021Q {
		max += vlanLen
	}
	return max
}

// fragMTU is the largest IP packet a fragment of frame f may be on egress: the MTU, less the
// bytes by which f's VLAN tags exceed what the kernel's size check allows (see maxFrame), so
// that an 802.1ad-tagged fragment without a vnet header, or one behind two tags, still passes.
func fragMTU(f []byte, eg egress) int {
	_, n := l3(f)
	if n == 0 {
		return eg.mtu
	}
	return min(eg.mtu, maxFrame(f, eg)-n)
}

// l3 returns the EtherType and offset of the network header after up to two VLAN tags.
func l3(f []byte) (etype uint16, off int) {
	off = 12
	for range 3 {
		if off+2 > len(f) {
			return 0, 0
		}
		etype = binary.BigEndian.Uint16(f[off:])
		if etype != tpid8021Q && etype != tpid8021AD {
			return etype, off + 2
		}
		off += vlanLen
	}
	return 0, 0
}

// completeChecksum finishes the TCP or UDP checksum of a frame whose checksum field holds only the
// pseudo-header sum (CHECKSUM_PARTIAL, as a local sender with checksum offload leaves it), the way
// the kernel's skb_checksum_help does. It reports false when the frame is not TCP or UDP over IPv4
// or IPv6 and so cannot be completed.
func completeChecksum(f []byte) bool {
	l4, proto, ok := transport(f)
	if !ok {
		return false
	}
	var off int
	switch proto {
	case 6:
		off = 16
	case 17:
		off = 6
	default:
		return false
	}
	seg := f[l4:]
	if len(seg) < off+2 {
		return false
	}
	c := ^fold(sum(0, seg))
	if proto == 17 && c == 0 {
		c = 0xffff // 0 means "no checksum" for UDP
	}
	binary.BigEndian.PutUint16(seg[off:], c)
	return true
}

// transport returns the offset and protocol of the transport header of an IPv4 or IPv6 frame.
// For IPv6 it follows hop-by-hop, routing and destination options headers.
func transport(f []byte) (off int, proto uint8, ok bool) {
	etype, n := l3(f)
	switch etype {
	case etherIPv4:
		if n+20 > len(f) || f[n]>>4 != 4 {
			return 0, 0, false
		}
		ihl := int(f[n]&0x0f) * 4
		if ihl < 20 || n+ihl > len(f) {
			return 0, 0, false
		}
		if binary.BigEndian.Uint16(f[n+6:])&0x3fff != 0 {
			return 0, 0, false // a fragment: its transport header is elsewhere
		}
		return n + ihl, f[n+9], true
	case etherIPv6:
		if n+40 > len(f) || f[n]>>4 != 6 {
			return 0, 0, false
		}
		next, off := f[n+6], n+40
		for range 8 {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if off+8 > len(f) {
					return 0, 0, false
				}
				next, off = f[off], off+(int(f[off+1])+1)*8
			default:
				return off, next, off <= len(f)
			}
		}
	}
	return 0, 0, false
}

// sum adds b to the one's complement accumulator s as big-endian 16-bit words.
func sum(s uint32, b []byte) uint32 {
	acc := uint64(s)
	for len(b) >= 8 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	for acc>>32 != 0 {
		acc = acc&0xffffffff + acc>>32
	}
	return uint32(acc)
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// fragmentable reports whether f is an IPv4 datagram that may be fragmented: its header is
// whole and its total length is the frame's, and DF is clear unless the datagram was reassembled
// (reasm), whose fragments then fitted the path and whose refragments will too.
func fragmentable(f []byte, reasm bool) bool {
	etype, n := l3(f)
	if etype != etherIPv4 || n+20 > len(f) || f[n]>>4 != 4 {
		return false
	}
	ihl := int(f[n]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(f[n+2:]))
	return ihl >= 20 && n+ihl <= len(f) && total == len(f)-n &&
		(reasm || binary.BigEndian.Uint16(f[n+6:])&0x4000 == 0) // DF
}

// fragmenter splits an IPv4 frame into fragments that fit an MTU (RFC 791): the first carries
// all IP options, later ones only those with the copied flag. Every fragment keeps the header's
// identification, TOS, TTL, protocol, addresses and DF bit; offsets count from the datagram's
// own offset, and MF is set on all but the last, which keeps the datagram's own MF.
type fragmenter struct {
	f        []byte // whole frame
	l2       int    // offset of the IP header
	ihl      int
	mtu      int
	pos      int    // next payload byte to emit, relative to the IP payload
	base     int    // fragment offset of the datagram itself (in bytes), normally 0
	lastMF   bool   // the datagram itself had MF set (it is a fragment being re-fragmented)
	opts     []byte // options for non-first fragments, padded
	optsBuf  [40]byte
	prefixVn int // bytes of zeroed virtio_net_hdr to put before each fragment
}

// reset prepares fragmenting the IPv4 frame f for mtu. It returns built when there are fragments
// to send, malformed when f is no whole IPv4 datagram or its end lies beyond the largest offset a
// fragment can carry (a datagram that is itself a fragment at a high offset: its refragments'
// 13-bit offsets would wrap), and oversize when the MTU leaves no room for 8 payload bytes.
func (fr *fragmenter) reset(f []byte, mtu int, vnet bool) outcome {
	etype, n := l3(f)
	if etype != etherIPv4 || n+20 > len(f) || f[n]>>4 != 4 {
		return malformed
	}
	ihl := int(f[n]&0x0f) * 4
	if ihl < 20 || n+ihl > len(f) {
		return malformed
	}
	*fr = fragmenter{f: f, l2: n, ihl: ihl, mtu: mtu}
	if vnet {
		fr.prefixVn = vnetHdrLen
	}
	fo := binary.BigEndian.Uint16(f[n+6:])
	fr.base = int(fo&0x1fff) * 8
	fr.lastMF = fo&0x2000 != 0
	// Options copied into every fragment (RFC 791: the copied flag is the top bit of the type).
	o := fr.optsBuf[:0]
	opts := f[n+20 : n+fr.ihl]
	for i := 0; i < len(opts); {
		t := opts[i]
		if t == 0 { // end of options list
			break
		}
		if t == 1 { // no-operation
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			break
		}
		l := int(opts[i+1])
		if t&0x80 != 0 {
			o = append(o, opts[i:i+l]...)
		}
		i += l
	}
	for len(o)%4 != 0 {
		o = append(o, 0)
	}
	fr.opts = o
	// RFC 791: offset*8 + payload never exceeds 65535 - header; 0x1fff*8 is the last offset.
	// A datagram without payload never exceeds an MTU: there is nothing to fragment.
	if p := len(f) - n - fr.ihl; p == 0 || fr.base+p > maxIPv4-20 {
		return malformed
	}
	if fr.mtu-fr.ihl < 8 || fr.mtu-20-len(fr.opts) < 8 {
		return oversize
	}
	return built
}

// maxIPv4 is the largest IPv4 datagram, header included.
const maxIPv4 = 0xffff

// count returns the number of fragments next will write.
func (fr *fragmenter) count() int {
	payload := len(fr.f) - fr.l2 - fr.ihl
	first := (fr.mtu - fr.ihl) &^ 7
	if payload <= first {
		return 1
	}
	rest := (fr.mtu - 20 - len(fr.opts)) &^ 7
	return 1 + (payload-first+rest-1)/rest
}

// next writes the next fragment into dst and returns its length, or 0 when all are written or dst
// is too small.
func (fr *fragmenter) next(dst []byte) int {
	payload := fr.f[fr.l2+fr.ihl:]
	if fr.pos >= len(payload) {
		return 0
	}
	first := fr.pos == 0
	ihl := fr.ihl
	if !first {
		ihl = 20 + len(fr.opts)
	}
	chunk := (fr.mtu - ihl) &^ 7
	last := fr.pos+chunk >= len(payload)
	if last {
		chunk = len(payload) - fr.pos
	}
	n := fr.prefixVn + fr.l2 + ihl + chunk
	if n > len(dst) {
		return 0
	}
	clear(dst[:fr.prefixVn])
	d := dst[fr.prefixVn:n]
	copy(d, fr.f[:fr.l2+20])
	ip := d[fr.l2:]
	if first {
		copy(ip[20:ihl], fr.f[fr.l2+20:fr.l2+fr.ihl])
	} else {
		copy(ip[20:ihl], fr.opts)
	}
	ip[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(ip[2:], uint16(ihl+chunk))
	// DF and the reserved bit stay as they were; the offset cannot reach 0x2000 (reset).
	fo := uint16((fr.base+fr.pos)/8) | binary.BigEndian.Uint16(fr.f[fr.l2+6:])&0xc000
	if !last || fr.lastMF {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(ip[6:], fo)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(0, ip[:ihl])))
	copy(ip[ihl:], payload[fr.pos:fr.pos+chunk])
	fr.pos += chunk
	return n
}
