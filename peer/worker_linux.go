//go:build linux

package peer

import (
	"errors"
	"fmt"
	"github.com/afbridge/afbridge/bypass"
	"github.com/afbridge/afbridge/flow"
	"math"
	"math/rand/v2"
	"runtime"
	"time"
	"unsafe"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/ring"
	"github.com/afbridge/afbridge/verdict"
	"golang.org/x/sys/unix"
)

// scratchLen holds the largest frame the kernel hands over: a 64 KiB datagram (reassembled or
// GSO) with its Ethernet header, two VLAN tags and a vnet header.
const scratchLen = math.MaxUint16 + 14 + 8 + vnetHdrLen

// pollIdle bounds a worker's sleep, so a lost wake-up can never stall it for long.
const pollIdle = 200 // ms

// yieldFrames is how many frames (or idle rounds) a busy or spinning worker goes through
// between yields to workers that share its P.
const yieldFrames = 1024

// pollRetry is the sleep while a TX ring holds frames a flush could not hand over: the kernel
// raises no event when its socket buffer drains, so the worker looks again soon.
const pollRetry = 2 // ms

// stuckLimit bounds how long committed frames may wait while flushes make no progress; then
// they are given up, so that nothing leaves long after it was forwarded.
const stuckLimit = time.Second

// flushRetries is how many more times a flush is tried when the kernel takes no frame.
const flushRetries = 3

// drainLimit bounds how long a stopping worker waits for the kernel to take its committed frames.
const drainLimit = 100 * time.Millisecond

// worker owns socket i of both sides and moves frames both ways. Nothing in it is shared with
// other goroutines except the published counters, so the hot path takes no lock.
type worker struct {
	b     *Bridge
	idx   int
	batch int
	h     verdict.Handler
	fail  verdict.Verdict // verdict applied when h panics
	// ticker is h as a verdict.Ticker, or nil; nextTick is when it is due.
	ticker   verdict.Ticker
	tick     time.Duration
	nextTick time.Time
	workers  int // the bridge's worker count
	dirs     [2]direction
	pfd      [3]unix.PollFd

	frame   ring.Frame
	pkt     verdict.Packet
	scratch []byte // a frame too large for a TX slot is built here
	big     []byte // a frame too large for an RX slot is read here from the socket
	frag    fragmenter

	// fp is the flow parse of a frame the verdict bypassed.
	fp flow.Packet
	// added remembers the flows this worker handed to the fast path lately (see bypassFlow).
	added addedCache

	// kbase holds, per side, the kernel counters of sockets closed by a re-bind; guarded by
	// Bridge.sockMu.
	kbase [2]afpacket.Stats
}

type direction struct {
	rx      *ring.RX
	tx      *ring.TX
	rxFD    int // the ingress socket, for frames that did not fit their RX slot
	txFD    int // the egress socket, for frames too large for a TX slot
	in, out verdict.Interface
	dir     verdict.Direction
	mode    CopyMode
	eg      egress
	// defrag is the ingress group's fanout defrag flag and inMTU the ingress port's MTU: with
	// both, a datagram is known to be reassembled (see reassembled).
	defrag   bool
	inMTU    int
	c        Counters
	pub      published
	txFull   bool
	rejected uint64
	// inBit is the ingress port's bit in Bridge.down; gate is the bits that stop this
	// direction (the egress port's with FailOpen, both with FailClosed).
	inBit, gate uint32
	closed      bool // OnLinkDown is FailClosed: gated frames count as dropped
	stuckSince  time.Time
	// bf is the ingress socket's bypass filter (nil without a fast path), conn that socket, and
	// taken the frames taken from its RX ring since it was opened, for bf.Settle.
	bf    *bypass.Filter
	conn  *afpacket.Conn
	taken uint64
}

func newWorker(b *Bridge, i int, h verdict.Handler) *worker {
	w := &worker{b: b, idx: i, batch: b.cfg.Batch, h: h, tick: b.cfg.TickInterval, workers: b.cfg.Workers(),
		scratch: make([]byte, scratchLen), big: make([]byte, scratchLen)}
	w.ticker, _ = h.(verdict.Ticker)
	w.added.seed = rand.Uint64()
	if b.cfg.OnPanic == FailClosed {
		w.fail = verdict.Drop
	}
	for d := range w.dirs {
		dir := &w.dirs[d]
		dir.dir = verdict.Direction(d)
		dir.mode = b.sides[d].cfg.CopyMode
		dir.inBit = 1 << d
		dir.gate = 1 << (1 - d)
		if b.cfg.OnLinkDown == FailClosed {
			dir.gate, dir.closed = 3, true
		}
	}
	w.pfd[2] = unix.PollFd{Fd: int32(b.wakeFD), Events: unix.POLLIN}
	return w
}

// attach points the worker at socket i of both sides, as opened by Start or a re-bind. The
// worker is not running.
func (w *worker) attach() {
	b, i := w.b, w.idx
	for d := range w.dirs {
		in, out := &b.sides[d], &b.sides[1-d]
		dir := &w.dirs[d]
		dir.rx, dir.tx = in.maps[i].RX, out.maps[i].TX
		dir.rxFD, dir.txFD = in.fds[i], out.sendFDs[i]
		dir.in = verdict.Interface{Index: in.ifi.Index, Name: in.ifi.Name}
		dir.out = verdict.Interface{Index: out.ifi.Index, Name: out.ifi.Name}
		dir.eg = egress{vnet: !b.cfg.NoVnetHdr, mtu: out.ifi.MTU}
		dir.defrag, dir.inMTU = in.group.Flags&fanout.FlagDefrag != 0, in.ifi.MTU
		dir.txFull, dir.rejected, dir.stuckSince = false, 0, time.Time{}
		dir.conn, dir.bf, dir.taken = in.conns[i], nil, 0
		if i < len(in.filters) {
			dir.bf = in.filters[i]
		}
		w.pfd[d].Fd = int32(in.fds[i])
	}
}

func (w *worker) run() {
	defer w.b.wg.Done()
	defer func() {
		if p := recover(); p != nil {
			w.b.fail(fmt.Errorf("peer: worker %d: %v", w.idx, p))
		}
	}()
	if cpus := w.b.cfg.CPUs; len(cpus) > 0 {
		// The goroutine ends locked, so its pinned thread ends with it.
		if err := pin(cpus[w.idx%len(cpus)]); err != nil {
			w.b.fail(fmt.Errorf("peer: worker %d: pin to CPU %d: %w", w.idx, cpus[w.idx%len(cpus)], err))
			return
		}
	}
	if w.ticker != nil && w.nextTick.IsZero() {
		w.nextTick = time.Now().Add(w.tick)
	}
	spin := w.b.cfg.BusyPoll
	var idleSince time.Time
	sinceYield := 0
	for w.b.halt.Load() == 0 {
		moved := w.pump(&w.dirs[verdict.AToB]) + w.pump(&w.dirs[verdict.BToA])
		if w.ticker != nil {
			w.maybeTick()
		}
		// A busy or spinning worker makes no blocking call (its sends are raw syscalls), so
		// where workers share a P the others would wait for the runtime's 10 ms preemption.
		// Yielding every yieldFrames frames (or idle rounds) bounds that to about a millisecond
		// at full load; it is skipped when every worker can have a P, where a yield would only
		// wake an idle P's thread to compete for the CPU.
		if sinceYield += max(moved, 1); sinceYield >= yieldFrames {
			sinceYield = 0
			if runtime.GOMAXPROCS(0) < w.workers {
				runtime.Gosched()
			}
		}
		if moved > 0 {
			idleSince = time.Time{}
			continue
		}
		if spin != 0 && !w.dirs[0].txFull && !w.dirs[1].txFull {
			if spin < 0 {
				continue
			}
			// Spinning: the first idle round starts the clock, later ones compare against it.
			if idleSince.IsZero() {
				idleSince = time.Now()
				continue
			}
			if time.Since(idleSince) < spin {
				continue
			}
		}
		idleSince = time.Time{}
		w.wait()
	}
	// Frames already committed leave before the rings are unmapped, given drainLimit to do so;
	// the flush also ends any open reservation, which would otherwise hold the ring's mapping.
	for d := range w.dirs {
		dir := &w.dirs[d]
		w.flush(dir)
		for end := time.Now().Add(drainLimit); dir.tx.Pending() > 0 && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
			w.flush(dir)
		}
		w.lost(dir, dir.tx.Cancel())
		dir.pub.store(&dir.c)
	}
}

// pump moves up to one batch of frames in one direction and returns how many it took from the RX
// ring. Each frame is copied once, into the TX slot it will leave from; the verdict reads it
// there; one send flushes the batch.
func (w *worker) pump(d *direction) int {
	retried := d.tx.Pending() > 0
	if retried {
		w.flush(d) // frames an earlier flush could not hand over go first
	}
	n := 0
	d.txFull = false
	for n < w.batch {
		slot, ok := d.tx.Reserve()
		if !ok && d.tx.Pending() > 0 {
			w.flush(d)
			slot, ok = d.tx.Reserve()
		}
		if !ok {
			// The frame stays in the RX ring: backpressure, and the kernel counts what overflows.
			d.c.TXRingFull++
			d.txFull = true
			break
		}
		f := &w.frame
		if !d.rx.Next(f) {
			break
		}
		n++
		if f.PacketType == ring.PacketOutgoing {
			// Sent by this host out of the port (kernels before 6.2 deliver these to fanout
			// members): never bridged.
			d.c.Outgoing++
			continue
		}
		d.c.Received++
		d.c.Bytes += uint64(f.Len)
		in := inFrame{
			data:         f.Data,
			wireLen:      f.Len,
			vnet:         f.Vnet,
			vlan:         f.Status&ring.StatusVLANValid != 0,
			tpid:         f.VLANTPID,
			tci:          f.VLANTCI,
			csumNotReady: f.Status&ring.StatusCsumNotReady != 0,
		}
		if f.Status&ring.StatusVLANTPIDValid == 0 {
			in.tpid = 0
		}
		// A capture shorter than the wire frame is reported by build as truncated; a StatusCopy
		// placeholder is replaced by the whole frame the kernel queued on the socket.
		if f.Status&ring.StatusCopy != 0 && !w.readBig(d, &in) {
			d.c.Truncated++
			continue
		}
		// Only fanout defrag makes IPv4 datagrams longer than the MTU without a GSO type.
		in.reassembled = d.defrag && !gso(f) && reassembled(in.data, d.inMTU)
		buf := slot
		if need := len(in.data) + vlanLen + vnetHdrLen; need > len(slot) {
			buf = w.scratch // a GSO super-frame or a reassembled datagram
		}
		m, hdr, out := build(buf, &in, d.eg)
		switch {
		case out == built && len(buf) != len(slot):
			// Too large for a slot but sendable whole (GSO): after the frames before it.
			if d.tx.Pending() > 0 {
				w.flush(d)
			}
			if !w.judge(d, buf[hdr:m], f, in.reassembled) {
				continue
			}
			if w.sendBig(d, buf[:m]) {
				d.c.Forwarded++
			} else {
				d.c.TXErrors++
			}
		case out == built:
			if !w.judge(d, buf[hdr:m], f, in.reassembled) {
				continue
			}
			if err := d.tx.Commit(m); err != nil {
				if errors.Is(err, ring.ErrOversize) {
					d.c.Oversize++
				} else {
					d.c.TXErrors++
				}
				continue
			}
			d.c.Forwarded++
		case out == needsFrag:
			if len(buf) == len(slot) {
				copy(w.scratch, buf[:m]) // fragments are written over the slot
			}
			if !w.judge(d, w.scratch[:m], f, in.reassembled) {
				continue
			}
			w.fragment(d, w.scratch[:m])
		case out == truncated:
			d.c.Truncated++
		case out == malformed:
			d.c.Malformed++
		default:
			d.c.Oversize++
		}
	}
	waiting := w.observe(d)
	if d.tx.Pending() > 0 {
		w.flush(d)
	}
	d.taken += uint64(n)
	if waiting {
		w.settle(d)
	}
	if n > 0 {
		_ = d.rx.Release()
		if w.b.down.Load()&d.inBit != 0 {
			w.b.poke() // frames from a port believed down: it may be back
		}
	}
	if n > 0 || retried {
		d.pub.store(&d.c)
	}
	return n
}

// readBig replaces in.data with the whole frame that did not fit its RX slot: with
// PACKET_COPY_THRESH the kernel queued a full copy on the socket, in ring order, and the slot
// holds a truncated placeholder. It reports false if the copy is missing (the socket's receive
// buffer was full).
func (w *worker) readBig(d *direction, in *inFrame) bool {
	// Raw, like the ring's flush: it never blocks, and a P handed off during it would cost the
	// bridge a thread switch.
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(d.rxFD), uintptr(unsafe.Pointer(&w.big[0])),
		uintptr(len(w.big)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return false
	}
	b := w.big[:n]
	if in.vnet != nil {
		if len(b) < vnetHdrLen {
			return false
		}
		in.vnet, b = b[:vnetHdrLen], b[vnetHdrLen:]
	}
	in.data, in.wireLen = b, len(b)
	return true
}

// sendBig sends one frame too large for a TX slot straight from the buffer with send(2),
// retrying briefly while the kernel is short of buffers.
func (w *worker) sendBig(d *direction, b []byte) bool {
	for range 8 {
		// Raw, like the ring's flush: MSG_DONTWAIT never blocks, and a 64 KiB GSO frame through
		// veth easily outlasts the runtime's 20 us tick, after which a plain Syscall loses its P.
		_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(d.txFD), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return true
		case unix.EAGAIN, unix.ENOBUFS, unix.EINTR:
			runtime.Gosched()
			continue
		case unix.ENETDOWN, unix.ENXIO:
			w.b.poke()
		}
		return false
	}
	return false
}

// judge asks the verdict about data and reports whether the frame is to be forwarded; it counts
// drops, would-drops and panics. reasm says the kernel reassembled the datagram.
func (w *worker) judge(d *direction, data []byte, f *ring.Frame, reasm bool) bool {
	p := &w.pkt
	p.Data, p.Len, p.In, p.Out, p.Dir, p.Worker = data, f.Len, d.in, d.out, d.dir, w.idx
	p.Time = f.Timestamp()
	p.Status = 0
	if f.Status&ring.StatusCsumNotReady != 0 {
		p.Status |= verdict.ChecksumNotReady
	}
	if f.Status&ring.StatusCsumValid != 0 {
		p.Status |= verdict.ChecksumValid
	}
	if gso(f) {
		p.Status |= verdict.GSO
	}
	if f.Status&ring.StatusVLANValid != 0 {
		p.Status |= verdict.VLAN
	}
	if reasm {
		p.Status |= verdict.Reassembled
	}
	v := w.decide(d, p)
	p.Data = nil
	switch v {
	case verdict.Pass:
	case verdict.Bypass:
		// Forwarded as on Pass; the flow's later frames take the kernel fast path, if it runs.
		d.c.Bypassed++
		w.bypassFlow(data)
	default:
		if d.mode != Tap {
			d.c.Dropped++
			return false
		}
		d.c.WouldDrop++
	}
	// The link policy, checked after the verdict, which may have taken long.
	if w.b.down.Load()&d.gate != 0 {
		d.c.PortDown++
		if d.closed {
			d.c.Dropped++
		} else {
			d.c.TXErrors++ // fail-open, but the egress port is down
		}
		return false
	}
	return true
}

// gso reports whether the frame is a GSO (or GRO) super-frame standing for several on the wire.
func gso(f *ring.Frame) bool {
	return f.Status&ring.StatusGSOTCP != 0 || len(f.Vnet) >= vnetHdrLen && f.Vnet[1] != vnetGSONone
}

// decide asks the Handler; a panic, or a value that is no Verdict constant, gets the failure
// policy's verdict and is counted.
func (w *worker) decide(d *direction, p *verdict.Packet) (v verdict.Verdict) {
	defer func() {
		if r := recover(); r != nil {
			d.c.Panics++
			v = w.fail
		}
	}()
	if v = w.h.Handle(p); v > verdict.Bypass {
		d.c.Panics++
		v = w.fail
	}
	return v
}

// maybeTick calls the Handler's Tick once it is due, and schedules the next one a whole
// interval later (a worker that was busy for several intervals ticks once, not to catch up).
func (w *worker) maybeTick() {
	now := time.Now()
	if now.Before(w.nextTick) {
		return
	}
	w.nextTick = now.Add(w.tick)
	defer func() {
		if r := recover(); r != nil {
			d := &w.dirs[verdict.AToB]
			d.c.Panics++
			d.pub.store(&d.c)
		}
	}()
	w.ticker.Tick(now)
}

// fragment sends the IPv4 datagram in frame as fragments that fit the egress MTU. It sends all
// of them or none: a datagram whose offsets would wrap is malformed, one the MTU leaves no room
// for is oversize, and when the TX ring cannot take every fragment even after a flush, the
// datagram is lost as a TX error rather than sent in part.
func (w *worker) fragment(d *direction, frame []byte) {
	switch w.frag.reset(frame, fragMTU(frame, d.eg), d.eg.vnet) {
	case built:
	case malformed:
		d.c.Malformed++
		return
	default:
		d.c.Oversize++
		return
	}
	k := w.frag.count()
	if d.tx.Free() < k && d.tx.Pending() > 0 {
		w.flush(d)
	}
	if d.tx.Free() < k {
		d.c.TXRingFull++
		d.c.TXErrors++
		return
	}
	for range k {
		slot, ok := d.tx.Reserve()
		if !ok {
			break // cannot happen: Free said there was room, and nothing else uses the ring
		}
		m := w.frag.next(slot)
		if m == 0 {
			break
		}
		if err := d.tx.Commit(m); err != nil {
			// A fragment that fits the MTU fits its slot; the fragments committed before it
			// leave without it, and the datagram counts as one TX error.
			d.c.TXErrors++
			return
		}
		d.c.Fragments++
	}
	d.c.Forwarded++
}

// flush sends the committed frames, retrying a few times when the kernel is short of buffers,
// and books frames the kernel rejected or that could not be sent as TX errors rather than
// forwarded. Frames for a port that is down or gone are taken back at once: the kernel would
// keep them and send them, stale, when the link returns. Frames that make no progress for
// stuckLimit are given up too.
func (w *worker) flush(d *direction) {
	start := d.tx.Pending()
	// A flush that makes no progress is tried flushRetries more times; then a frame the device
	// keeps refusing is given up and the frames behind it go on. Bounded: every round either
	// hands frames over or counts a stall, and there is at most one discard per frame pending.
	for stalls, discards := 0, 0; ; {
		before := d.tx.Pending()
		err := d.tx.Flush()
		if err == nil {
			break
		}
		d.c.FlushErrors++
		if errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENXIO) {
			w.lost(d, d.tx.Cancel())
			w.b.poke()
			break
		}
		if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
			break
		}
		if d.tx.Pending() < before {
			stalls = 0
			continue
		}
		if stalls++; stalls <= flushRetries {
			continue
		}
		if !errors.Is(err, unix.ENOBUFS) || discards >= start {
			break // EAGAIN: the socket's send buffer is full; the frames wait for the next flush
		}
		// The device keeps dropping the oldest frame and the kernel keeps putting it back:
		// give that one frame up so the ring behind it moves.
		k, _ := d.tx.Discard(1)
		w.lost(d, k)
		discards, stalls = discards+1, 0
		if d.tx.Pending() == 0 {
			break
		}
	}
	if r := d.tx.Rejected(); r != d.rejected {
		w.lost(d, int(r-d.rejected))
		d.rejected = r
	}
	switch left := d.tx.Pending(); {
	case left == 0 || left < start:
		d.stuckSince = time.Time{}
	case d.stuckSince.IsZero():
		d.stuckSince = time.Now()
	case time.Since(d.stuckSince) > stuckLimit:
		w.lost(d, d.tx.Cancel())
		d.stuckSince = time.Time{}
	}
}

// lost books k frames counted as forwarded that never left.
func (w *worker) lost(d *direction, k int) {
	d.c.Forwarded -= uint64(k)
	d.c.TXErrors += uint64(k)
}

// wait sleeps until a ring has frames, a full TX ring has room again, or the bridge wakes the
// worker. A direction whose TX ring is full waits for room (POLLOUT on the egress socket) rather
// than for frames, which are already waiting.
func (w *worker) wait() {
	ab, ba := &w.dirs[verdict.AToB], &w.dirs[verdict.BToA]
	w.pfd[0].Events = pollEvents(ab.txFull, ba.txFull) // socket A: RX of A->B, TX of B->A
	w.pfd[1].Events = pollEvents(ba.txFull, ab.txFull) // socket B: RX of B->A, TX of A->B
	for i := range w.pfd {
		w.pfd[i].Revents = 0
	}
	timeout := pollIdle
	if ab.tx.Pending() > 0 || ba.tx.Pending() > 0 {
		timeout = pollRetry
	}
	if w.ticker != nil {
		// An idle worker still ticks: it sleeps no later than its next tick (rounded up, so it
		// wakes once the tick is due rather than just before).
		due := (time.Until(w.nextTick) + time.Millisecond - 1) / time.Millisecond
		timeout = min(timeout, max(int(due), 0))
	}
	_, err := unix.Poll(w.pfd[:], timeout)
	if err != nil && err != unix.EINTR {
		w.b.fail(fmt.Errorf("peer: worker %d: poll: %w", w.idx, err))
		return
	}
	for i := range 2 {
		if w.pfd[i].Revents&unix.POLLERR != 0 {
			// A pending socket error (ENETDOWN when the link drops) keeps POLLERR raised until it
			// is read; read it so the worker sleeps instead of spinning, and have the
			// supervisor look at the port.
			_, _ = unix.GetsockoptInt(int(w.pfd[i].Fd), unix.SOL_SOCKET, unix.SO_ERROR)
			w.b.poke()
		}
	}
	// The wake descriptor is never read: it stays readable once the bridge stops, so every
	// worker sees it.
}

func pollEvents(rxBlocked, txFull bool) int16 {
	var ev int16
	if !rxBlocked {
		ev |= unix.POLLIN
	}
	if txFull {
		ev |= unix.POLLOUT
	}
	return ev
}
