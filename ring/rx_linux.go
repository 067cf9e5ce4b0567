//go:build linux

package ring

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/afbridge/afbridge/internal/tpacket"
	"golang.org/x/sys/unix"
)

// RX is the receive ring. Its methods are for one goroutine at a time.
type RX struct {
	m      *Map
	mem    []byte
	rc     syscall.RawConn
	v3     bool
	vnet   int
	waitFn func(uintptr) bool
	// waitErr is what pollWait failed with, for Wait to return.
	waitErr error

	// holding says frames handed out by Next are not released yet; it keeps the mapping alive.
	holding bool

	// V2: slots[head] is the next frame to hand out; held frames from slots[rel] on are handed
	// out and not released.
	slots           []int
	frameSize       int
	head, rel, held int

	// V3: blk is the current block, of which pkt of npkts frames are handed out and the next
	// is at off; done blocks from relBlk on are handed out entirely and not released.
	blockSize, blocks int
	blk, done, relBlk int
	pkt, npkts, off   int
	blkStatus         Status
}

// Next fills f with the next received frame and reports whether there was one; it never
// blocks. The frame stays valid, in place in the ring, until Release. On V2 it returns frames as
// soon as the kernel has written them; on V3, a block at a time once the kernel hands the
// block over.
func (r *RX) Next(f *Frame) bool {
	if !r.holding {
		if !r.m.enter() {
			return false
		}
	} else if r.m.closed.Load() {
		return false
	}
	var ok bool
	if r.v3 {
		ok = r.nextV3(f)
	} else {
		ok = r.nextV2(f)
	}
	if !r.holding {
		if ok {
			r.holding = true
			r.m.hold()
		} else {
			r.m.exit()
		}
	}
	return ok
}

func (r *RX) nextV2(f *Frame) bool {
	if r.held == len(r.slots) {
		return false // every slot is handed out: the one at head is the oldest, not a new one
	}
	off := r.slots[r.head]
	slot := r.mem[off : off+r.frameSize : off+r.frameSize]
	st := loadStatus(slot)
	if st&unix.TP_STATUS_USER == 0 {
		return false
	}
	decodeV2(slot, st, r.vnet, f)
	r.readAhead(slot)
	if r.head++; r.head == len(r.slots) {
		r.head = 0
	}
	r.held++
	return true
}

// prefetchAhead is how many slots ahead of the frame Next returns the next frames' cache lines
// are requested: far enough that they arrive while this frame is processed.
const prefetchAhead = 4

// readAhead requests the header line and the first two data lines of the slot prefetchAhead
// after the one just taken, at the data offset this frame had (the kernel puts every frame's
// data at the same offset unless the socket's settings change). Frames arrive written by the
// CPU that received them, usually another one; without this, the first read of each frame is
// a cross-core miss the bridge waits for, about a tenth of its CPU at 64-byte frames. A slot the
// kernel has not written yet is requested for nothing, and harmlessly.
func (r *RX) readAhead(cur []byte) {
	mac := uintptr((*unix.Tpacket2Hdr)(unsafe.Pointer(&cur[0])).Mac)
	if mac+128 > uintptr(r.frameSize) {
		mac = 0
	}
	a := r.head + prefetchAhead
	for a >= len(r.slots) { // a ring may have fewer slots than prefetchAhead
		a -= len(r.slots)
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(r.mem))) + uintptr(r.slots[a])
	prefetch(p)
	prefetch(p + mac)
	prefetch(p + mac + 64)
}

func (r *RX) nextV3(f *Frame) bool {
	for range 2*r.blocks + 2 {
		if r.pkt < r.npkts {
			next, ok := decodeV3(r.block(r.blk), r.off, r.blkStatus, r.vnet, f)
			r.pkt++
			r.off += next
			if !ok || next == 0 {
				r.pkt = r.npkts // the last frame, or a malformed block: nothing more to read in it
			}
			if r.pkt == r.npkts {
				r.retire()
			}
			if ok {
				return true
			}
			continue
		}
		if !r.open() {
			return false
		}
	}
	return false
}

// open starts reading the current block if the kernel has handed it over.
func (r *RX) open() bool {
	if r.done == r.blocks {
		return false // every block is handed out and awaits Release
	}
	b := r.block(r.blk)
	st := loadStatus(b[tpacket.BlockStatusOff:])
	if st&unix.TP_STATUS_USER == 0 {
		return false
	}
	h := (*unix.TpacketHdrV1)(unsafe.Pointer(&b[tpacket.BlockStatusOff]))
	r.pkt, r.npkts, r.off = 0, int(h.Num_pkts), int(h.Offset_to_first_pkt)
	r.blkStatus = Status(st) & (StatusLosing | StatusBlockTimeout)
	if r.npkts == 0 {
		r.retire() // the kernel does not close empty blocks, but an empty one just goes back
	}
	return true
}

// retire marks the current block as handed out entirely and moves to the next.
func (r *RX) retire() {
	r.done++
	r.pkt, r.npkts = 0, 0
	if r.blk++; r.blk == r.blocks {
		r.blk = 0
	}
}

func (r *RX) block(i int) []byte {
	off := i * r.blockSize
	return r.mem[off : off+r.blockSize : off+r.blockSize]
}

// Release hands back to the kernel every frame Next has returned: on V2 their slots, on V3
// every block whose frames have all been handed out (a block partly handed out stays until
// its last frame is, and is released by the Release after that). Frames returned so far must
// not be used afterwards.
func (r *RX) Release() error {
	if !r.holding {
		if r.held == 0 && r.done == 0 {
			if r.m.closed.Load() {
				return errClosed
			}
			return nil
		}
		if !r.m.enter() {
			return errClosed
		}
		r.release()
		r.m.exit()
		return nil
	}
	r.release()
	r.holding = false
	closed := r.m.closed.Load()
	r.m.unhold() // may unmap: the mapping is not touched after this
	if closed {
		return errClosed
	}
	return nil
}

func (r *RX) release() {
	if r.v3 {
		for ; r.done > 0; r.done-- {
			storeStatus(r.block(r.relBlk)[tpacket.BlockStatusOff:], unix.TP_STATUS_KERNEL)
			if r.relBlk++; r.relBlk == r.blocks {
				r.relBlk = 0
			}
		}
		return
	}
	for ; r.held > 0; r.held-- {
		storeStatus(r.mem[r.slots[r.rel]:], unix.TP_STATUS_KERNEL)
		if r.rel++; r.rel == len(r.slots) {
			r.rel = 0
		}
	}
}

// Wait blocks until Next has a frame, the socket's read deadline passes
// (os.ErrDeadlineExceeded itself, unwrapped) or the Map is closed (an error matching
// os.ErrClosed). It waits in the runtime's network poller, holding no OS thread. On a socket
// outside the poller (afpacket.Config.NoPoller, where SetReadDeadline returns
// os.ErrNoDeadline) it sleeps in poll(2) instead, holding a thread, with no deadline; Close
// wakes it all the same. Release frames first: when Next has handed out every slot, no frame
// can arrive and Wait returns [ErrAllHeld] at once.
func (r *RX) Wait() error {
	if !r.m.enter() {
		return errClosed
	}
	var err error
	if !r.ready() {
		if r.full() {
			err = ErrAllHeld
		} else {
			err = r.rc.Read(r.waitFn)
			if err == nil && r.waitErr != nil {
				err, r.waitErr = r.waitErr, nil
			}
		}
	}
	closed := r.m.closed.Load()
	r.m.exit()
	switch {
	case closed:
		return errClosed
	case err == nil, err == ErrAllHeld:
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return os.ErrDeadlineExceeded
	}
	return fmt.Errorf("ring: wait: %w", err)
}

// pollWait is the wait of a socket outside the runtime poller: poll(2) on the socket and on the
// Map's wake-up eventfd, until a frame is ready or the Map is closed.
func (r *RX) pollWait(fd uintptr) bool {
	wfd, err := r.m.waitFD()
	if err != nil {
		r.waitErr = err
		return true
	}
	// Close sets closed before it wakes: either the loop sees closed, or poll sees the wake-up.
	pfd := [2]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wfd), Events: unix.POLLIN}}
	for !r.m.closed.Load() && !r.ready() {
		if _, err := unix.Poll(pfd[:], -1); err != nil && err != unix.EINTR {
			r.waitErr = os.NewSyscallError("poll", err)
			return true
		}
	}
	return true
}

// ready reports whether Next would return a frame.
func (r *RX) ready() bool {
	if r.v3 {
		if r.pkt < r.npkts {
			return true
		}
		if r.done == r.blocks {
			return false
		}
		return loadStatus(r.block(r.blk)[tpacket.BlockStatusOff:])&unix.TP_STATUS_USER != 0
	}
	if r.held == len(r.slots) {
		return false
	}
	return loadStatus(r.mem[r.slots[r.head]:])&unix.TP_STATUS_USER != 0
}

func (r *RX) full() bool {
	if r.v3 {
		return r.done == r.blocks
	}
	return r.held == len(r.slots)
}

// decodeV2 fills f from a V2 slot whose status st the caller loaded.
func decodeV2(slot []byte, st uint32, vnet int, f *Frame) {
	h := (*unix.Tpacket2Hdr)(unsafe.Pointer(&slot[0]))
	sll := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&slot[tpacket.V2SockaddrOff]))
	fill(f, slot, tpacket.V2HdrLen, int(h.Mac), int(h.Snaplen), vnet)
	f.Len = int(h.Len)
	f.Status = Status(st &^ unix.TP_STATUS_USER)
	f.VLANTCI, f.VLANTPID = h.Vlan_tci, h.Vlan_tpid
	f.sec, f.nsec = h.Sec, h.Nsec
	f.PacketType, f.Ifindex = PacketType(sll.Pkttype), int(sll.Ifindex)
}

// decodeV3 fills f from the V3 frame at off in block and returns tp_next_offset; ok is false
// when off does not leave room for a frame header.
func decodeV3(block []byte, off int, blk Status, vnet int, f *Frame) (next int, ok bool) {
	if off < tpacket.BlockHdrLen || off > len(block)-tpacket.V3HdrLen || off%4 != 0 {
		return 0, false
	}
	fr := block[off:]
	h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&fr[0]))
	sll := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&fr[tpacket.V3SockaddrOff]))
	st := loadStatus(fr[unsafe.Offsetof(h.Status):])
	fill(f, fr, tpacket.V3HdrLen, int(h.Mac), int(h.Snaplen), vnet)
	f.Len = int(h.Len)
	f.Status = Status(st&^unix.TP_STATUS_USER) | blk
	f.VLANTCI, f.VLANTPID = uint16(h.Hv1.Vlan_tci), h.Hv1.Vlan_tpid
	f.sec, f.nsec = h.Sec, h.Nsec
	f.PacketType, f.Ifindex = PacketType(sll.Pkttype), int(sll.Ifindex)
	return int(h.Next_offset), true
}

// fill points f.Data, and f.Vnet when the socket has the vnet header, into frame, which holds
// headers up to hdrEnd and the captured bytes at mac; values the kernel never writes are
// clamped rather than trusted.
func fill(f *Frame, frame []byte, hdrEnd, mac, snap, vnet int) {
	if mac < hdrEnd+vnet || mac > len(frame) {
		mac, snap = len(frame), 0
	}
	snap = max(0, min(snap, len(frame)-mac))
	end := mac + snap
	f.Data = frame[mac:end:end]
	f.SnapLen = snap
	f.Vnet = nil
	if vnet > 0 && snap > 0 {
		f.Vnet = frame[mac-vnet : mac : end]
	}
}
