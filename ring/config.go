package ring

import (
	"fmt"
	"math"
	"os"
	"time"

	"github.com/afbridge/afbridge/internal/tpacket"
)

// Version is the TPACKET ring version, set on the socket with PACKET_VERSION.
type Version int

const (
	// V2 rings (TPACKET_V2) hold fixed-size frames, each handed to the process as soon as the
	// kernel has written it: the lowest latency at any rate, one status word per frame.
	V2 Version = 2
	// V3 rings (TPACKET_V3) pack frames of any size into blocks and hand a block over when it is
	// full or its timeout (Config.BlockTimeout) expires: fewer wake-ups and no per-frame slot
	// waste at high rates, up to a block timeout of latency at low rates.
	V3 Version = 3

	// DefaultVersion is the version a zero Config.Version means.
	DefaultVersion = V2
)

func (v Version) String() string {
	switch v {
	case V2:
		return "TPACKET_V2"
	case V3:
		return "TPACKET_V3"
	}
	return fmt.Sprintf("Version(%d)", int(v))
}

// Config sets the rings' version and geometry. Every zero field means a default derived from MTU
// and VnetHdr; Resolve shows the result. A nil *Config means the zero Config.
type Config struct {
	// Version is V2 or V3 for both rings; zero means DefaultVersion.
	Version Version

	// MTU is the interface's MTU, from which the default slot sizes follow; zero means 1500.
	// The TX ring also uses it to refuse, at Commit, frames the kernel or the device would drop.
	MTU int

	// VnetHdr tells the ring that the socket has PACKET_VNET_HDR set (its owner sets it before
	// calling New; New checks that they agree). Each RX frame is then preceded by a 10-byte
	// virtio_net_hdr, each TX frame must be, and RX slots are sized for 64 KiB GSO super-frames.
	VnetHdr bool

	// Locked mlocks the mapping, like Suricata's mmap-locked. Ring pages are kernel pages,
	// never swapped, mapped VM_MIXEDMAP, which mlock(2) skips: on Linux 6.18 VmLck stays 0.
	// Without CAP_IPC_LOCK, mlock still fails with ENOMEM for a mapping above RLIMIT_MEMLOCK.
	Locked bool

	// NoRX maps no RX ring: a transmit-only socket. The RX geometry fields must then be zero.
	NoRX bool

	// CopyLarge (V2 only) sizes RX slots for MTU-sized frames even with VnetHdr, and sets
	// PACKET_COPY_THRESH: a frame too large for its slot (a GSO super-frame, a reassembled
	// datagram) still takes its place in the ring, cut short and flagged StatusCopy, and the
	// kernel also queues it whole on the socket, where a plain recv reads it in arrival order.
	// Small slots mean many more of them for the same memory, which is what absorbs bursts of
	// small frames; the rare large frame costs one extra syscall.
	CopyLarge bool

	// FrameSize is the size of a V2 RX slot: the frame plus the tpacket header, a multiple of
	// 16. Zero means room for an MTU-sized frame with a VLAN tag, or for a 64 KiB GSO
	// super-frame with VnetHdr (69,632 bytes). Smaller slots are refused, since the kernel
	// would silently truncate frames into them. V2 only.
	FrameSize int
	// FrameCount is the number of V2 RX slots, rounded up to fill whole blocks. Zero means
	// about 16 MiB of ring. V2 only.
	FrameCount int
	// BlockSize is the unit the kernel allocates the RX ring in, a multiple of the page size.
	// V2 packs whole frames into each block; zero picks the power-of-two number of pages that
	// wastes the least. V3 packs variable-size frames into blocks and hands a block over when
	// it fills; zero means 1 MiB.
	BlockSize int
	// BlockCount is the number of V3 RX blocks; zero means 16. V3 only.
	BlockCount int
	// BlockTimeout is how long the kernel keeps filling a V3 block before it hands the block
	// over anyway, in whole milliseconds (rounded up); zero lets the kernel derive it from the
	// link speed and block size (8 ms on links of unknown speed, such as veth). V3 only.
	BlockTimeout time.Duration

	// TXFrameCount is the number of TX slots, rounded up to fill whole blocks; zero means no
	// TX ring.
	TXFrameCount int
	// TXFrameSize is the size of a TX slot, a multiple of 16: the tpacket header (32 bytes on
	// V2, 48 on V3) then the frame. Zero means room for an MTU-sized frame with a VLAN tag, or
	// for a 64 KiB GSO super-frame with VnetHdr.
	TXFrameSize int
	// TXBlockSize is the TX ring's allocation unit, as BlockSize is for a V2 RX ring.
	TXBlockSize int
}

const (
	defaultMTU    = 1500
	minMTU        = 68 // the smallest IPv4 MTU
	maxMTU        = math.MaxUint16
	ethHdrLen     = 14
	vlanHdrLen    = 4
	vnetHdrLen    = tpacket.SizeofVirtioNetHdr
	maxGSOFrame   = math.MaxUint16 + ethHdrLen // a 64 KiB IP datagram with its Ethernet header
	defaultRXRing = 16 << 20
	defaultV3Blk  = 1 << 20
	defaultV3Blks = 16
	maxAutoBlock  = 4 << 20
	maxRingBytes  = 1 << 40
)

// Resolve returns c with every zero field replaced by its default, or an error that names the
// field to change. Resolving a resolved Config changes nothing. New calls it; call it yourself
// to check a configuration before opening sockets.
func (c Config) Resolve() (Config, error) {
	r := c
	if r.Version == 0 {
		r.Version = DefaultVersion
	}
	if r.Version != V2 && r.Version != V3 {
		return c, cfgErr("Version", "Version %d is neither V2 nor V3", int(r.Version))
	}
	if r.MTU == 0 {
		r.MTU = defaultMTU
	}
	if r.MTU < minMTU || r.MTU > maxMTU {
		return c, cfgErr("MTU", "MTU %d is outside %d..%d; pass the interface's MTU, or 0 for %d",
			r.MTU, minMTU, maxMTU, defaultMTU)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"FrameSize", r.FrameSize}, {"FrameCount", r.FrameCount}, {"BlockSize", r.BlockSize},
		{"BlockCount", r.BlockCount}, {"TXFrameCount", r.TXFrameCount}, {"TXFrameSize", r.TXFrameSize},
		{"TXBlockSize", r.TXBlockSize}} {
		if f.v < 0 {
			return c, cfgErr(f.name, "%s %d is negative; use 0 for the default", f.name, f.v)
		}
	}
	if r.BlockTimeout < 0 {
		return c, cfgErr("BlockTimeout", "BlockTimeout %v is negative; use 0 for the kernel's default", r.BlockTimeout)
	}
	page := os.Getpagesize()
	var rxBytes int
	if r.NoRX {
		if r.FrameSize != 0 || r.FrameCount != 0 || r.BlockSize != 0 || r.BlockCount != 0 || r.BlockTimeout != 0 {
			return c, cfgErr("NoRX", "NoRX is set but so is RX geometry; clear FrameSize, FrameCount, BlockSize, BlockCount and BlockTimeout")
		}
		if r.TXFrameCount == 0 {
			return c, cfgErr("NoRX", "NoRX is set and TXFrameCount is 0: there is nothing to map; set TXFrameCount")
		}
	} else {
		var err error
		if r.Version == V2 {
			rxBytes, err = r.resolveV2(page)
		} else {
			rxBytes, err = r.resolveV3(page)
		}
		if err != nil {
			return c, err
		}
	}
	txBytes, err := r.resolveTX(page)
	if err != nil {
		return c, err
	}
	if rxBytes+txBytes > maxRingBytes {
		return c, cfgErr("TXFrameCount", "the rings need %d bytes, more than %d; use fewer or smaller frames or blocks",
			rxBytes+txBytes, maxRingBytes)
	}
	return r, nil
}

func (r *Config) resolveV2(page int) (int, error) {
	if r.BlockCount != 0 {
		return 0, cfgErr("BlockCount", "BlockCount %d sizes V3 rings; size a V2 ring with FrameCount", r.BlockCount)
	}
	if r.BlockTimeout != 0 {
		return 0, cfgErr("BlockTimeout", "BlockTimeout %v applies to V3 rings only; clear it or use V3", r.BlockTimeout)
	}
	need := rxSlotNeed(V2, r.VnetHdr && !r.CopyLarge, r.MTU)
	if r.CopyLarge {
		need += rxMacOff(V2, r.VnetHdr) - rxMacOff(V2, false)
	}
	if r.FrameSize == 0 {
		r.FrameSize = alignUp(need, tpacket.Alignment)
		if r.VnetHdr && !r.CopyLarge {
			r.FrameSize = alignUp(need, page)
		}
	}
	if err := checkFrameSize("FrameSize", r.FrameSize, need, r.MTU, r.VnetHdr && !r.CopyLarge); err != nil {
		return 0, err
	}
	if r.BlockSize == 0 {
		r.BlockSize = pickBlockSize(r.FrameSize, page)
	}
	if err := checkBlockSize("BlockSize", r.BlockSize, r.FrameSize, page); err != nil {
		return 0, err
	}
	perBlock := r.BlockSize / r.FrameSize
	if r.FrameCount == 0 {
		r.FrameCount = max(1, defaultRXRing/r.BlockSize) * perBlock
	}
	r.FrameCount = alignUp(r.FrameCount, perBlock)
	return ringBytes("FrameCount", r.FrameCount, perBlock, r.BlockSize)
}

func (r *Config) resolveV3(page int) (int, error) {
	if r.CopyLarge {
		return 0, cfgErr("CopyLarge", "CopyLarge applies to V2 rings only; V3 blocks already hold frames of any size")
	}
	if r.FrameSize != 0 || r.FrameCount != 0 {
		return 0, cfgErr("FrameSize", "FrameSize and FrameCount size V2 rings; a V3 ring is BlockSize × BlockCount")
	}
	if r.BlockTimeout > 0 && (r.BlockTimeout+time.Millisecond-1)/time.Millisecond > math.MaxUint32 {
		return 0, cfgErr("BlockTimeout", "BlockTimeout %v does not fit the kernel's 32-bit milliseconds", r.BlockTimeout)
	}
	if r.BlockSize == 0 {
		r.BlockSize = defaultV3Blk
	}
	if r.BlockCount == 0 {
		r.BlockCount = defaultV3Blks
	}
	if r.BlockSize%page != 0 {
		return 0, cfgErr("BlockSize", "BlockSize %d is not a multiple of the page size %d; use %d",
			r.BlockSize, page, alignUp(r.BlockSize, page))
	}
	// A frame fits a block when the descriptor plus the frame, 8-byte aligned, stays below the
	// block's end (af_packet.c __packet_lookup_frame_in_block); larger frames are truncated.
	mac := rxMacOff(V3, r.VnetHdr)
	frame := r.MTU + ethHdrLen + vlanHdrLen
	if r.VnetHdr {
		frame = max(frame, maxGSOFrame)
	}
	if need := tpacket.BlockHdrLen + alignUp(mac+frame, tpacket.V3Alignment) + 1; r.BlockSize < need {
		what := fmt.Sprintf("MTU %d", r.MTU)
		if r.VnetHdr {
			what = "a 64 KiB GSO super-frame (VnetHdr)"
		}
		return 0, cfgErr("BlockSize", "BlockSize %d is too small for %s: a block needs %d bytes; use at least %d",
			r.BlockSize, what, need, alignUp(need, page))
	}
	return ringBytes("BlockCount", r.BlockCount, 1, r.BlockSize)
}

func (r *Config) resolveTX(page int) (int, error) {
	if r.TXFrameCount == 0 {
		if r.TXFrameSize != 0 || r.TXBlockSize != 0 {
			return 0, cfgErr("TXFrameCount", "TXFrameSize or TXBlockSize is set but TXFrameCount is 0, which means no TX ring; set TXFrameCount")
		}
		return 0, nil
	}
	off := txDataOff(r.Version)
	need := off + r.MTU + ethHdrLen + vlanHdrLen
	if r.VnetHdr {
		need += vnetHdrLen
	}
	if r.TXFrameSize == 0 {
		r.TXFrameSize = alignUp(need, tpacket.Alignment)
		if r.VnetHdr {
			r.TXFrameSize = alignUp(off+vnetHdrLen+maxGSOFrame, page)
		}
	}
	if r.TXFrameSize%tpacket.Alignment != 0 {
		return 0, cfgErr("TXFrameSize", "TXFrameSize %d is not a multiple of %d (TPACKET_ALIGNMENT); use %d",
			r.TXFrameSize, tpacket.Alignment, alignUp(r.TXFrameSize, tpacket.Alignment))
	}
	if r.TXFrameSize < need {
		what := "the frame with a VLAN tag"
		if r.VnetHdr {
			what = "the 10-byte vnet header and the frame with a VLAN tag"
		}
		return 0, cfgErr("TXFrameSize", "TXFrameSize %d is too small for MTU %d: a slot needs %d bytes (%d-byte header, then %s); use at least %d",
			r.TXFrameSize, r.MTU, need, off, what, alignUp(need, tpacket.Alignment))
	}
	if r.TXBlockSize == 0 {
		r.TXBlockSize = pickBlockSize(r.TXFrameSize, page)
	}
	if err := checkBlockSize("TXBlockSize", r.TXBlockSize, r.TXFrameSize, page); err != nil {
		return 0, err
	}
	perBlock := r.TXBlockSize / r.TXFrameSize
	r.TXFrameCount = alignUp(r.TXFrameCount, perBlock)
	return ringBytes("TXFrameCount", r.TXFrameCount, perBlock, r.TXBlockSize)
}

// TXSlotSize returns the smallest TX slot size (Config.TXFrameSize) that holds a frame of
// frameLen bytes on a ring of version v (zero means DefaultVersion): the slot's tpacket header
// (32 bytes on V2, 48 on V3), with vnet the 10-byte virtio_net_hdr, then the frame, rounded up
// to TPACKET_ALIGNMENT.
func TXSlotSize(v Version, vnet bool, frameLen int) int {
	if v == 0 {
		v = DefaultVersion
	}
	n := txDataOff(v) + frameLen
	if vnet {
		n += vnetHdrLen
	}
	return alignUp(n, tpacket.Alignment)
}

func checkFrameSize(name string, size, need, mtu int, vnet bool) error {
	if size%tpacket.Alignment != 0 {
		return cfgErr(name, "%s %d is not a multiple of %d (TPACKET_ALIGNMENT); use %d",
			name, size, tpacket.Alignment, alignUp(size, tpacket.Alignment))
	}
	if size < need {
		if vnet {
			return cfgErr(name, "%s %d is too small for VnetHdr: a slot must hold a 64 KiB GSO super-frame after its %d-byte header, %d bytes; use at least %d, or 0 for the default",
				name, size, need-maxGSOFrame, need, alignUp(need, tpacket.Alignment))
		}
		return cfgErr(name, "%s %d is too small for MTU %d: a slot needs %d bytes (%d-byte header, then the frame with a VLAN tag), or the kernel truncates frames; use at least %d, or 0 for the default",
			name, size, mtu, need, need-mtu-ethHdrLen-vlanHdrLen, alignUp(need, tpacket.Alignment))
	}
	return nil
}

func checkBlockSize(name string, block, frame, page int) error {
	if block%page != 0 {
		return cfgErr(name, "%s %d is not a multiple of the page size %d; use %d, or 0 for the default",
			name, block, page, alignUp(block, page))
	}
	if block < frame {
		return cfgErr(name, "%s %d cannot hold one %d-byte frame; use at least %d, or 0 for the default",
			name, block, frame, alignUp(frame, page))
	}
	if block > math.MaxInt32 {
		return cfgErr(name, "%s %d is larger than the kernel accepts (%d)", name, block, math.MaxInt32)
	}
	return nil
}

// ringBytes checks that a ring of count frames, perBlock to a block, fits the kernel's 32-bit
// fields, and returns its size.
func ringBytes(name string, count, perBlock, block int) (int, error) {
	blocks := count / perBlock
	if count > math.MaxUint32 || blocks > math.MaxUint32 || blocks > maxRingBytes/block {
		return 0, cfgErr(name, "%s %d makes a ring larger than the kernel accepts; use fewer", name, count)
	}
	return blocks * block, nil
}

// rxMacOff is tp_mac of an Ethernet frame in an RX slot or V3 frame: the tpacket header and
// sockaddr_ll, room for a 16-byte link-layer header (TPACKET_ALIGN(tp_hdrlen + 16)), then the
// vnet header, with the 14-byte Ethernet header ending where the network header starts
// (af_packet.c tpacket_rcv). That is 66 on V2 and 82 on V3, plus 10 with the vnet header.
func rxMacOff(v Version, vnet bool) int {
	hdr := tpacket.V2HdrLen
	if v == V3 {
		hdr = tpacket.V3HdrLen
	}
	net := alignUp(hdr+16, tpacket.Alignment)
	if vnet {
		net += vnetHdrLen
	}
	return net - ethHdrLen
}

// rxSlotNeed is the smallest RX slot that holds the largest frame the kernel may deliver: an
// MTU-sized frame with a VLAN tag the device did not strip, or with VnetHdr a GSO super-frame.
func rxSlotNeed(v Version, vnet bool, mtu int) int {
	frame := mtu + ethHdrLen + vlanHdrLen
	if vnet {
		frame = max(frame, maxGSOFrame)
	}
	return rxMacOff(v, vnet) + frame
}

// txDataOff is where the data of a TX slot starts: tp_hdrlen - sizeof(struct sockaddr_ll).
func txDataOff(v Version) int {
	if v == V3 {
		return tpacket.V3SockaddrOff
	}
	return tpacket.V2SockaddrOff
}

// pickBlockSize returns the smallest power-of-two number of pages that holds frame with at
// most 1/16 of the block left over, up to maxAutoBlock; past that, the least wasteful. A
// power of two, because the kernel allocates each block as one 2^order run of pages.
func pickBlockSize(frame, page int) int {
	best, bestWaste := 0, 1.0
	for b := page; b <= max(maxAutoBlock, alignUp(frame, page)*2); b *= 2 {
		if b < frame {
			continue
		}
		waste := float64(b%frame) / float64(b)
		if waste*16 <= 1 {
			return b
		}
		if best == 0 || waste < bestWaste {
			best, bestWaste = b, waste
		}
	}
	return best
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// ConfigError is the error Resolve and New return for a Config that cannot work (or, from New,
// that does not match the socket): Field names the Config field to change, and the message says
// to what.
type ConfigError struct {
	Field string // the Config field to change, such as "FrameSize"
	Msg   string // what is wrong and the value to use, without the "ring: " prefix
}

func (e *ConfigError) Error() string { return "ring: " + e.Msg }

func cfgErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}
