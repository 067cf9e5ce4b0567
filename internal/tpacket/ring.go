package tpacket

// From include/uapi/linux/if_packet.h: ring frame layout.

const (
	// Alignment is TPACKET_ALIGNMENT: frame sizes and the offsets inside a frame are multiples of it.
	Alignment = 16

	// V2HdrLen is TPACKET2_HDRLEN, TPACKET_ALIGN(sizeof(struct tpacket2_hdr)) +
	// sizeof(struct sockaddr_ll): the tpacket2_hdr, padded, followed by the sockaddr_ll.
	V2HdrLen = 32 + 20
	// V3HdrLen is TPACKET3_HDRLEN, the same for struct tpacket3_hdr.
	V3HdrLen = 48 + 20

	// V2SockaddrOff and V3SockaddrOff are where the sockaddr_ll of a received frame sits in its
	// slot: TPACKET_ALIGN(sizeof(struct tpacket{2,3}_hdr)). They are also where a TX frame's data
	// starts (tp_hdrlen - sizeof(struct sockaddr_ll), net/packet/af_packet.c tpacket_parse_header).
	V2SockaddrOff = 32
	V3SockaddrOff = 48

	// FTReqFillRxhash is TP_FT_REQ_FILL_RXHASH, the tpacket_req3.tp_feature_req_word bit that makes
	// a V3 ring fill tpacket3_hdr.hv1.tp_rxhash.
	FTReqFillRxhash = 0x1
)

// From net/packet/af_packet.c (private to the kernel, but they fix the V3 block layout).

const (
	// V3Alignment is V3_ALIGNMENT: each frame of a V3 block starts at a multiple of it.
	V3Alignment = 8
	// BlockHdrLen is BLK_HDR_LEN, ALIGN(sizeof(struct tpacket_block_desc), V3_ALIGNMENT): the
	// block descriptor before the first frame of a V3 block (with no private area).
	BlockHdrLen = 48
	// BlockStatusOff is the offset of tpacket_block_desc.hdr.bh1.block_status in a block.
	BlockStatusOff = 8
	// DefaultRetireTov is DEFAULT_PRB_RETIRE_TOV, the V3 block timeout in milliseconds the kernel
	// uses when tp_retire_blk_tov is 0 and the link speed is below 1 Gbit/s or unknown (veth).
	DefaultRetireTov = 8
)

// From include/uapi/linux/virtio_net.h.

// SizeofVirtioNetHdr is sizeof(struct virtio_net_hdr), the header PACKET_VNET_HDR puts before
// each frame. Its 16-bit fields are in the byte order of legacy virtio, which af_packet.c uses
// (vio_le()): the host's native order.
const SizeofVirtioNetHdr = 10
