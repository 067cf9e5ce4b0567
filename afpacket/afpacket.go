package afpacket

import (
	"fmt"
	"net"

	"golang.org/x/net/bpf"
)

// Network is the network name Conn reports in errors and addresses.
const Network = "afpacket"

// Config holds a socket's options. A nil *Config and the zero Config mean: capture every
// protocol, no promiscuous mode, no auxiliary data, frames go through the qdisc layer, no vnet
// header, outgoing frames are seen, kernel default buffer sizes, no filter.
type Config struct {
	// Protocol is the EtherType to capture, in host byte order; 0 means ETH_P_ALL (every frame).
	Protocol uint16

	// Promiscuous adds a PACKET_MR_PROMISC membership, so the interface also delivers frames
	// addressed to other hosts: an inline bridge needs it. The kernel counts memberships and drops
	// this one when the socket closes.
	Promiscuous bool

	// Auxdata turns on PACKET_AUXDATA: ReadMsg then reports the wire length, checksum status and
	// the VLAN tag that the kernel stripped from the frame.
	Auxdata bool

	// QdiscBypass sends with PACKET_QDISC_BYPASS, straight to the driver. It is faster, but the
	// frames sent are invisible to taps such as tcpdump on the interface, bypass traffic control,
	// and get no software segmentation (GSO frames fail with ENOBUFS).
	QdiscBypass bool

	// VnetHdr turns on PACKET_VNET_HDR: every frame read or written is preceded by a 10-byte
	// virtio_net_hdr that carries checksum and segmentation offload state, so frames with
	// unfinished checksums and GSO super-frames cross a bridge intact. It must be set before rings
	// are created, which is why it is an option here.
	VnetHdr bool

	// IgnoreOutgoing sets PACKET_IGNORE_OUTGOING: frames the host sends out of the interface are not
	// delivered to this socket. It has no effect on fanout group members; see package fanout.
	IgnoreOutgoing bool

	// RecvBuffer and SendBuffer set SO_RCVBUF and SO_SNDBUF in bytes; 0 keeps the kernel's default.
	// With CAP_NET_ADMIN the FORCE variants are used, so net.core.rmem_max does not cap them.
	RecvBuffer, SendBuffer int

	// Filter is a classic BPF program, attached before the socket is bound so that no frame is ever
	// seen unfiltered. Nil means no filter. SetBPF changes it later.
	Filter []bpf.Instruction

	// NoPoller keeps the socket out of Go's runtime network poller, for owners that wait with
	// poll(2) themselves (package peer does). The poller's permanent registration makes the
	// kernel run a wake-up for every frame the socket transmits. Without it, everything still
	// works but deadlines: ReadFrom, ReadMsg and a ring's RX.Wait sleep in poll(2), holding an
	// OS thread, and Close (Map.Close for a ring) still wakes them; SetDeadline and
	// SetReadDeadline return os.ErrNoDeadline, and WriteTo blocks its thread while the send
	// buffer is full.
	NoPoller bool

	// SendOnly binds the socket to the interface with protocol 0: it captures nothing (so it costs
	// nothing per frame on the interface) and only sends. Filter, Promiscuous and IgnoreOutgoing
	// are meaningless with it.
	SendOnly bool

	// AllowDown lets Listen open a socket on an interface that is administratively down (frames
	// flow once it comes up). By default Listen refuses it, because a bridge port that is down
	// carries nothing and is almost always a mistake.
	AllowDown bool
}

// Addr is the link-layer address of a Conn: the interface it is bound to.
type Addr struct {
	Ifindex      int
	Name         string
	HardwareAddr net.HardwareAddr
}

// Network returns "afpacket".
func (a *Addr) Network() string { return Network }

// String returns the interface name, or its index when the name is unknown.
func (a *Addr) String() string {
	if a == nil {
		return "<nil>"
	}
	if a.Name != "" {
		return a.Name
	}
	return fmt.Sprintf("ifindex %d", a.Ifindex)
}

// Stats are the kernel's counters for a socket, accumulated since it was opened.
//
// The kernel resets PACKET_STATISTICS each time it is read; Conn adds every reading to running
// totals, so Stats always returns cumulative values no matter who calls it or how often.
type Stats struct {
	// Packets is every frame the kernel handed to the socket, including the dropped ones: the
	// kernel adds Drops to this count before reporting it.
	Packets uint64
	// Drops is frames lost because the receive buffer or ring was full.
	Drops uint64
	// Freezes counts how often a TPACKET_V3 ring's queue froze because every block was full
	// (always 0 for other ring versions and for plain sockets).
	Freezes uint64
}

// Interface describes a network interface at the time it was looked up.
type Interface struct {
	Index        int
	Name         string
	MTU          int
	HardwareAddr net.HardwareAddr
	// Up reports whether the interface is administratively up (IFF_UP).
	Up bool
	// Carrier reports whether it is up and operational, with a link (IFF_RUNNING).
	Carrier bool
}

// Info describes one frame returned by ReadMsg.
type Info struct {
	// PktType is sll_pkttype: unix.PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST,
	// PACKET_OTHERHOST or PACKET_OUTGOING.
	PktType uint8
	// Ifindex is the interface the frame crossed.
	Ifindex int
	// Aux is filled when Config.Auxdata is on (AuxValid reports that it was).
	AuxValid bool
	// Len is the frame's length on the wire; more than the bytes returned when the buffer was
	// short.
	Len int
	// Status holds TP_STATUS_* bits: checksum not ready, checksum valid, VLAN valid.
	Status uint32
	// VLANTCI and VLANTPID are the outer VLAN tag the kernel stripped from the frame, when
	// Status has TP_STATUS_VLAN_VALID (a TCI of 0 is still a tag).
	VLANTCI, VLANTPID uint16
}
