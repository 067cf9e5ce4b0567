//go:build linux

package ring

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/afbridge/afbridge/internal/tpacket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// aligned returns data copied into 8-byte-aligned memory of at least n bytes, a multiple of 8,
// as ring memory is.
func aligned(data []byte, n int) []byte {
	size := alignUp(max(len(data), n, 8), 8)
	backing := make([]uint64, size/8)
	b := unsafe.Slice((*byte)(unsafe.Pointer(&backing[0])), size)
	copy(b, data)
	return b
}

// v2Slot builds a V2 RX slot as the kernel writes it.
func v2Slot(frame []byte, vnet bool, size int) []byte {
	slot := aligned(nil, size)
	mac := rxMacOff(V2, vnet)
	h := (*unix.Tpacket2Hdr)(unsafe.Pointer(&slot[0]))
	h.Status = unix.TP_STATUS_USER | unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID | unix.TP_STATUS_CSUMNOTREADY
	h.Len, h.Snaplen = uint32(len(frame)), uint32(len(frame))
	h.Mac, h.Net = uint16(mac), uint16(mac+14)
	h.Sec, h.Nsec = 1700000000, 123
	h.Vlan_tci, h.Vlan_tpid = 42, unix.ETH_P_8021AD
	sll := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&slot[tpacket.V2SockaddrOff]))
	sll.Pkttype, sll.Ifindex = unix.PACKET_OTHERHOST, 7
	if vnet {
		VnetHdr{Flags: VnetNeedsCsum, CsumStart: 34, CsumOffset: 16}.Put(slot[mac-VnetHdrLen:])
	}
	copy(slot[mac:], frame)
	return slot
}

// v3Block builds a V3 block holding frames as the kernel writes it.
func v3Block(frames [][]byte, vnet bool, size int) []byte {
	b := aligned(nil, size)
	binary.NativeEndian.PutUint32(b[tpacket.BlockStatusOff:], unix.TP_STATUS_USER|unix.TP_STATUS_BLK_TMO)
	binary.NativeEndian.PutUint32(b[12:], uint32(len(frames)))
	binary.NativeEndian.PutUint32(b[16:], tpacket.BlockHdrLen)
	mac := rxMacOff(V3, vnet)
	off := tpacket.BlockHdrLen
	for i, fr := range frames {
		h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&b[off]))
		h.Len, h.Snaplen = uint32(len(fr)), uint32(len(fr))
		h.Mac, h.Net = uint16(mac), uint16(mac+14)
		h.Status = unix.TP_STATUS_USER | unix.TP_STATUS_VLAN_VALID
		h.Hv1.Vlan_tci, h.Hv1.Vlan_tpid = uint32(100+i), unix.ETH_P_8021Q
		h.Sec, h.Nsec = 1700000000, uint32(i)
		sll := (*unix.RawSockaddrLinklayer)(unsafe.Pointer(&b[off+tpacket.V3SockaddrOff]))
		sll.Pkttype, sll.Ifindex = unix.PACKET_HOST, 3
		copy(b[off+mac:], fr)
		next := alignUp(mac+len(fr), tpacket.V3Alignment)
		if i < len(frames)-1 {
			h.Next_offset = uint32(next)
		}
		off += next
	}
	return b
}

// syntheticMap is a Map over plain memory, for tests that must not unmap it.
func syntheticMap() *Map {
	m := &Map{unmapped: make(chan struct{})}
	m.state.Store(1)
	return m
}

// v3RX reads one synthetic block.
func v3RX(block []byte, vnet bool) *RX {
	r := &RX{m: syntheticMap(), mem: block, v3: true, blockSize: len(block), blocks: 1}
	if vnet {
		r.vnet = VnetHdrLen
	}
	return r
}

func TestDecodeV2(t *testing.T) {
	frame := []byte("0123456789abcdefghij")
	for _, vnet := range []bool{false, true} {
		slot := v2Slot(frame, vnet, 256)
		var f Frame
		vl := 0
		if vnet {
			vl = VnetHdrLen
		}
		decodeV2(slot, loadStatus(slot), vl, &f)
		assert.Equal(t, frame, f.Data)
		assert.Equal(t, len(frame), f.Len)
		assert.Equal(t, len(frame), f.SnapLen)
		assert.Equal(t, StatusVLANValid|StatusVLANTPIDValid|StatusCsumNotReady, f.Status)
		assert.Equal(t, uint16(42), f.VLANTCI)
		assert.Equal(t, uint16(unix.ETH_P_8021AD), f.VLANTPID)
		assert.Equal(t, PacketOtherHost, f.PacketType)
		assert.Equal(t, 7, f.Ifindex)
		assert.Equal(t, int64(1700000000), f.Timestamp().Unix())
		assert.Equal(t, 123, f.Timestamp().Nanosecond())
		h, ok := f.VnetHdr()
		assert.Equal(t, vnet, ok)
		if vnet {
			assert.Equal(t, VnetHdr{Flags: VnetNeedsCsum, CsumStart: 34, CsumOffset: 16}, h)
			assert.Equal(t, append(append([]byte(nil), f.Vnet...), frame...), f.WithVnet())
		} else {
			assert.Equal(t, frame, f.WithVnet())
		}
	}
}

func TestDecodeV3(t *testing.T) {
	frames := [][]byte{[]byte("first frame"), []byte("second, longer frame"), []byte("3")}
	r := v3RX(v3Block(frames, true, 4096), true)
	var f Frame
	for i, want := range frames {
		require.True(t, r.Next(&f), "frame %d", i)
		assert.Equal(t, want, f.Data)
		assert.Equal(t, StatusVLANValid|StatusBlockTimeout, f.Status, "the block's timeout flag is added")
		assert.Equal(t, uint16(100+i), f.VLANTCI)
		assert.Equal(t, uint16(unix.ETH_P_8021Q), f.VLANTPID)
		assert.Equal(t, PacketHost, f.PacketType)
		assert.Equal(t, 3, f.Ifindex)
		assert.Len(t, f.Vnet, VnetHdrLen)
	}
	assert.False(t, r.Next(&f), "the block is handed out entirely")
	assert.False(t, r.ready())
	assert.Equal(t, 1, r.done)
	require.NoError(t, r.Release())
	assert.Equal(t, uint32(unix.TP_STATUS_KERNEL), loadStatus(r.mem[tpacket.BlockStatusOff:]), "released to the kernel")
	assert.False(t, r.Next(&f))
}

// TestV3PartialBlock checks that a block is released only once all its frames are handed out.
func TestV3PartialBlock(t *testing.T) {
	r := v3RX(v3Block([][]byte{[]byte("a"), []byte("b")}, false, 4096), false)
	var f Frame
	require.True(t, r.Next(&f))
	require.NoError(t, r.Release())
	assert.Equal(t, uint32(unix.TP_STATUS_USER|unix.TP_STATUS_BLK_TMO), loadStatus(r.mem[tpacket.BlockStatusOff:]), "half read: still ours")
	assert.True(t, r.ready())
	require.True(t, r.Next(&f))
	assert.Equal(t, []byte("b"), f.Data)
	require.NoError(t, r.Release())
	assert.Equal(t, uint32(unix.TP_STATUS_KERNEL), loadStatus(r.mem[tpacket.BlockStatusOff:]))
}

// checkFrame asserts that every slice of f lies within mem.
func checkFrame(t *testing.T, mem []byte, f *Frame) {
	lo, hi := uintptr(unsafe.Pointer(unsafe.SliceData(mem))), uintptr(unsafe.Pointer(unsafe.SliceData(mem)))+uintptr(len(mem))
	within := func(b []byte) bool {
		if cap(b) == 0 {
			return true
		}
		p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
		return p >= lo && p+uintptr(cap(b)) <= hi
	}
	require.True(t, within(f.Data), "Data within the ring")
	require.Equal(t, len(f.Data), cap(f.Data), "Data cannot grow into the next slot")
	require.Equal(t, f.SnapLen, len(f.Data))
	if f.Vnet != nil {
		require.Len(t, f.Vnet, VnetHdrLen)
		require.True(t, within(f.Vnet))
		require.Len(t, f.WithVnet(), VnetHdrLen+f.SnapLen)
		_, ok := f.VnetHdr()
		require.True(t, ok)
	}
	_ = f.Truncated()
	_ = f.Timestamp()
	_ = f.Status.String()
}

func FuzzDecodeV2(f *testing.F) {
	f.Add(v2Slot([]byte("a test frame of some length"), false, 128), false)
	f.Add(v2Slot([]byte("a test frame of some length"), true, 128), true)
	f.Add(v2Slot(make([]byte, 200), true, 128), true) // snaplen past the slot
	f.Fuzz(func(t *testing.T, data []byte, vnet bool) {
		if len(data) > 1<<16 {
			return
		}
		slot := aligned(data, tpacket.V2HdrLen)
		vl := 0
		if vnet {
			vl = VnetHdrLen
		}
		var fr Frame
		decodeV2(slot, loadStatus(slot), vl, &fr)
		checkFrame(t, slot, &fr)
	})
}

func FuzzRXV3(f *testing.F) {
	f.Add(v3Block([][]byte{[]byte("one"), []byte("two")}, false, 512), false)
	f.Add(v3Block([][]byte{[]byte("one"), make([]byte, 300), []byte("three")}, true, 1024), true)
	f.Fuzz(func(t *testing.T, data []byte, vnet bool) {
		if len(data) > 1<<16 {
			return
		}
		block := aligned(data, 64)
		r := v3RX(block, vnet)
		var fr Frame
		for i := 0; r.Next(&fr); i++ {
			require.Less(t, i, len(block), "frames advance through the block")
			checkFrame(t, block, &fr)
		}
		require.NoError(t, r.Release())
		require.False(t, r.Next(&fr))
	})
}

func FuzzVnetHdr(f *testing.F) {
	f.Add([]byte{1, 1, 66, 0, 0xa8, 5, 34, 0, 16, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h VnetHdr
		if err := h.Unmarshal(b); err != nil {
			require.Less(t, len(b), VnetHdrLen)
			return
		}
		out := make([]byte, VnetHdrLen)
		h.Put(out)
		require.Equal(t, b[:VnetHdrLen], out)
	})
}

func FuzzCheckTX(f *testing.F) {
	f.Add(make([]byte, 60), false, uint16(1500))
	f.Add(append([]byte{1, 1, 54, 0, 0xa8, 5, 34, 0, 16, 0}, make([]byte, 3000)...), true, uint16(1500))
	f.Fuzz(func(t *testing.T, p []byte, vnet bool, mtu uint16) {
		m := max(int(mtu), minMTU)
		err := checkTX(p, vnet, m)
		if err != nil {
			require.True(t, err == ErrOversize || err == ErrMalformed)
			return
		}
		n := len(p)
		var h VnetHdr
		if vnet {
			require.NoError(t, h.Unmarshal(p))
			n -= VnetHdrLen
			require.LessOrEqual(t, int(h.HdrLen), n)
			if h.GSOType == VnetGSONone {
				require.LessOrEqual(t, n, m+18)
			} else {
				require.NotZero(t, h.GSOSize)
				require.NotEqual(t, uint16(0xffff), h.GSOSize)
			}
			if h.Flags&VnetNeedsCsum != 0 {
				require.LessOrEqual(t, int(h.CsumStart)+int(h.CsumOffset)+2, n)
			}
		} else {
			require.LessOrEqual(t, n, m+18)
		}
		require.GreaterOrEqual(t, n, 14)
	})
}

func TestCheckTX(t *testing.T) {
	eth := func(n int, ethertype uint16) []byte {
		f := make([]byte, n)
		binary.BigEndian.PutUint16(f[12:], ethertype)
		return f
	}
	vnet := func(h VnetHdr, n int) []byte {
		p := make([]byte, VnetHdrLen+n)
		h.Put(p)
		return p
	}
	tcp := VnetHdr{Flags: VnetNeedsCsum, GSOType: VnetGSOTCPv4, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	for _, tc := range []struct {
		name string
		p    []byte
		vnet bool
		want error
	}{
		{"minimum", eth(14, 0x0800), false, nil},
		{"short", eth(14, 0x0800)[:13], false, ErrMalformed},
		{"full MTU", eth(1514, 0x0800), false, nil},
		{"above MTU", eth(1515, 0x0800), false, ErrOversize},
		{"802.1Q above MTU by its tag", eth(1518, unix.ETH_P_8021Q), false, nil},
		{"802.1Q above MTU by more", eth(1519, unix.ETH_P_8021Q), false, ErrOversize},
		{"802.1ad above MTU by its tag", eth(1518, unix.ETH_P_8021AD), false, ErrOversize},
		{"vnet: no header", make([]byte, 9), true, ErrMalformed},
		{"vnet: short frame", vnet(VnetHdr{}, 13), true, ErrMalformed},
		{"vnet: plain frame", vnet(VnetHdr{}, 1514), true, nil},
		{"vnet: plain frame with a tag's room", vnet(VnetHdr{}, 1518), true, nil},
		{"vnet: plain frame above MTU", vnet(VnetHdr{}, 1519), true, ErrOversize},
		{"vnet: checksum only", vnet(VnetHdr{Flags: VnetNeedsCsum, CsumStart: 34, CsumOffset: 16}, 60), true, nil},
		{"vnet: checksum beyond frame", vnet(VnetHdr{Flags: VnetNeedsCsum, CsumStart: 34, CsumOffset: 16}, 51), true, ErrMalformed},
		{"vnet: hdr_len beyond frame", vnet(VnetHdr{HdrLen: 100}, 60), true, ErrMalformed},
		{"vnet: TCP GSO super-frame", vnet(tcp, 65000), true, nil},
		{"vnet: TCP GSO with ECN", vnet(VnetHdr{Flags: VnetNeedsCsum, GSOType: VnetGSOTCPv6 | VnetGSOECN, GSOSize: 1428, CsumStart: 54, CsumOffset: 16}, 9000), true, nil},
		{"vnet: GSO size 0", vnet(VnetHdr{GSOType: VnetGSOTCPv4}, 9000), true, ErrMalformed},
		{"vnet: GSO_BY_FRAGS", vnet(VnetHdr{GSOType: VnetGSOTCPv4, GSOSize: 0xffff}, 9000), true, ErrMalformed},
		{"vnet: TCP checksum elsewhere", vnet(VnetHdr{Flags: VnetNeedsCsum, GSOType: VnetGSOTCPv4, GSOSize: 1448, CsumStart: 34, CsumOffset: 6}, 9000), true, ErrMalformed},
		{"vnet: UDP L4 GSO", vnet(VnetHdr{Flags: VnetNeedsCsum, GSOType: VnetGSOUDPL4, GSOSize: 1472, CsumStart: 34, CsumOffset: 6}, 9000), true, nil},
		{"vnet: UDP L4 GSO without checksum", vnet(VnetHdr{GSOType: VnetGSOUDPL4, GSOSize: 1472}, 9000), true, ErrMalformed},
		{"vnet: ECN alone", vnet(VnetHdr{GSOType: VnetGSOECN}, 60), true, ErrMalformed},
		{"vnet: unknown GSO type", vnet(VnetHdr{GSOType: 2, GSOSize: 1000}, 9000), true, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, checkTX(tc.p, tc.vnet, 1500))
		})
	}
}
