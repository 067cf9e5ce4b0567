package ring

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Frame is one received frame, filled in place by RX.Next. Its slices point into the ring and
// stay valid until the next RX.Release; copy what must outlive it.
type Frame struct {
	// Data is the frame from its MAC header on, SnapLen bytes. A VLAN tag the kernel stripped
	// is not in it: see VLANTCI and StatusVLANValid.
	Data []byte
	// Vnet is the 10-byte virtio_net_hdr the kernel wrote right before Data when the socket has
	// PACKET_VNET_HDR (Config.VnetHdr), nil otherwise. Decode it with VnetHdr.Unmarshal.
	Vnet []byte

	// Len is the frame's length on the wire (tp_len), before any truncation.
	Len int
	// SnapLen is the number of bytes captured (tp_snaplen), len(Data).
	SnapLen int
	// Status holds the kernel's per-frame flags (tp_status, without TP_STATUS_USER); on V3 the
	// block's StatusLosing and StatusBlockTimeout are added.
	Status Status
	// VLANTCI and VLANTPID are the outer VLAN tag the kernel stripped (tp_vlan_tci,
	// tp_vlan_tpid), meaningful when Status has StatusVLANValid (a TCI of 0 is still a tag) and,
	// for the TPID, StatusVLANTPIDValid.
	VLANTCI  uint16
	VLANTPID uint16
	// PacketType says who the frame was for (sll_pkttype): PacketHost, PacketOutgoing, ...
	PacketType PacketType
	// Ifindex is the interface the frame was seen on (sll_ifindex).
	Ifindex int

	sec, nsec uint32
}

// Timestamp is when the kernel received the frame (tp_sec, tp_nsec): a software timestamp
// unless PACKET_TIMESTAMP asked for a hardware one and Status says so.
func (f *Frame) Timestamp() time.Time { return time.Unix(int64(f.sec), int64(f.nsec)) }

// Truncated reports whether Data is shorter than the frame on the wire: the slot was too small
// (SnapLen < Len) or the kernel said so (StatusCopy). A bridge must drop such frames.
func (f *Frame) Truncated() bool { return f.SnapLen < f.Len || f.Status&StatusCopy != 0 }

// VnetHdr decodes Vnet; ok is false when the socket has no vnet header.
func (f *Frame) VnetHdr() (h VnetHdr, ok bool) {
	if len(f.Vnet) < VnetHdrLen {
		return VnetHdr{}, false
	}
	return decodeVnet(f.Vnet), true
}

// WithVnet returns the vnet header and the frame as the one contiguous slice they are in the
// ring, ready to be copied unchanged into the TX slot of a socket that also has the vnet
// header; without the header it returns Data.
func (f *Frame) WithVnet() []byte {
	if len(f.Vnet) == 0 || len(f.Data) == 0 {
		return f.Data
	}
	return f.Vnet[: len(f.Vnet)+len(f.Data) : len(f.Vnet)+len(f.Data)]
}

// Status is the set of tp_status flags the kernel reports with a received frame
// (include/uapi/linux/if_packet.h).
type Status uint32

const (
	// StatusCopy (TP_STATUS_COPY): the frame did not fit its slot and was truncated; with
	// PACKET_COPY_THRESH the whole frame also went to the socket's receive queue.
	StatusCopy Status = 0x2
	// StatusLosing (TP_STATUS_LOSING): the kernel has dropped frames for lack of room since the
	// socket's PACKET_STATISTICS were last read.
	StatusLosing Status = 0x4
	// StatusCsumNotReady (TP_STATUS_CSUMNOTREADY): the checksum is yet to be computed
	// (CHECKSUM_PARTIAL), typical of frames the host sends with checksum offload; the bytes on
	// the wire are not final. The vnet header says where the checksum goes.
	StatusCsumNotReady Status = 0x8
	// StatusVLANValid (TP_STATUS_VLAN_VALID): VLANTCI holds a stripped tag.
	StatusVLANValid Status = 0x10
	// StatusBlockTimeout (TP_STATUS_BLK_TMO, V3): the frame's block was handed over by the
	// block timeout, not because it was full.
	StatusBlockTimeout Status = 0x20
	// StatusVLANTPIDValid (TP_STATUS_VLAN_TPID_VALID): VLANTPID holds the stripped tag's TPID.
	StatusVLANTPIDValid Status = 0x40
	// StatusCsumValid (TP_STATUS_CSUM_VALID): the device or stack verified the checksum.
	StatusCsumValid Status = 0x80
	// StatusGSOTCP (TP_STATUS_GSO_TCP): a TCP GSO super-frame, possibly above the MTU.
	StatusGSOTCP Status = 0x100
	// StatusTSSoftware, StatusTSSysHardware and StatusTSRawHardware (TP_STATUS_TS_*) say
	// which clock the timestamp is from.
	StatusTSSoftware    Status = 0x20000000
	StatusTSSysHardware Status = 0x40000000
	StatusTSRawHardware Status = 0x80000000
)

var statusNames = [...]struct {
	s    Status
	name string
}{
	{StatusCopy, "copy"}, {StatusLosing, "losing"}, {StatusCsumNotReady, "csum-not-ready"},
	{StatusVLANValid, "vlan"}, {StatusBlockTimeout, "block-timeout"}, {StatusVLANTPIDValid, "vlan-tpid"},
	{StatusCsumValid, "csum-valid"}, {StatusGSOTCP, "gso-tcp"}, {StatusTSSoftware, "ts-software"},
	{StatusTSSysHardware, "ts-sys-hardware"}, {StatusTSRawHardware, "ts-raw-hardware"},
}

func (s Status) String() string {
	var b strings.Builder
	for _, n := range statusNames {
		if s&n.s != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n.name)
			s &^= n.s
		}
	}
	if s != 0 || b.Len() == 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString("0x" + strconv.FormatUint(uint64(s), 16))
	}
	return b.String()
}

// PacketType is the sll_pkttype of a received frame (include/uapi/linux/if_packet.h).
type PacketType uint8

const (
	PacketHost      PacketType = 0 // PACKET_HOST: to this host's address
	PacketBroadcast PacketType = 1 // PACKET_BROADCAST
	PacketMulticast PacketType = 2 // PACKET_MULTICAST
	PacketOtherHost PacketType = 3 // PACKET_OTHERHOST: to another host, seen in promiscuous mode
	PacketOutgoing  PacketType = 4 // PACKET_OUTGOING: sent by this host
)

func (p PacketType) String() string {
	switch p {
	case PacketHost:
		return "host"
	case PacketBroadcast:
		return "broadcast"
	case PacketMulticast:
		return "multicast"
	case PacketOtherHost:
		return "otherhost"
	case PacketOutgoing:
		return "outgoing"
	}
	return "PacketType(" + strconv.Itoa(int(p)) + ")"
}

// VnetHdrLen is the size of a virtio_net_hdr.
const VnetHdrLen = vnetHdrLen

// VnetHdr is struct virtio_net_hdr (include/uapi/linux/virtio_net.h): the checksum and
// segmentation state PACKET_VNET_HDR carries with each frame. Its 16-bit fields are in the
// host's byte order, which is what af_packet.c uses (legacy virtio).
type VnetHdr struct {
	Flags      uint8  // VnetNeedsCsum, VnetDataValid
	GSOType    uint8  // VnetGSONone, VnetGSOTCPv4, ..., optionally | VnetGSOECN
	HdrLen     uint16 // bytes of headers to copy into the linear part of the skb
	GSOSize    uint16 // payload bytes per segment
	CsumStart  uint16 // where checksumming starts, from the MAC header
	CsumOffset uint16 // where the checksum goes, from CsumStart
}

// Flags and GSO types of a VnetHdr (VIRTIO_NET_HDR_F_* and VIRTIO_NET_HDR_GSO_*).
const (
	VnetNeedsCsum = 0x1 // the checksum at CsumStart+CsumOffset is to be computed
	VnetDataValid = 0x2 // the checksum was verified

	VnetGSONone  = 0x0
	VnetGSOTCPv4 = 0x1
	VnetGSOUDP   = 0x3
	VnetGSOTCPv6 = 0x4
	VnetGSOUDPL4 = 0x5
	VnetGSOECN   = 0x80
)

// ErrShortVnetHdr is returned by VnetHdr.Unmarshal for fewer than VnetHdrLen bytes.
var ErrShortVnetHdr = errors.New("ring: virtio_net_hdr needs 10 bytes")

// ErrAllHeld is the error RX.Wait returns when Next has handed out every RX slot: no frame can
// arrive before a Release.
var ErrAllHeld = errors.New("ring: every RX slot is handed out; call Release before Wait")

// Unmarshal decodes a virtio_net_hdr from the first VnetHdrLen bytes of b.
func (h *VnetHdr) Unmarshal(b []byte) error {
	if len(b) < VnetHdrLen {
		return ErrShortVnetHdr
	}
	*h = decodeVnet(b)
	return nil
}

// Put encodes h into the first VnetHdrLen bytes of b, which must be that long, as a TX slot
// of a socket with PACKET_VNET_HDR starts.
func (h VnetHdr) Put(b []byte) {
	_ = b[VnetHdrLen-1]
	b[0], b[1] = h.Flags, h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
}

func decodeVnet(b []byte) VnetHdr {
	_ = b[VnetHdrLen-1]
	return VnetHdr{
		Flags:      b[0],
		GSOType:    b[1],
		HdrLen:     binary.NativeEndian.Uint16(b[2:]),
		GSOSize:    binary.NativeEndian.Uint16(b[4:]),
		CsumStart:  binary.NativeEndian.Uint16(b[6:]),
		CsumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}

var (
	// ErrOversize is returned by TX.Commit for a frame larger than its slot, or larger than
	// Config.MTU allows without a GSO type: the kernel would refuse it (EMSGSIZE) or the device
	// drop it. Only 802.1Q frames get 4 bytes beyond MTU+14, as in the kernel's check; a
	// full-MTU 802.1ad frame needs the vnet header path.
	ErrOversize = errors.New("ring: frame larger than the TX slot or the MTU allows")
	// ErrMalformed is returned by TX.Commit for a frame the kernel would refuse (EINVAL):
	// shorter than an Ethernet header, or with a virtio_net_hdr that does not fit the frame.
	ErrMalformed = errors.New("ring: frame shorter than an Ethernet header or with an inconsistent virtio_net_hdr")
	// ErrNotReserved is returned by TX.Commit without a reservation from TX.Reserve.
	ErrNotReserved = errors.New("ring: Commit without a slot from Reserve")
)
