package peer

import "github.com/afbridge/afbridge/ring"

// defaultTXFrames is the number of TX slots per socket when the side's ring options name none:
// several batches, so a flush in flight never stalls the next batch.
const defaultTXFrames = 512

// copyBuffer is the receive buffer of sockets whose rings copy large frames to the socket: room
// for dozens of 64 KiB GSO super-frames waiting for the worker.
const copyBuffer = 8 << 20

// ringConfig completes a side's ring options into the ring configuration of each of its
// sockets. By default the RX ring is TPACKET_V2 with MTU-sized slots and CopyLarge, and the TX
// ring has MTU-sized slots: frames larger than a slot (GSO super-frames, reassembled datagrams)
// take the socket path, one syscall each, and every small frame gets a slot without the 64 KiB
// slots that would otherwise be needed for them.
func ringConfig(o RingOptions, mtu int, vnet bool) ring.Config {
	rc := ring.Config{
		Version:      o.Version,
		MTU:          mtu,
		VnetHdr:      vnet,
		Locked:       o.Locked,
		FrameSize:    o.FrameSize,
		FrameCount:   o.FrameCount,
		BlockSize:    o.BlockSize,
		BlockCount:   o.BlockCount,
		BlockTimeout: o.BlockTimeout,
		TXFrameCount: o.TXFrameCount,
		TXFrameSize:  o.TXFrameSize,
		TXBlockSize:  o.TXBlockSize,
	}
	if rc.Version != ring.V3 && rc.FrameSize == 0 {
		rc.CopyLarge = true
	}
	if rc.TXFrameCount == 0 {
		rc.TXFrameCount = defaultTXFrames
	}
	if rc.TXFrameSize == 0 {
		// Room for the vnet header even without it: one slot size whatever the option.
		rc.TXFrameSize = ring.TXSlotSize(rc.Version, true, mtu+ethHdrLen+2*vlanLen)
	}
	return rc
}
