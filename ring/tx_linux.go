//go:build linux

package ring

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
// Discard them. Any other error (ENETDOWN, ENXIO) also leaves them committed: Cancel them. Frames the kernel refused are skipped (PACKET_LOSS) and counted by Rejected.
func (t *TX) Flush() error {
	if !t.holding && t.pending == 0 {
		if t.m.closed.Load() {
			return errClosed
		}
		return nil // nothing to send, and the mapping is not touched
	}
	entered, ok := t.begin()
	if !ok {
		return errClosed
	}
	var err error
	if t.pending > 0 {
		err = t.send(true)
	}
	t.end(entered)
	return err
}

// Discard gives up on the n oldest committed frames the kernel has not taken (all of them
// when n <= 0 or n >= Pending), such as a frame the device keeps dropping, which Flush would
// otherwise retry forever, and sends the rest as Flush does; it returns how many it dropped.
// It rewrites their tp_len to 0, which the kernel refuses, and with PACKET_LOSS skips.
func (t *TX) Discard(n int) (int, error) {
	entered, ok := t.begin()
	if !ok {
		return 0, errClosed
	}
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
	t.end(entered)
	return n, err
}

// Cancel takes back every committed frame the kernel has not taken, without sending it, and
// ends any reservation; it returns how many it took back. Their slots are free again and the
// next Reserve returns the first of them. Use it when the socket cannot send at all: while the
// interface is down (ENETDOWN) or gone (ENXIO), tpacket_snd returns before it looks at the
// ring, so Discard cannot skip the frames, and Flush would send them, stale, once the link
// comes back.
//
// The kernel reads a committed slot only inside send(2), starting at its own head, which is
// the oldest frame not taken (the TX ring's one goroutine is not sending now), so rewinding
// the ring to that slot leaves both sides agreeing on where the next frame goes.
func (t *TX) Cancel() int {
	entered, ok := t.begin()
	if !ok {
		return 0
	}
	n := t.pending
	for i, s := 0, t.sent; i < n; i++ {
		storeStatus(t.slot(s)[t.statusOff:], unix.TP_STATUS_AVAILABLE)
		if s++; s == len(t.slots) {
			s = 0
		}
	}
	t.head = t.sent
	t.inuse -= n
	t.pending = 0
	t.end(entered)
	return n
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

// begin enters the mapping for an operation that ends any reservation (Flush, Discard,
// Cancel): through the reservation's hold when there is one, else by entering the Map. It
// reports false, having let any hold go, when the Map is closed.
func (t *TX) begin() (entered, ok bool) {
	entered = !t.holding
	if entered {
		if !t.m.enter() {
			return false, false
		}
	} else if t.m.closed.Load() {
		t.unhold()
		return false, false
	}
	t.reserved = false
	return entered, true
}

// end leaves what begin entered, or lets the reservation's hold go.
func (t *TX) end(entered bool) {
	if entered {
		t.m.exit()
	} else {
		t.unhold()
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
// goroutine may call it. The kernel only reports the bytes it sent, so when a flush loses
// several frames of different sizes the count is the fewest frames that add up to the loss.
// The kernel also logs "af_packet: packet size is too long" for each frame refused for its
// size; with Config.MTU right, Commit refuses those first.
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
	needsCsum := h.Flags&VnetNeedsCsum != 0
	switch h.GSOType {
	case VnetGSONone:
		// The device drops non-GSO frames beyond MTU + 14 + VLAN_HLEN (is_skb_forwardable).
		if n > mtu+ethHdrLen+vlanHdrLen {
			return ErrOversize
		}
		return nil
	case VnetGSOTCPv4, VnetGSOTCPv6, VnetGSOTCPv4 | VnetGSOECN, VnetGSOTCPv6 | VnetGSOECN:
		if needsCsum && h.CsumOffset != 16 { // offsetof(struct tcphdr, check)
			return ErrMalformed
		}
	case VnetGSOUDPL4:
		if !needsCsum || h.CsumOffset != 6 { // offsetof(struct udphdr, check)
			return ErrMalformed
		}
	case VnetGSOUDP:
	default:
		return ErrMalformed // unknown, or ECN without TCP
	}
	if h.GSOSize == 0 || h.GSOSize == 0xffff { // 0xffff is GSO_BY_FRAGS, refused from userspace
		return ErrMalformed
	}
	return nil
}
