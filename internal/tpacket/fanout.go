// Package tpacket holds the AF_PACKET kernel structs and constants that golang.org/x/sys/unix
// lacks, each block naming the kernel header it mirrors.
package tpacket

// From include/uapi/linux/if_packet.h (Linux 5.11+) and net/packet/internal.h.

// FanoutArgs is struct fanout_args, the long form of the PACKET_FANOUT option that also sets
// the group's member limit. The header orders id and type_flags by bitfield endianness so that
// the first 32 bits read natively as id | type_flags<<16, exactly the int that the short form
// of the option takes; IDTypeFlags keeps that word whole, so the layout is the same on every
// byte order.
type FanoutArgs struct {
	IDTypeFlags   uint32 // id | (mode | flags) << 16
	MaxNumMembers uint32 // 0 means the legacy limit, FanoutLegacyMax
}

// SizeofFanoutArgs is sizeof(struct fanout_args).
const SizeofFanoutArgs = 8

const (
	// FanoutMax is PACKET_FANOUT_MAX from net/packet/internal.h: the largest member limit a
	// group may be created with (Linux 5.11+).
	FanoutMax = 1 << 16
	// FanoutLegacyMax is the member limit of a group created without an explicit one, and the
	// only limit before Linux 5.11.
	FanoutLegacyMax = 256
)

// From include/uapi/linux/packet_diag.h: the sock_diag dump of AF_PACKET sockets, which is the
// only way to see another socket's fanout group (`ss -0 -p` uses it too).

// PacketDiagReq is struct packet_diag_req.
type PacketDiagReq struct {
	Family   uint8 // AF_PACKET
	Protocol uint8 // must be 0
	Pad      uint16
	Ino      uint32 // unused by the kernel: the dump lists every packet socket of the netns
	Show     uint32 // PACKET_SHOW_* bits
	Cookie   [2]uint32
}

// PacketDiagMsg is struct packet_diag_msg, the fixed head of each dumped socket; netlink
// attributes (PACKET_DIAG_*) follow it.
type PacketDiagMsg struct {
	Family uint8
	Type   uint8  // SOCK_RAW or SOCK_DGRAM
	Num    uint16 // bound protocol, host byte order
	Ino    uint32 // socket inode, truncated to 32 bits
	Cookie [2]uint32
}

// PacketDiagInfo is struct packet_diag_info, the payload of PACKET_DIAG_INFO.
type PacketDiagInfo struct {
	Index      uint32 // bound ifindex, 0 for all interfaces
	Version    uint32
	Reserve    uint32
	CopyThresh uint32
	Tstamp     uint32
	Flags      uint32 // PDI_* bits
}

// Sizes of the packet_diag structs.
const (
	SizeofPacketDiagReq  = 20
	SizeofPacketDiagMsg  = 16
	SizeofPacketDiagInfo = 24
)

// packet_diag_req.pdiag_show bits.
const (
	PACKET_SHOW_INFO   = 0x1
	PACKET_SHOW_FANOUT = 0x8
)

// Netlink attribute types of a packet_diag_msg.
const (
	PACKET_DIAG_INFO   = 0
	PACKET_DIAG_FANOUT = 4 // u32: id | type << 16 (the group's flags are not reported)
)

// PDI_RUNNING is the packet_diag_info.pdi_flags bit of a socket that is hooked into the
// receive path: bound with a non-zero protocol to an interface that is up.
const PDI_RUNNING = 0x1
