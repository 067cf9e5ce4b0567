//go:build linux

package peer

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"
	"unsafe"

	"github.com/afbridge/afbridge/ring"
	"github.com/afbridge/afbridge/verdict"
	"golang.org/x/sys/unix"
)

// scratchLen holds the largest frame the kernel hands over: a 64 KiB datagram (reassembled or
// GSO) with its Ethernet header, two VLAN tags and a vnet header.
const scratchLen = math.MaxUint16 + 14 + 8 + vnetHdrLen

// pollIdle bounds a worker's sleep, so a lost wake-up can never stall it for long.
const pollIdle = 200 // ms

// worker owns socket i of both sides and moves frames both ways. Nothing in it is shared with
// other goroutines except the published counters, so the hot path takes no lock.
type worker struct {
	b     *Bridge
	idx   int
	batch int
	h     verdict.Handler
	fail  verdict.Verdict // verdict applied when h panics
	dirs  [2]direction
	pfd   [3]unix.PollFd

	frame   ring.Frame
	pkt     verdict.Packet
	scratch []byte // a frame too large for a TX slot is built here
	big     []byte // a frame too large for an RX slot is read here from the socket
	frag    fragmenter
}

type direction struct {
	rx       *ring.RX
	tx       *ring.TX
	rxFD     int // the ingress socket, for frames that did not fit their RX slot
	txFD     int // the egress socket, for frames too large for a TX slot
	in, out  verdict.Interface
	dir      verdict.Direction
	mode     CopyMode
	eg       egress
	c        Counters
	pub      published
	txFull   bool
	rejected uint64
}

func newWorker(b *Bridge, i int) *worker {
	w := &worker{b: b, idx: i, batch: b.cfg.Batch, h: b.cfg.Verdict.New(i),
		scratch: make([]byte, scratchLen), big: make([]byte, scratchLen)}
	if b.cfg.OnPanic == FailClosed {
		w.fail = verdict.Drop
	}
	for d := range w.dirs {
		in, out := &b.sides[d], &b.sides[1-d]
		w.dirs[d] = direction{
			rx:   in.maps[i].RX,
			tx:   out.maps[i].TX,
			rxFD: in.fds[i],
			txFD: out.sendFDs[i],
			in:   verdict.Interface{Index: in.ifi.Index, Name: in.ifi.Name},
			out:  verdict.Interface{Index: out.ifi.Index, Name: out.ifi.Name},
			dir:  verdict.Direction(d),
			mode: in.cfg.CopyMode,
			eg:   egress{vnet: !b.cfg.NoVnetHdr, mtu: out.ifi.MTU},
		}
		w.pfd[d].Fd = int32(in.fds[i])
	}
	w.pfd[2] = unix.PollFd{Fd: int32(b.wakeFD), Events: unix.POLLIN}
	return w
}

func (w *worker) run() {
	defer w.b.wg.Done()
	defer func() {
		if p := recover(); p != nil {
			w.b.fail(fmt.Errorf("peer: worker %d: %v", w.idx, p))
		}
	}()
	spin := w.b.cfg.BusyPoll
	var idleSince time.Time
	for !w.b.stop.Load() {
		moved := w.pump(&w.dirs[verdict.AToB]) + w.pump(&w.dirs[verdict.BToA])
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
	// Frames already committed leave before the rings are unmapped; the flush also ends any
	// open reservation, which would otherwise hold the ring's mapping.
	for d := range w.dirs {
		w.flush(&w.dirs[d])
		w.dirs[d].pub.store(&w.dirs[d].c)
	}
}

// pump moves up to one batch of frames in one direction and returns how many it took from the RX
// ring. Each frame is copied once, into the TX slot it will leave from; the verdict reads it
// there; one send flushes the batch.
func (w *worker) pump(d *direction) int {
	n, committed := 0, 0
	d.txFull = false
	for n < w.batch {
		slot, ok := d.tx.Reserve()
		if !ok && committed > 0 {
			w.flush(d)
			committed = 0
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
		if f.Status&ring.StatusCopy != 0 {
			if !w.readBig(d, &in) {
				d.c.Truncated++
				continue
			}
		} else if f.SnapLen < f.Len {
			d.c.Truncated++
			continue
		}
		buf := slot
		if need := len(in.data) + vlanLen + vnetHdrLen; need > len(slot) {
			buf = w.scratch // a GSO super-frame or a reassembled datagram
		}
		m, hdr, out := build(buf, &in, d.eg)
		switch {
		case out == built && len(buf) != len(slot):
			// Too large for a slot but sendable whole (GSO): after the frames before it.
			if committed > 0 {
				w.flush(d)
				committed = 0
			}
			if !w.judge(d, buf[hdr:m], f) {
				continue
			}
			if w.sendBig(d, buf[:m]) {
				d.c.Forwarded++
			} else {
				d.c.TXErrors++
			}
		case out == built:
			if !w.judge(d, buf[hdr:m], f) {
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
			committed++
		case out == needsFrag:
			if len(buf) == len(slot) {
				copy(w.scratch, buf[:m]) // fragments are written over the slot
			}
			if !w.judge(d, w.scratch[:m], f) {
				continue
			}
			committed += w.fragment(d, w.scratch[:m], &committed)
		case out == truncated:
			d.c.Truncated++
		case out == malformed:
			d.c.Malformed++
		default:
			d.c.Oversize++
		}
	}
	if committed > 0 {
		w.flush(d)
	}
	if n > 0 {
		_ = d.rx.Release()
		d.pub.store(&d.c)
	}
	return n
}

// readBig replaces in.data with the whole frame that did not fit its RX slot: with
// PACKET_COPY_THRESH the kernel queued a full copy on the socket, in ring order, and the slot
// holds a truncated placeholder. It reports false if the copy is missing (the socket's receive
// buffer was full).
func (w *worker) readBig(d *direction, in *inFrame) bool {
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(d.rxFD), uintptr(unsafe.Pointer(&w.big[0])),
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
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(d.txFD), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			return true
		case unix.EAGAIN, unix.ENOBUFS, unix.EINTR:
			runtime.Gosched()
			continue
		}
		return false
	}
	return false
}

// judge asks the verdict about data and reports whether the frame is to be forwarded; it counts
// drops, would-drops and panics.
func (w *worker) judge(d *direction, data []byte, f *ring.Frame) bool {
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
	if f.Status&ring.StatusGSOTCP != 0 || len(f.Vnet) >= vnetHdrLen && f.Vnet[1] != vnetGSONone {
		p.Status |= verdict.GSO
	}
	if f.Status&ring.StatusVLANValid != 0 {
		p.Status |= verdict.VLAN
	}
	v := w.decide(d, p)
	p.Data = nil
	if v == verdict.Pass {
		return true
	}
	if d.mode == Tap {
		d.c.WouldDrop++
		return true
	}
	d.c.Dropped++
	return false
}

func (w *worker) decide(d *direction, p *verdict.Packet) (v verdict.Verdict) {
	defer func() {
		if r := recover(); r != nil {
			d.c.Panics++
			v = w.fail
		}
	}()
	return w.h.Handle(p)
}

// fragment sends the IPv4 datagram in frame as fragments that fit the egress MTU. It returns the
// number of slots committed; *committed is the caller's count, reset when a flush makes room.
func (w *worker) fragment(d *direction, frame []byte, committed *int) int {
	if !w.frag.reset(frame, d.eg.mtu, d.eg.vnet) {
		d.c.Oversize++
		return 0
	}
	sent := 0
	for range 1 << 14 {
		slot, ok := d.tx.Reserve()
		if !ok {
			w.flush(d)
			*committed, sent = 0, 0
			if slot, ok = d.tx.Reserve(); !ok {
				d.c.TXRingFull++
				d.c.TXErrors++ // the datagram is lost: its first fragments left without the rest
				return sent
			}
		}
		k := w.frag.next(slot)
		if k == 0 {
			break
		}
		if err := d.tx.Commit(k); err != nil {
			d.c.TXErrors++
			return sent
		}
		sent++
		d.c.Fragments++
	}
	d.c.Forwarded++
	return sent
}

// flush sends the committed frames, retrying a few times when the kernel is short of buffers,
// and books frames the kernel rejected as TX errors rather than forwarded.
func (w *worker) flush(d *direction) {
	for try := 0; ; try++ {
		before := d.tx.Pending()
		err := d.tx.Flush()
		if err == nil {
			break
		}
		d.c.FlushErrors++
		if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
			break
		}
		if try >= 3 {
			if d.tx.Pending() == before && errors.Is(err, unix.ENOBUFS) {
				// No progress: the device keeps dropping the oldest frame and the kernel keeps
				// retrying it; give that one frame up so the ring behind it moves.
				if k, _ := d.tx.Discard(1); k > 0 {
					d.c.Forwarded -= uint64(k)
					d.c.TXErrors += uint64(k)
				}
			}
			break
		}
	}
	if r := d.tx.Rejected(); r != d.rejected {
		delta := r - d.rejected
		d.rejected = r
		d.c.Forwarded -= delta
		d.c.TXErrors += delta
	}
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
	_, err := unix.Poll(w.pfd[:], pollIdle)
	if err != nil && err != unix.EINTR {
		w.b.fail(fmt.Errorf("peer: worker %d: poll: %w", w.idx, err))
		return
	}
	for i := range 2 {
		if w.pfd[i].Revents&unix.POLLERR != 0 {
			// A pending socket error (ENETDOWN when the link drops) keeps POLLERR raised until it
			// is read; read it so the worker sleeps instead of spinning.
			_, _ = unix.GetsockoptInt(int(w.pfd[i].Fd), unix.SOL_SOCKET, unix.SO_ERROR)
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
