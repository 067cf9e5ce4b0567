//go:build linux

package ring

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/afbridge/afbridge/internal/tpacket"
	"golang.org/x/sys/unix"
)

// Map is the mapping of a socket's rings: the RX ring first, then the TX ring, in one mmap(2)
// as the kernel requires. Close unmaps it; the socket stays open and belongs to its owner.
type Map struct {
	// RX is the receive ring; nil with Config.NoRX.
	RX *RX
	// TX is the transmit ring; nil when Config.TXFrameCount is 0.
	TX *TX

	cfg  Config
	sock Socket
	mem  []byte

	// state counts who may touch mem: the Map itself until Close, and each caller inside a
	// ring method, in the low 32 bits; each ring holding frames or a reservation across calls,
	// in the high bits. Whoever brings it to zero unmaps. Entering adds to it and then checks
	// closed, Close sets closed and then waits for the callers: with sequentially consistent
	// atomics, either the caller sees closed or Close sees the caller (Dekker).
	state     atomic.Int64
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	unmapOnce sync.Once
	unmapped  chan struct{}
	unmapErr  error
}

const (
	callMask = 1<<32 - 1
	holdUnit = 1 << 32
)

// errClosed is what every method returns after Map.Close; it matches os.ErrClosed.
var errClosed = fmt.Errorf("ring: %w", os.ErrClosed)

// aLongTimeAgo is the read deadline Close sets to wake a waiter at once.
var aLongTimeAgo = time.Unix(1, 0)

// New creates the rings cfg describes on sock and maps them. The socket's owner must have set
// PACKET_VNET_HDR, if wanted, and should have bound the socket; New sets PACKET_VERSION, and
// PACKET_LOSS when there is a TX ring, which the kernel only accepts before the first ring exists.
//
// PACKET_LOSS makes tpacket_snd skip a TX frame it refuses (marking its slot free) instead of
// stopping there with the slot marked TP_STATUS_WRONG_FORMAT and every frame behind it stuck
// until the slot is rewritten; the TX ring counts such frames (TX.Rejected).
func New(sock Socket, cfg *Config) (*Map, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	c, err := c.Resolve()
	if err != nil {
		return nil, err
	}
	rc, err := sock.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("ring: %w", err)
	}
	m := &Map{cfg: c, sock: sock, unmapped: make(chan struct{})}
	m.state.Store(1)
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = m.setup(int(fd)) }); err != nil {
		return nil, fmt.Errorf("ring: %w", err)
	}
	if serr != nil {
		return nil, serr
	}

	var rxBytes int
	if !c.NoRX {
		r := &RX{m: m, rc: rc, v3: c.Version == V3}
		if c.VnetHdr {
			r.vnet = VnetHdrLen
		}
		if r.v3 {
			rxBytes = c.BlockSize * c.BlockCount
			r.blockSize, r.blocks = c.BlockSize, c.BlockCount
		} else {
			rxBytes = c.FrameCount / (c.BlockSize / c.FrameSize) * c.BlockSize
			r.frameSize = c.FrameSize
			r.slots = slotOffsets(c.FrameCount, c.FrameSize, c.BlockSize)
		}
		r.mem = m.mem[:rxBytes:rxBytes]
		r.waitFn = func(uintptr) bool { return r.m.closed.Load() || r.ready() }
		m.RX = r
	}
	if c.TXFrameCount > 0 {
		t := &TX{
			m: m, rc: rc, mem: m.mem[rxBytes:],
			v3: c.Version == V3, vnet: c.VnetHdr, mtu: c.MTU,
			frameSize: c.TXFrameSize, dataOff: txDataOff(c.Version), statusOff: txStatusOff(c.Version),
			slots:  slotOffsets(c.TXFrameCount, c.TXFrameSize, c.TXBlockSize),
			picked: make([]bool, c.TXFrameCount),
		}
		t.sendFn = func(fd uintptr) {
			n, _, e := unix.Syscall6(unix.SYS_SENDTO, fd, 0, 0, unix.MSG_DONTWAIT, 0, 0)
			t.sendN, t.sendErrno = int(n), e
		}
		m.TX = t
	}
	return m, nil
}

// setup runs the socket options, in the order the kernel needs, and the mmap. On failure it
// leaves the socket without rings.
func (m *Map) setup(fd int) (err error) {
	c := &m.cfg
	version := unix.TPACKET_V2
	if c.Version == V3 {
		version = unix.TPACKET_V3
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, version); err != nil {
		hint := ""
		if errors.Is(err, unix.EBUSY) {
			hint = " (the socket already has a ring: PACKET_VERSION and PACKET_VNET_HDR must be set before the ring exists)"
		}
		return sockoptErr("setsockopt PACKET_VERSION", err, hint)
	}
	vnet, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR)
	if err != nil {
		return sockoptErr("getsockopt PACKET_VNET_HDR", err, "")
	}
	if (vnet != 0) != c.VnetHdr {
		if c.VnetHdr {
			return errors.New("ring: Config.VnetHdr is set but the socket has no PACKET_VNET_HDR; its owner must set the option before creating the ring")
		}
		return errors.New("ring: the socket has PACKET_VNET_HDR but Config.VnetHdr is not set; set it so the ring expects the header")
	}
	if vnet != 0 {
		// Linux 6.7+ can carry the 12-byte virtio_net_hdr_mrg_rxbuf instead (PACKET_VNET_HDR_SZ).
		if sz, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR_SZ); err == nil && sz != VnetHdrLen {
			return fmt.Errorf("ring: the socket's vnet header is %d bytes (PACKET_VNET_HDR_SZ); the ring supports the %d-byte virtio_net_hdr of PACKET_VNET_HDR only", sz, VnetHdrLen)
		}
	}
	if c.TXFrameCount > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
			return sockoptErr("setsockopt PACKET_LOSS", err, " (it must be set before the ring exists)")
		}
	}

	var rxBytes, txBytes int
	var rxSet, txSet bool
	defer func() {
		if err != nil {
			if rxSet {
				teardown(fd, c.Version, unix.PACKET_RX_RING)
			}
			if txSet {
				teardown(fd, c.Version, unix.PACKET_TX_RING)
			}
		}
	}()
	if !c.NoRX {
		req := unix.TpacketReq3{Block_size: uint32(c.BlockSize)}
		if c.Version == V3 {
			// tp_frame_size only has to pass the kernel's checks on a V3 RX ring.
			frame := min(alignUp(rxSlotNeed(V3, false, c.MTU), tpacket.Alignment), c.BlockSize)
			req.Block_nr = uint32(c.BlockCount)
			req.Frame_size = uint32(frame)
			req.Frame_nr = uint32(c.BlockSize / frame * c.BlockCount)
			req.Retire_blk_tov = uint32((c.BlockTimeout + time.Millisecond - 1) / time.Millisecond)
		} else {
			req.Block_nr = uint32(c.FrameCount / (c.BlockSize / c.FrameSize))
			req.Frame_size = uint32(c.FrameSize)
			req.Frame_nr = uint32(c.FrameCount)
		}
		rxBytes = int(req.Block_nr) * c.BlockSize
		if err := setRing(fd, c.Version, unix.PACKET_RX_RING, &req); err != nil {
			return ringErr("PACKET_RX_RING", err, rxBytes, int(req.Block_nr), c.BlockSize)
		}
		rxSet = true
	}
	if c.TXFrameCount > 0 {
		perBlock := c.TXBlockSize / c.TXFrameSize
		req := unix.TpacketReq3{
			Block_size: uint32(c.TXBlockSize),
			Block_nr:   uint32(c.TXFrameCount / perBlock),
			Frame_size: uint32(c.TXFrameSize),
			Frame_nr:   uint32(c.TXFrameCount),
		}
		txBytes = int(req.Block_nr) * c.TXBlockSize
		if err := setRing(fd, c.Version, unix.PACKET_TX_RING, &req); err != nil {
			return ringErr("PACKET_TX_RING", err, txBytes, int(req.Block_nr), c.TXBlockSize)
		}
		txSet = true
	}
	mem, err := unix.Mmap(fd, 0, rxBytes+txBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("ring: %w (mapping %d bytes)", os.NewSyscallError("mmap", err), rxBytes+txBytes)
	}
	if c.Locked {
		if err := unix.Mlock(mem); err != nil {
			_ = unix.Munmap(mem)
			return fmt.Errorf("ring: %w (locking %d bytes; raise RLIMIT_MEMLOCK, ulimit -l, or clear Locked)",
				os.NewSyscallError("mlock", err), len(mem))
		}
	}
	m.mem = mem
	return nil
}

// setRing issues PACKET_RX_RING or PACKET_TX_RING with the request struct the version reads.
func setRing(fd int, v Version, opt int, req *unix.TpacketReq3) error {
	if v == V3 {
		return unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, opt, req)
	}
	return unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, opt, &unix.TpacketReq{
		Block_size: req.Block_size, Block_nr: req.Block_nr, Frame_size: req.Frame_size, Frame_nr: req.Frame_nr,
	})
}

// teardown frees a ring that was created but never mapped: a request for zero blocks.
func teardown(fd int, v Version, opt int) {
	_ = setRing(fd, v, opt, &unix.TpacketReq3{})
}

func sockoptErr(op string, err error, hint string) error {
	return fmt.Errorf("ring: %w%s", os.NewSyscallError(op, err), hint)
}

func ringErr(opt string, err error, bytes, blocks, block int) error {
	hint := fmt.Sprintf(" (a ring of %d bytes: %d blocks of %d)", bytes, blocks, block)
	switch {
	case errors.Is(err, unix.ENOMEM):
		hint = fmt.Sprintf(" (a ring of %d bytes: %d blocks of %d; use a smaller ring or smaller blocks)", bytes, blocks, block)
	case errors.Is(err, unix.EBUSY):
		hint = " (the socket already has this ring, or a mapping of it)"
	case errors.Is(err, unix.EINVAL):
		hint = fmt.Sprintf(" (the kernel refused %d blocks of %d bytes; see Config.Resolve)", blocks, block)
	}
	return sockoptErr("setsockopt "+opt, err, hint)
}

// slotOffsets lists where each of count frames of size frame starts in a ring of blocks of
// size block: frames never straddle blocks.
func slotOffsets(count, frame, block int) []int {
	perBlock := block / frame
	offs := make([]int, count)
	for i := range offs {
		offs[i] = i/perBlock*block + i%perBlock*frame
	}
	return offs
}

// Config returns the configuration in effect, with every default filled in.
func (m *Map) Config() Config { return m.cfg }

// Close marks the rings closed, wakes a goroutine blocked in RX.Wait (by setting the socket's
// read deadline in the past), waits for callers inside ring methods to leave and unmaps the
// rings. If a ring still holds frames from RX.Next or a reservation from TX.Reserve, the
// memory stays mapped until that ring's RX.Release or TX.Flush (or Reserve, Commit), so a
// slice the owner still reads never faults; Close does not wait for that. Close may be called
// from any goroutine, any number of times; every method afterwards returns an error matching
// os.ErrClosed, or false, or zero. The socket stays open: its owner closes it.
func (m *Map) Close() error {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		m.wake()
		m.exit() // the Map's own reference
		for i := 1; m.state.Load()&callMask != 0; i++ {
			if i%64 == 0 {
				m.wake() // in case the owner moved the deadline since
			}
			time.Sleep(100 * time.Microsecond)
		}
		if m.state.Load()>>32 == 0 {
			<-m.unmapped
			m.closeErr = m.unmapErr
		}
	})
	return m.closeErr
}

func (m *Map) wake() { _ = m.sock.SetReadDeadline(aLongTimeAgo) }

// enter registers a caller about to touch the mapping; false means the Map is closed.
func (m *Map) enter() bool {
	m.state.Add(1)
	if m.closed.Load() {
		m.exit()
		return false
	}
	return true
}

func (m *Map) exit() {
	if m.state.Add(-1) == 0 {
		m.unmap()
	}
}

// hold turns the caller's entry into a hold that lasts across calls.
func (m *Map) hold() { m.state.Add(holdUnit - 1) }

func (m *Map) unhold() {
	if m.state.Add(-holdUnit) == 0 {
		m.unmap()
	}
}

func (m *Map) unmap() {
	m.unmapOnce.Do(func() {
		if err := unix.Munmap(m.mem); err != nil {
			m.unmapErr = fmt.Errorf("ring: %w", os.NewSyscallError("munmap", err))
		}
		close(m.unmapped)
	})
}

// loadStatus is a load-acquire of the status word at the start of b: the kernel writes a
// frame, then its status (smp_wmb in __packet_set_status, prb_close_block), so once the status
// says the frame is ours, every byte of it written before is visible.
func loadStatus(b []byte) uint32 { return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[0]))) }

// storeStatus is a store-release of the status word at the start of b: everything written to
// the frame before (a TX frame and its tp_len), and every read of it (an RX frame handed back),
// happens before the kernel can see the new status and reuse the frame.
func storeStatus(b []byte, v uint32) { atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[0])), v) }

// RX is the receive ring. Its methods are for one goroutine at a time.
type RX struct {
	m      *Map
	mem    []byte
	rc     syscall.RawConn
	v3     bool
	vnet   int
	waitFn func(uintptr) bool

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
	if r.head++; r.head == len(r.slots) {
		r.head = 0
	}
	r.held++
	return true
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

// errAllHeld is returned by Wait when no frame can arrive before a Release.
var errAllHeld = errors.New("ring: every RX slot is handed out; call Release before Wait")

// Wait blocks until Next has a frame, the socket's read deadline passes
// (os.ErrDeadlineExceeded) or the Map is closed (an error matching os.ErrClosed). It waits in
// the runtime's network poller, holding no OS thread. Release frames first: a full ring gets no
// new ones.
func (r *RX) Wait() error {
	if !r.m.enter() {
		return errClosed
	}
	var err error
	if !r.ready() {
		if r.full() {
			err = errAllHeld
		} else {
			err = r.rc.Read(r.waitFn)
		}
	}
	closed := r.m.closed.Load()
	r.m.exit()
	switch {
	case closed:
		return errClosed
	case err == nil, err == errAllHeld:
		return err
	case errors.Is(err, os.ErrDeadlineExceeded):
		return os.ErrDeadlineExceeded
	}
	return fmt.Errorf("ring: wait: %w", err)
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

// TX is the transmit ring. Its methods are for one goroutine at a time. Once a socket has a TX
// ring, every send on it transmits from the ring, so nothing else may write to the socket.
type TX struct {
	m      *Map
	mem    []byte
	rc     syscall.RawConn
	slots  []int
	picked []bool // scratch for countRejected

	frameSize, dataOff, mtu int
	statusOff               int // where tp_status sits in a slot: 0 on V2, 20 on V3
	v3, vnet                bool

	// The slots from reclaim on, inuse of them, are committed and not yet seen free; of those,
	// pending from sent on are not yet taken by the kernel. head is the next slot to reserve.
	head, sent, pending, reclaim, inuse int
	reserved                            bool
	holding                             bool // a reservation is out since the last Flush

	rejected atomic.Uint64
	sends    uint64 // send(2) calls, for tests

	sendFn    func(uintptr)
	sendN     int
	sendErrno unix.Errno
}

// Reserve returns the data area of the next free slot, for the caller to build a frame in,
// and false when every slot is committed and not yet sent (Flush, then try again), or after
// Close. With Config.VnetHdr the frame must be preceded by its 10-byte virtio_net_hdr (see
// VnetHdr.Put). The slice stays valid until Commit, the next Reserve or Flush; a reservation
// not committed is simply reused by the next Reserve, which is how a dropped frame costs
// nothing.
func (t *TX) Reserve() ([]byte, bool) {
	if !t.holding {
		if !t.m.enter() {
			return nil, false
		}
	} else if t.m.closed.Load() {
		t.unhold()
		return nil, false
	}
	if t.inuse == len(t.slots) {
		t.reclaimFree()
		if t.inuse == len(t.slots) {
			if !t.holding {
				t.m.exit()
			}
			return nil, false
		}
	}
	if !t.holding {
		t.holding = true
		t.m.hold()
	}
	t.reserved = true
	start, end := t.slots[t.head]+t.dataOff, t.slots[t.head]+t.frameSize
	return t.mem[start:end:end], true
}

// Commit queues the first n bytes of the reserved slot for the next Flush: it sets tp_len
// and then, with a store-release, the slot's status to TP_STATUS_SEND_REQUEST. It refuses a
// frame the kernel would refuse or the device drop (ErrOversize, ErrMalformed), leaving it
// reserved, and returns ErrNotReserved without a reservation.
func (t *TX) Commit(n int) error {
	if !t.reserved {
		if t.m.closed.Load() {
			return errClosed
		}
		return ErrNotReserved
	}
	if t.m.closed.Load() {
		t.unhold()
		return errClosed
	}
	if n > t.frameSize-t.dataOff {
		return ErrOversize
	}
	if n < 0 {
		return ErrMalformed
	}
	slot := t.slot(t.head)
	if err := checkTX(slot[t.dataOff:t.dataOff+n], t.vnet, t.mtu); err != nil {
		return err
	}
	t.setLen(slot, n)
	storeStatus(slot[t.statusOff:], unix.TP_STATUS_SEND_REQUEST)
	t.reserved = false
	if t.head++; t.head == len(t.slots) {
		t.head = 0
	}
	t.inuse++
	t.pending++
	return nil
}

// Flush sends every committed frame with one send(2) (MSG_DONTWAIT, no buffer: the kernel
// takes the frames from the ring) and ends any reservation. When the kernel could not take
// them all, it returns an *os.SyscallError for send wrapping EAGAIN (socket send buffer full)
// or ENOBUFS (the device or qdisc dropped a frame, which the kernel put back to retry); the
// frames stay committed, and the caller may Flush again, a bounded number of times, then
// Discard them. Frames the kernel refused are skipped (PACKET_LOSS) and counted by Rejected.
func (t *TX) Flush() error {
	entered := !t.holding
	if entered {
		if !t.m.enter() {
			return errClosed
		}
	} else if t.m.closed.Load() {
		t.unhold()
		return errClosed
	}
	t.reserved = false
	var err error
	if t.pending > 0 {
		err = t.send(true)
	}
	if entered {
		t.m.exit()
	} else {
		t.holding = false
		t.m.unhold()
	}
	return err
}

// Discard gives up on the n oldest committed frames the kernel has not taken (all of them
// when n <= 0 or n >= Pending), such as a frame the device keeps dropping, which Flush would
// otherwise retry forever, and sends the rest as Flush does; it returns how many it dropped.
// It rewrites their tp_len to 0, which the kernel refuses, and with PACKET_LOSS skips.
func (t *TX) Discard(n int) (int, error) {
	entered := !t.holding
	if entered {
		if !t.m.enter() {
			return 0, errClosed
		}
	} else if t.m.closed.Load() {
		t.unhold()
		return 0, errClosed
	}
	t.reserved = false
	if n <= 0 || n > t.pending {
		n = t.pending
	}
	var err error
	if n > 0 {
		for i, s := 0, t.sent; i < n; i++ {
			t.setLen(t.slot(s), 0)
			if s++; s == len(t.slots) {
				s = 0
			}
		}
		err = t.send(true)
	}
	if entered {
		t.m.exit()
	} else {
		t.holding = false
		t.m.unhold()
	}
	return n, err
}

var (
	errSendAgain  = fmt.Errorf("ring: flush: %w", os.NewSyscallError("send", unix.EAGAIN))
	errSendNoBufs = fmt.Errorf("ring: flush: %w", os.NewSyscallError("send", unix.ENOBUFS))
)

// send issues the one send(2) and accounts for the frames the kernel took.
func (t *TX) send(count bool) error {
	var err error
	for range 3 {
		if err = t.rc.Control(t.sendFn); err != nil || t.sendErrno != unix.EINTR {
			break
		}
	}
	t.sends++
	if err != nil {
		return fmt.Errorf("ring: flush: %w", err)
	}
	t.account(count && t.sendErrno == 0, t.sendN)
	switch t.sendErrno {
	case 0:
		if t.pending > 0 {
			return errSendAgain // the kernel stopped early: the socket's send buffer is full
		}
		return nil
	case unix.EAGAIN:
		return errSendAgain
	case unix.ENOBUFS:
		return errSendNoBufs
	}
	return fmt.Errorf("ring: flush: %w", os.NewSyscallError("send", t.sendErrno))
}

// account moves sent past the frames the kernel took, in ring order. With PACKET_LOSS the
// kernel frees the slot of a frame it refuses just as it does for a sent one, so when sent is
// known (count), the bytes it reports short of those taken are the refused frames'.
func (t *TX) account(count bool, sent int) {
	first, taken, bytes := t.sent, 0, 0
	for t.pending > 0 {
		slot := t.slot(t.sent)
		st := loadStatus(slot[t.statusOff:])
		if st&statusKind == unix.TP_STATUS_SEND_REQUEST {
			break
		}
		if st&statusKind != unix.TP_STATUS_WRONG_FORMAT {
			bytes += t.wireLen(slot)
		}
		taken++
		t.pending--
		if t.sent++; t.sent == len(t.slots) {
			t.sent = 0
		}
	}
	if count && bytes > sent {
		t.rejected.Add(t.countRejected(first, taken, bytes-sent))
	}
}

// statusKind masks the state bits of a TX status word, leaving out timestamp flags.
const statusKind = unix.TP_STATUS_SEND_REQUEST | unix.TP_STATUS_SENDING | unix.TP_STATUS_WRONG_FORMAT

// countRejected says how many of the taken frames starting at first make up the deficit
// bytes the kernel did not send: the fewest frames whose lengths add up to it, picked
// largest first (a frame too large is the likeliest refusal). It is exact when one frame, or
// every frame, was refused; otherwise it is the best the kernel's byte count allows, and at
// least one.
func (t *TX) countRejected(first, taken, deficit int) uint64 {
	var n uint64
	for deficit > 0 {
		best, bestLen := -1, 0
		for i, s := 0, first; i < taken; i++ {
			if l := t.wireLen(t.slot(s)); !t.picked[s] && l <= deficit && l > bestLen {
				best, bestLen = s, l
			}
			if s++; s == len(t.slots) {
				s = 0
			}
		}
		if best < 0 {
			break
		}
		t.picked[best] = true
		deficit -= bestLen
		n++
	}
	for i, s := 0, first; i < taken; i++ {
		t.picked[s] = false
		if s++; s == len(t.slots) {
			s = 0
		}
	}
	return max(n, 1)
}

// reclaimFree moves reclaim past the slots the kernel is done with. A slot marked
// TP_STATUS_WRONG_FORMAT (a frame refused without PACKET_LOSS) is counted and freed.
func (t *TX) reclaimFree() {
	for t.inuse > 0 {
		st := t.slot(t.reclaim)[t.statusOff:]
		switch loadStatus(st) & statusKind {
		case unix.TP_STATUS_AVAILABLE:
		case unix.TP_STATUS_WRONG_FORMAT:
			t.rejected.Add(1)
			storeStatus(st, unix.TP_STATUS_AVAILABLE)
		default:
			return // committed, or being sent
		}
		t.inuse--
		if t.reclaim++; t.reclaim == len(t.slots) {
			t.reclaim = 0
		}
	}
}

func (t *TX) unhold() {
	t.reserved = false
	if t.holding {
		t.holding = false
		t.m.unhold()
	}
}

func (t *TX) slot(i int) []byte {
	off := t.slots[i]
	return t.mem[off : off+t.frameSize : off+t.frameSize]
}

// txStatusOff is the offset of tp_status in a tpacket2_hdr or tpacket3_hdr.
func txStatusOff(v Version) int {
	if v == V3 {
		return int(unsafe.Offsetof(unix.Tpacket3Hdr{}.Status))
	}
	return int(unsafe.Offsetof(unix.Tpacket2Hdr{}.Status))
}

// setLen writes tp_len, and on V3 tp_next_offset, which must be 0 on a TX ring.
func (t *TX) setLen(slot []byte, n int) {
	if t.v3 {
		h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&slot[0]))
		h.Next_offset = 0
		h.Len = uint32(n)
		return
	}
	(*unix.Tpacket2Hdr)(unsafe.Pointer(&slot[0])).Len = uint32(n)
}

// wireLen is the frame length the kernel counts as sent for a slot: tp_len without the vnet
// header.
func (t *TX) wireLen(slot []byte) int {
	var n int
	if t.v3 {
		n = int((*unix.Tpacket3Hdr)(unsafe.Pointer(&slot[0])).Len)
	} else {
		n = int((*unix.Tpacket2Hdr)(unsafe.Pointer(&slot[0])).Len)
	}
	if t.vnet {
		n -= VnetHdrLen
	}
	return max(n, 0)
}

// Pending returns the number of committed frames the kernel has not taken yet.
func (t *TX) Pending() int { return t.pending }

// Free returns the number of slots Reserve can hand out before the ring is full; 0 after
// Close.
func (t *TX) Free() int {
	if !t.holding {
		if !t.m.enter() {
			return 0
		}
		defer t.m.exit()
	} else if t.m.closed.Load() {
		return 0
	}
	t.reclaimFree()
	return len(t.slots) - t.inuse
}

// Rejected returns the number of committed frames the kernel refused to send (EMSGSIZE,
// EINVAL); with PACKET_LOSS they are skipped without holding up the frames behind them. Any
// goroutine may call it.
func (t *TX) Rejected() uint64 { return t.rejected.Load() }

// MaxLen returns the most bytes a slot carries: the length of the slices Reserve returns,
// the vnet header included when there is one.
func (t *TX) MaxLen() int { return t.frameSize - t.dataOff }

// checkTX reports why the kernel would refuse to send p, the bytes of a TX slot (vnet header
// included when vnet is set), or let the device drop it, mirroring net/packet/af_packet.c
// tpacket_snd and virtio_net_hdr_to_skb. Refusing such frames at Commit keeps them off the
// ring: a frame the device drops after the skb is freed is put back by the kernel and retried
// by every send, stalling the frames behind it.
func checkTX(p []byte, vnet bool, mtu int) error {
	frame := p
	if vnet {
		if len(p) < VnetHdrLen {
			return ErrMalformed
		}
		frame = p[VnetHdrLen:]
	}
	n := len(frame)
	if n < ethHdrLen {
		return ErrMalformed
	}
	if !vnet {
		// af_packet.c allows MTU+14, and 4 bytes more for an 802.1Q frame only.
		if n > mtu+ethHdrLen && (n > mtu+ethHdrLen+vlanHdrLen || frame[12] != 0x81 || frame[13] != 0x00) {
			return ErrOversize
		}
		return nil
	}
	h := decodeVnet(p)
	if h.Flags&VnetNeedsCsum != 0 && int(h.CsumStart)+int(h.CsumOffset)+2 > n {
		return ErrMalformed
	}
	if int(h.HdrLen) > n {
		return ErrMalformed
	}
	switch h.GSOType &^ VnetGSOECN {
	case VnetGSONone:
		if h.GSOType != VnetGSONone {
			return ErrMalformed // ECN without a GSO type
		}
		// The device drops non-GSO frames beyond MTU + 14 + VLAN_HLEN (is_skb_forwardable).
		if n > mtu+ethHdrLen+vlanHdrLen {
			return ErrOversize
		}
	case VnetGSOTCPv4, VnetGSOTCPv6, VnetGSOUDP, VnetGSOUDPL4:
		if h.GSOSize == 0 {
			return ErrMalformed
		}
	default:
		return ErrMalformed
	}
	return nil
}
