//go:build linux

package ring

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// put builds test frame seq of size bytes in a TX slot, after a zero vnet header when the
// ring has one, and returns the bytes to commit.
func put(b []byte, vnet bool, dst, src net.HardwareAddr, seq uint32, size int) int {
	off := 0
	if vnet {
		VnetHdr{}.Put(b)
		off = VnetHdrLen
	}
	pktgen.Frame(b[off:off], dst, src, seq, size)
	return off + size
}

// TestTXFrames sends numbered frames of varied sizes through the TX ring in batches and checks
// that the peer receives each exactly once, in order, byte for byte, with one send(2) a batch.
func TestTXFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"V2", Config{Version: V2, TXFrameCount: 512}},
		{"V2/vnet", Config{Version: V2, TXFrameCount: 512, VnetHdr: true}},
		{"V2/small-ring", Config{Version: V2, TXFrameCount: 20}},
		{"V3", Config{Version: V3, TXFrameCount: 512}},
		{"V3/vnet", Config{Version: V3, TXFrameCount: 512, VnetHdr: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			local, remote := macs(t, p)
			sock := openSocket(t, p.Local, sockOpts{vnet: tc.cfg.VnetHdr})
			m := newMap(t, sock, &tc.cfg)
			tx := m.TX
			sink := openPktgen(t, p.Remote)

			const n, batch = 1000, 256
			flushes := 0
			flush := func() {
				for try := 0; tx.Pending() > 0; try++ {
					require.Less(t, try, 1000, "the kernel takes the frames")
					if err := tx.Flush(); err != nil {
						require.ErrorIs(t, err, unix.EAGAIN)
						time.Sleep(time.Millisecond)
					}
					flushes++
				}
			}
			for i := range n {
				b, ok := tx.Reserve()
				if !ok {
					flush()
					b, ok = tx.Reserve()
				}
				require.True(t, ok, "a slot is free after a flush")
				require.NoError(t, tx.Commit(put(b, tc.cfg.VnetHdr, remote, local, uint32(i), frameSize(i, 1514))))
				if tx.Pending() == batch {
					flush()
				}
			}
			flush()
			assert.Equal(t, uint64(flushes), tx.sends, "one send(2) a flush")

			got := sink.Collect(n, time.Second, 10*time.Second)
			require.Len(t, got, n, "every frame exactly once")
			for i, f := range got {
				seq, ok := pktgen.Check(f)
				require.True(t, ok, "frame %d intact", i)
				require.Equal(t, uint32(i), seq, "in order")
			}
			assert.Zero(t, tx.Rejected())
			assert.Equal(t, m.Config().TXFrameCount, tx.Free(), "every slot free again")
		})
	}
}

// TestTXBatchOneSyscall commits a whole batch and checks that one Flush hands all of it to the
// kernel with a single send(2).
func TestTXBatchOneSyscall(t *testing.T) {
	p := testenv.NewPair(t, nil)
	local, remote := macs(t, p)
	sock := openSocket(t, p.Local, sockOpts{txOnly: true})
	m := newMap(t, sock, &Config{NoRX: true, TXFrameCount: 256})
	sink := openPktgen(t, p.Remote)

	n := m.Config().TXFrameCount // 256, rounded up to whole blocks
	for i := range n {
		b, ok := m.TX.Reserve()
		require.True(t, ok)
		require.NoError(t, m.TX.Commit(put(b, false, remote, local, uint32(i), 1000)))
	}
	require.Equal(t, n, m.TX.Pending())
	require.Zero(t, m.TX.Free(), "the ring is full")
	require.NoError(t, m.TX.Flush())
	assert.Equal(t, uint64(1), m.TX.sends, "one send(2) for the batch")
	assert.Zero(t, m.TX.Pending(), "the kernel took every frame")
	assert.Len(t, sink.Collect(n, time.Second, 5*time.Second), n)

	require.NoError(t, m.TX.Flush())
	assert.Equal(t, uint64(1), m.TX.sends, "nothing committed, no syscall")
}

// TestTXSlotLimits checks what Commit refuses before the kernel sees it, and that a slot not
// committed is reused.
func TestTXSlotLimits(t *testing.T) {
	for _, v := range []Version{V2, V3} {
		t.Run(v.String(), func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			local, remote := macs(t, p)
			sock := openSocket(t, p.Local, sockOpts{txOnly: true})
			m := newMap(t, sock, &Config{Version: v, NoRX: true, TXFrameCount: 8})
			tx := m.TX
			sink := openPktgen(t, p.Remote)

			cfg := m.Config()
			b, ok := tx.Reserve()
			require.True(t, ok)
			assert.Equal(t, cfg.TXFrameSize-txDataOff(v), len(b), "the slice is the slot's data area")
			assert.Equal(t, len(b), cap(b), "and cannot grow past it")
			assert.Equal(t, len(b), tx.MaxLen())
			assert.ErrorIs(t, tx.Commit(len(b)+1), ErrOversize)
			assert.ErrorIs(t, tx.Commit(13), ErrMalformed)
			assert.ErrorIs(t, tx.Commit(-1), ErrMalformed)

			// Untagged frames stop at MTU+14; 802.1Q gets 4 bytes more, 802.1ad does not.
			untagged := pktgen.Frame(nil, remote, local, 0, 1500+14+1)
			copy(b, untagged)
			assert.ErrorIs(t, tx.Commit(len(untagged)), ErrOversize)
			ad := pktgen.Tag(pktgen.Frame(nil, remote, local, 0, 1500+14), unix.ETH_P_8021AD, 7)
			copy(b, ad)
			assert.ErrorIs(t, tx.Commit(len(ad)), ErrOversize)
			q := pktgen.Tag(pktgen.Frame(nil, remote, local, 1, 1500+14), unix.ETH_P_8021Q, 7)
			copy(b, q)
			require.NoError(t, tx.Commit(len(q)))
			assert.ErrorIs(t, tx.Commit(100), ErrNotReserved, "Commit consumed the reservation")

			// A reservation not committed is reused: a dropped frame costs nothing.
			b1, ok := tx.Reserve()
			require.True(t, ok)
			b2, ok := tx.Reserve()
			require.True(t, ok)
			assert.Equal(t, unsafe.SliceData(b1), unsafe.SliceData(b2))
			require.NoError(t, tx.Commit(put(b2, false, remote, local, 2, 64)))
			require.NoError(t, tx.Flush())

			got := sink.Collect(2, 5*time.Second, 5*time.Second)
			require.Len(t, got, 2)
			// The receiving veth strips the tag; recvfrom on Linux 6.18 puts it back in place.
			if binary.BigEndian.Uint16(got[0][12:]) == unix.ETH_P_8021Q {
				assert.Equal(t, q, got[0], "the 802.1Q frame left whole, tag included")
			} else {
				seq, ok := pktgen.Check(got[0])
				assert.True(t, ok)
				assert.Equal(t, uint32(1), seq)
			}
			seq, ok := pktgen.Check(got[1])
			assert.True(t, ok)
			assert.Equal(t, uint32(2), seq)
		})
	}
}

// TestTXKernelRejects hands the kernel frames it refuses, by telling the ring a larger MTU than
// the interface has, and checks that PACKET_LOSS skips them, that they are counted, and that
// the frames behind them in the same flush still leave.
func TestTXKernelRejects(t *testing.T) {
	for _, v := range []Version{V2, V3} {
		t.Run(v.String(), func(t *testing.T) {
			p := testenv.NewPair(t, nil) // MTU 1500
			local, remote := macs(t, p)
			sock := openSocket(t, p.Local, sockOpts{txOnly: true})
			m := newMap(t, sock, &Config{Version: v, NoRX: true, MTU: 9000, TXFrameCount: 16})
			tx := m.TX
			sink := openPktgen(t, p.Remote)

			sizes := []int{100, 3000, 200, 300, 4000, 400}
			for i, size := range sizes {
				b, ok := tx.Reserve()
				require.True(t, ok)
				require.NoError(t, tx.Commit(put(b, false, remote, local, uint32(i), size)))
			}
			require.NoError(t, tx.Flush())
			assert.Equal(t, uint64(1), tx.sends, "one send(2) despite the refusals")
			assert.Zero(t, tx.Pending())
			assert.Equal(t, uint64(2), tx.Rejected(), "both oversize frames counted")

			got := sink.Collect(4, 5*time.Second, 5*time.Second)
			var seqs []uint32
			for _, f := range got {
				seq, ok := pktgen.Check(f)
				assert.True(t, ok)
				seqs = append(seqs, seq)
			}
			assert.Equal(t, []uint32{0, 2, 3, 5}, seqs, "the frames behind the refused ones left, in order")
			assert.Equal(t, m.Config().TXFrameCount, tx.Free(), "the refused frames' slots are free again")
		})
	}
}

// TestTXStuckFrameDiscard shows the failure PACKET_LOSS does not cover: a frame the kernel
// accepts but the device drops (here veth refusing a non-GSO frame above its MTU, which the
// vnet header path does not check) is put back and retried by every send, holding up the
// frames behind it, until Discard drops it.
func TestTXStuckFrameDiscard(t *testing.T) {
	p := testenv.NewPair(t, nil)
	local, remote := macs(t, p)
	sock := openSocket(t, p.Local, sockOpts{txOnly: true, vnet: true})
	m := newMap(t, sock, &Config{NoRX: true, VnetHdr: true, MTU: 9000, TXFrameCount: 16})
	tx := m.TX
	sink := openPktgen(t, p.Remote)

	for i, size := range []int{100, 3000, 200, 300} {
		b, ok := tx.Reserve()
		require.True(t, ok)
		require.NoError(t, tx.Commit(put(b, true, remote, local, uint32(i), size)))
	}
	for range 3 {
		err := tx.Flush()
		require.ErrorIs(t, err, unix.ENOBUFS)
		var se *os.SyscallError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "send", se.Syscall)
		assert.Equal(t, 3, tx.Pending(), "the dropped frame and the two behind it are stuck")
	}
	dropped, err := tx.Discard(1)
	require.NoError(t, err)
	assert.Equal(t, 1, dropped)
	assert.Zero(t, tx.Pending())
	assert.Zero(t, tx.Rejected(), "a discarded frame is not a refused one")

	got := sink.Collect(3, 5*time.Second, 5*time.Second)
	var seqs []uint32
	for _, f := range got {
		seq, ok := pktgen.Check(f)
		assert.True(t, ok)
		seqs = append(seqs, seq)
	}
	assert.Equal(t, []uint32{0, 2, 3}, seqs)
}

// TestTXDiscardAll discards a whole batch before the kernel took it.
func TestTXDiscardAll(t *testing.T) {
	p := testenv.NewPair(t, nil)
	local, remote := macs(t, p)
	sock := openSocket(t, p.Local, sockOpts{txOnly: true})
	m := newMap(t, sock, &Config{NoRX: true, TXFrameCount: 16})
	sink := openPktgen(t, p.Remote)
	for i := range 5 {
		b, ok := m.TX.Reserve()
		require.True(t, ok)
		require.NoError(t, m.TX.Commit(put(b, false, remote, local, uint32(i), 100)))
	}
	n, err := m.TX.Discard(0)
	require.NoError(t, err)
	assert.Equal(t, 5, n)
	assert.Zero(t, m.TX.Pending())
	assert.Empty(t, sink.Collect(1, 200*time.Millisecond, time.Second), "nothing left")
	assert.Equal(t, m.Config().TXFrameCount, m.TX.Free())
	assert.Zero(t, m.TX.Rejected())
}

// TestTXVnetGSO sends a 20 KB TCP GSO super-frame through a vnet-header TX ring: Commit
// accepts it above the MTU because of its GSO type, and the kernel takes it. (veth passes it to
// the peer whole; a device without TSO would get it segmented.)
func TestTXVnetGSO(t *testing.T) {
	p := testenv.NewPair(t, nil)
	local, remote := macs(t, p)
	sock := openSocket(t, p.Local, sockOpts{txOnly: true, vnet: true})
	m := newMap(t, sock, &Config{NoRX: true, VnetHdr: true, TXFrameCount: 4})
	sink := openPktgen(t, p.Remote)

	const payload = 20000
	b, ok := m.TX.Reserve()
	require.True(t, ok)
	frame := tcpFrame(remote, local, payload)
	h := VnetHdr{Flags: VnetNeedsCsum, GSOType: VnetGSOTCPv4, HdrLen: 54, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	h.Put(b)
	copy(b[VnetHdrLen:], frame)
	require.NoError(t, m.TX.Commit(VnetHdrLen+len(frame)))
	require.NoError(t, m.TX.Flush())
	assert.Zero(t, m.TX.Rejected())

	bytes := 0
	buf := make([]byte, 1<<16)
	end := time.Now().Add(5 * time.Second)
	for bytes < payload && time.Now().Before(end) {
		n, _, err := sink.Recv(buf, time.Until(end))
		if err != nil {
			break
		}
		if n >= 54 && binary.BigEndian.Uint16(buf[12:]) == unix.ETH_P_IP && buf[23] == unix.IPPROTO_TCP {
			require.LessOrEqual(t, bytes+n-54, payload)
			assert.Equal(t, frame[54+bytes:54+bytes+n-54], buf[54:n], "payload intact")
			bytes += n - 54
		}
	}
	assert.Equal(t, payload, bytes)

	// The same frame without its GSO type is above the MTU: refused before the kernel sees it.
	b, ok = m.TX.Reserve()
	require.True(t, ok)
	h.GSOType, h.GSOSize = VnetGSONone, 0
	h.Put(b)
	copy(b[VnetHdrLen:], frame)
	assert.ErrorIs(t, m.TX.Commit(VnetHdrLen+len(frame)), ErrOversize)
}

// tcpFrame builds an IPv4 TCP frame (198.18.0.1 -> 198.18.0.2) with payload bytes of data and
// a partial checksum, as a sender with checksum offload leaves it.
func tcpFrame(dst, src net.HardwareAddr, payload int) []byte {
	f := make([]byte, 54+payload)
	copy(f[0:], dst)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+payload))
	ip[8], ip[9] = 64, unix.IPPROTO_TCP
	copy(ip[12:], []byte{198, 18, 0, 1, 198, 18, 0, 2})
	binary.BigEndian.PutUint16(ip[10:], ^csumFold(csumAdd(0, ip)))
	tcp := f[34:54]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 9)
	binary.BigEndian.PutUint32(tcp[4:], 1)
	tcp[12], tcp[13] = 5<<4, 0x18 // PSH ACK
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	for i := range payload {
		f[54+i] = byte(i)
	}
	// The pseudo-header sum goes in the checksum field; the kernel adds the rest.
	var pseudo [12]byte
	copy(pseudo[:], ip[12:20])
	pseudo[9] = unix.IPPROTO_TCP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(20+payload))
	binary.BigEndian.PutUint16(tcp[16:], csumFold(csumAdd(0, pseudo[:])))
	return f
}

func csumAdd(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func csumFold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// TestTXReclaimWrongFormat runs the TX ring over plain memory to check the path PACKET_LOSS
// makes unreachable with a real socket: a slot the kernel left TP_STATUS_WRONG_FORMAT is
// counted as rejected and reused when Reserve reaches it, never lost and never stalling.
func TestTXReclaimWrongFormat(t *testing.T) {
	const n, size = 4, 256
	backing := make([]uint64, n*size/8)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&backing[0])), n*size)
	m := &Map{unmapped: make(chan struct{})}
	m.state.Store(1)
	tx := &TX{m: m, mem: mem, slots: slotOffsets(n, size, n*size), picked: make([]bool, n),
		frameSize: size, dataOff: txDataOff(V2), mtu: 1500}

	commit := func() {
		b, ok := tx.Reserve()
		require.True(t, ok)
		require.NoError(t, tx.Commit(put(b, false, net.HardwareAddr{2, 0, 0, 0, 0, 1}, net.HardwareAddr{2, 0, 0, 0, 0, 2}, 0, 64)))
	}
	for range n {
		commit()
	}
	_, ok := tx.Reserve()
	require.False(t, ok, "every slot committed")
	// The "kernel" sends slots 0 and 2, refuses slot 1 without PACKET_LOSS, still sends slot 3.
	storeStatus(tx.slot(0), unix.TP_STATUS_AVAILABLE)
	storeStatus(tx.slot(1), unix.TP_STATUS_WRONG_FORMAT)
	storeStatus(tx.slot(2), unix.TP_STATUS_AVAILABLE)
	storeStatus(tx.slot(3), unix.TP_STATUS_SENDING)
	tx.pending, tx.sent = 0, 0
	assert.Equal(t, 3, tx.Free(), "slots 0 to 2 are free again, slot 3 is in flight")
	assert.Equal(t, uint64(1), tx.Rejected())
	assert.Equal(t, uint32(unix.TP_STATUS_AVAILABLE), loadStatus(tx.slot(1)), "the refused slot was reset")
	for range 3 {
		commit()
	}
	_, ok = tx.Reserve()
	assert.False(t, ok, "slot 3 is still being sent")
	storeStatus(tx.slot(3), unix.TP_STATUS_AVAILABLE|unix.TP_STATUS_TS_SOFTWARE)
	_, ok = tx.Reserve()
	assert.True(t, ok, "a sent slot with a timestamp flag is free")
}

// TestTXCountRejected checks how the byte shortfall of a send is turned into a frame count.
func TestTXCountRejected(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lens    []int
		deficit int
		want    uint64
	}{
		{"one", []int{100, 3000, 200}, 3000, 1},
		{"two of different sizes", []int{100, 3000, 200, 4000}, 7000, 2},
		{"all", []int{100, 100, 100}, 300, 3},
		{"ambiguous: the fewest frames", []int{100, 200, 300}, 300, 1},
		{"no exact cover: at least one", []int{100, 200}, 50, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const size = 64
			backing := make([]uint64, len(tc.lens)*size/8)
			mem := unsafe.Slice((*byte)(unsafe.Pointer(&backing[0])), len(backing)*8)
			tx := &TX{mem: mem, slots: slotOffsets(len(tc.lens), size, len(mem)), picked: make([]bool, len(tc.lens)),
				frameSize: size, dataOff: 32}
			for i, l := range tc.lens {
				tx.setLen(tx.slot(i), l)
			}
			assert.Equal(t, tc.want, tx.countRejected(0, len(tc.lens), tc.deficit))
			assert.NotContains(t, tx.picked, true, "scratch cleared")
		})
	}
}

// TestTXSendError checks that a send(2) failing for lack of an interface is reported with its
// errno and leaves the frames committed.
func TestTXSendError(t *testing.T) {
	p := testenv.NewPair(t, nil)
	local, remote := macs(t, p)
	sock := openSocket(t, p.Local, sockOpts{txOnly: true})
	m := newMap(t, sock, &Config{NoRX: true, TXFrameCount: 4})
	b, ok := m.TX.Reserve()
	require.True(t, ok)
	require.NoError(t, m.TX.Commit(put(b, false, remote, local, 0, 64)))
	p.Local.Run(t, "ip", "link", "set", p.Local.Name, "down")
	err := m.TX.Flush()
	require.ErrorIs(t, err, unix.ENETDOWN)
	assert.Equal(t, 1, m.TX.Pending())
	p.Local.Run(t, "ip", "link", "set", p.Local.Name, "up")
	require.NoError(t, m.TX.Flush())
	assert.Zero(t, m.TX.Pending())
	assert.False(t, errors.Is(err, os.ErrClosed))
}

// TestTXCancelWhileDown shows why Cancel exists: while the interface is down the kernel refuses
// the send before it looks at the ring, so Discard cannot skip the committed frames and Flush
// would send them, stale, once the link is back. Cancel takes them back; the frames committed
// after it, wrapping round the ring, leave in order and nothing cancelled ever does.
func TestTXCancelWhileDown(t *testing.T) {
	for _, v := range []Version{V2, V3} {
		t.Run(v.String(), func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			local, remote := macs(t, p)
			sock := openSocket(t, p.Local, sockOpts{txOnly: true})
			m := newMap(t, sock, &Config{Version: v, NoRX: true, TXFrameCount: 4})
			tx := m.TX
			slots := m.Config().TXFrameCount
			sink := openPktgen(t, p.Remote)
			commit := func(seq uint32) {
				t.Helper()
				b, ok := tx.Reserve()
				require.True(t, ok)
				require.NoError(t, tx.Commit(put(b, false, remote, local, seq, 100)))
			}
			commit(0) // move the kernel's head off slot 0
			require.NoError(t, tx.Flush())
			for seq := uint32(100); seq < 103; seq++ {
				commit(seq)
			}
			p.Local.Run(t, "ip", "link", "set", p.Local.Name, "down")
			require.ErrorIs(t, tx.Flush(), unix.ENETDOWN)
			_, err := tx.Discard(0)
			require.ErrorIs(t, err, unix.ENETDOWN, "Discard needs a send the kernel refuses while down")
			assert.Equal(t, 3, tx.Pending())
			_, _ = tx.Reserve() // a reservation open at Cancel ends with it
			assert.Equal(t, 3, tx.Cancel())
			assert.Zero(t, tx.Pending())
			assert.Equal(t, slots, tx.Free(), "the cancelled slots are free")
			assert.Zero(t, tx.Cancel(), "nothing left to cancel")

			p.Local.Run(t, "ip", "link", "set", p.Local.Name, "up")
			testenv.WaitLinkUp(t, p.Local)
			want := []uint32{0}
			for seq := uint32(1); seq <= uint32(2*slots); seq++ {
				commit(seq)
				want = append(want, seq)
				if seq%3 == 0 {
					require.NoError(t, tx.Flush())
				}
			}
			require.NoError(t, tx.Flush())
			got := sink.Collect(len(want)+1, 300*time.Millisecond, 5*time.Second)
			var seqs []uint32
			for _, f := range got {
				seq, ok := pktgen.Check(f)
				assert.True(t, ok)
				seqs = append(seqs, seq)
			}
			assert.Equal(t, want, seqs, "the frames after Cancel left in order; the cancelled ones never did")
		})
	}
}
