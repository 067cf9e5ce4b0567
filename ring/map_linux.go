//go:build linux

package ring

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
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

	// wakeFD is an eventfd that Close makes readable, for a socket outside the runtime poller,
	// where RX.Wait sleeps in poll(2) and a read deadline cannot wake it. It is made at the first
	// such Wait (-1 until then) and closed with the mapping; wakeMu guards it.
	wakeMu sync.Mutex
	wakeFD int
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
// It clears the socket's read deadline, which is how it learns whether the socket is in the
// runtime poller (see RX.Wait).
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
	m := &Map{cfg: c, sock: sock, unmapped: make(chan struct{}), wakeFD: -1}
	m.state.Store(1)
	// A socket outside the runtime poller (afpacket.Config.NoPoller) has no deadlines: RX.Wait
	// then sleeps in poll(2), and Close wakes it through an eventfd.
	pollable := !errors.Is(sock.SetReadDeadline(time.Time{}), os.ErrNoDeadline)
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
		if !pollable {
			r.waitFn = r.pollWait
		}
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
			// A raw syscall: the send never blocks (MSG_DONTWAIT), but it runs every frame of the
			// batch through the egress device, and with veth the receiver's stack too, so it
			// often lasts longer than the runtime's 20 us sysmon tick. Through syscall.Syscall
			// the runtime would then take the goroutine's P and hand it to another thread, which,
			// with no other goroutine to run, spins looking for work on the CPU the send needs:
			// 20-30% of a pinned bridge's CPU in the bench harness.
			n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, fd, 0, 0, unix.MSG_DONTWAIT, 0, 0)
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
			return cfgErr("VnetHdr", "Config.VnetHdr is set but the socket has no PACKET_VNET_HDR; its owner must set the option before creating the ring")
		}
		return cfgErr("VnetHdr", "the socket has PACKET_VNET_HDR but Config.VnetHdr is not set; set it so the ring expects the header")
	}
	if vnet != 0 {
		// Linux 6.7+ can carry the 12-byte virtio_net_hdr_mrg_rxbuf instead (PACKET_VNET_HDR_SZ).
		if sz, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR_SZ); err == nil && sz != VnetHdrLen {
			return fmt.Errorf("ring: the socket's vnet header is %d bytes (PACKET_VNET_HDR_SZ); the ring supports the %d-byte virtio_net_hdr of PACKET_VNET_HDR only", sz, VnetHdrLen)
		}
	}
	if c.CopyLarge {
		// Any non-zero threshold: tpacket_rcv then queues a whole copy of each frame that does
		// not fit its slot, as long as the socket's receive buffer has room.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_COPY_THRESH, 1); err != nil {
			return sockoptErr("setsockopt PACKET_COPY_THRESH", err, "")
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
// os.ErrClosed, or false, or zero (TX.Pending and TX.Rejected keep their counts). The socket
// stays open, its read deadline in the past: its owner closes it.
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

func (m *Map) wake() {
	_ = m.sock.SetReadDeadline(aLongTimeAgo)
	m.wakeMu.Lock()
	if m.wakeFD >= 0 {
		one := [8]byte{1}
		_, _ = unix.Write(m.wakeFD, one[:])
	}
	m.wakeMu.Unlock()
}

// waitFD returns the wake-up eventfd, made on first use; the caller is inside a ring method, so
// it stays open until the caller leaves.
func (m *Map) waitFD() (int, error) {
	m.wakeMu.Lock()
	defer m.wakeMu.Unlock()
	if m.wakeFD < 0 {
		fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			return -1, os.NewSyscallError("eventfd", err)
		}
		m.wakeFD = fd
	}
	return m.wakeFD, nil
}

func (m *Map) closeWake() {
	m.wakeMu.Lock()
	if m.wakeFD >= 0 {
		unix.Close(m.wakeFD)
		m.wakeFD = -1
	}
	m.wakeMu.Unlock()
}

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
		m.closeWake() // no caller is inside a method any more, so none polls it
		close(m.unmapped)
	})
}

// loadStatus is a load-acquire of the status word at the start of b: the kernel writes a
// frame, then its status (smp_wmb in __packet_set_status, prb_close_block), so once the status
// says the frame is ours, every byte of it written before is visible.
func loadStatus(b []byte) uint32 { return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[0]))) }

// storeStatus (status_*.go) is a store-release of the status word at the start of b:
// everything written to the frame before (a TX frame and its tp_len), and every read of it (an
// RX frame handed back), happens before the kernel can see the new status and reuse the frame.
