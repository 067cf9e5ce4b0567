package peer

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ipv4UDP builds an untagged Ethernet/IPv4/UDP frame with a correct IP header checksum and a UDP
// checksum field holding only the pseudo-header sum, as checksum offload leaves it.
func ipv4UDP(payload int, opts []byte, partial bool) []byte {
	ihl := 20 + len(opts)
	f := make([]byte, 14+ihl+8+payload)
	copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00})
	ip := f[14:]
	ip[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(ip[2:], uint16(ihl+8+payload))
	binary.BigEndian.PutUint16(ip[4:], 0x1234)
	ip[8], ip[9] = 64, 17
	copy(ip[12:], []byte{198, 18, 0, 1, 198, 18, 0, 2})
	copy(ip[20:], opts)
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum(0, ip[:ihl])))
	udp := ip[ihl:]
	binary.BigEndian.PutUint16(udp[0:], 4000)
	binary.BigEndian.PutUint16(udp[2:], 5000)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+payload))
	for i := range payload {
		udp[8+i] = byte(i*7 + 3)
	}
	pseudo := sum(0, ip[12:20]) + 17 + uint32(8+payload)
	if partial {
		binary.BigEndian.PutUint16(udp[6:], fold(pseudo))
	} else {
		binary.BigEndian.PutUint16(udp[6:], ^fold(sum(pseudo, udp)))
	}
	return f
}

// udpChecksumOK verifies a UDP/IPv4 checksum independently of completeChecksum.
func udpChecksumOK(f []byte) bool {
	_, n := l3(f)
	ip := f[n:]
	ihl := int(ip[0]&0xf) * 4
	udp := ip[ihl:binary.BigEndian.Uint16(ip[2:])]
	s := sum(0, ip[12:20]) + 17 + uint32(len(udp))
	return fold(sum(s, udp)) == 0xffff
}

func TestBuildVLANRestore(t *testing.T) {
	frame := ipv4UDP(30, nil, false)
	tests := []struct {
		name      string
		vlan      bool
		tpid, tci uint16
		vnet      bool
		wantTPID  uint16
	}{
		{"untagged", false, 0, 0, false, 0},
		{"802.1Q TCI 0", true, tpid8021Q, 0, false, tpid8021Q},
		{"802.1Q TCI 100", true, tpid8021Q, 100, false, tpid8021Q},
		{"802.1ad", true, tpid8021AD, 7, false, tpid8021AD},
		{"tag without TPID means 802.1Q", true, 0, 5, false, tpid8021Q},
		{"802.1ad with vnet", true, tpid8021AD, 9, true, tpid8021AD},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := inFrame{data: frame, wireLen: len(frame), vlan: tt.vlan, tpid: tt.tpid, tci: tt.tci}
			dst := make([]byte, 4096)
			n, hdr, out := build(dst, &in, egress{vnet: tt.vnet, mtu: 1500})
			require.Equal(t, built, out)
			got := dst[hdr:n]
			if !tt.vlan {
				assert.Equal(t, frame, got)
				return
			}
			assert.Equal(t, frame[:12], got[:12])
			assert.Equal(t, tt.wantTPID, binary.BigEndian.Uint16(got[12:]))
			assert.Equal(t, tt.tci, binary.BigEndian.Uint16(got[14:]))
			assert.Equal(t, frame[12:], got[16:])
		})
	}
}

func TestBuildVnetShiftsOffsets(t *testing.T) {
	frame := ipv4UDP(3000, nil, true)
	vnet := make([]byte, 10)
	vnet[0] = vnetFlagNeedsCsum
	vnet[1] = 1 // GSO TCPv4: not checked here, only the offsets
	binary.LittleEndian.PutUint16(vnet[2:], 66)
	binary.LittleEndian.PutUint16(vnet[4:], 1448)
	binary.LittleEndian.PutUint16(vnet[6:], 34)
	binary.LittleEndian.PutUint16(vnet[8:], 6)
	in := inFrame{data: frame, wireLen: len(frame), vnet: vnet, vlan: true, tpid: tpid8021Q, tci: 3}
	dst := make([]byte, 8192)
	n, hdr, out := build(dst, &in, egress{vnet: true, mtu: 1500})
	require.Equal(t, built, out, "a GSO frame is never oversize")
	assert.Equal(t, 10, hdr)
	assert.Equal(t, 10+len(frame)+4, n)
	assert.Equal(t, uint16(70), binary.LittleEndian.Uint16(dst[2:]), "hdr_len grows by the tag")
	assert.Equal(t, uint16(1448), binary.LittleEndian.Uint16(dst[4:]))
	assert.Equal(t, uint16(38), binary.LittleEndian.Uint16(dst[6:]), "csum_start grows by the tag")
	assert.Equal(t, uint16(6), binary.LittleEndian.Uint16(dst[8:]))
	assert.Equal(t, vnet[2:4], []byte{66, 0}, "the received header is not modified")
}

func TestBuildOutcomes(t *testing.T) {
	full := ipv4UDP(1472, nil, false) // 1514 bytes: exactly MTU 1500
	tests := []struct {
		name string
		in   inFrame
		eg   egress
		dst  int
		want outcome
	}{
		{"fits", inFrame{data: full, wireLen: len(full)}, egress{mtu: 1500}, 9000, built},
		{"truncated capture", inFrame{data: full[:100], wireLen: len(full)}, egress{mtu: 1500}, 9000, truncated},
		{"runt", inFrame{data: full[:10], wireLen: 10}, egress{mtu: 1500}, 9000, malformed},
		{"slot too small", inFrame{data: full, wireLen: len(full)}, egress{mtu: 1500}, 1000, oversize},
		{"802.1Q at full MTU fits", inFrame{data: full, wireLen: len(full), vlan: true, tpid: tpid8021Q}, egress{mtu: 1500}, 9000, built},
		{"802.1ad IPv4 at full MTU without vnet is fragmented", inFrame{data: full, wireLen: len(full), vlan: true, tpid: tpid8021AD},
			egress{mtu: 1500}, 9000, needsFrag},
		{"802.1ad at full MTU with vnet fits", inFrame{data: full, wireLen: len(full), vlan: true, tpid: tpid8021AD},
			egress{mtu: 1500, vnet: true}, 9000, built},
		{"above MTU, IPv4 without DF: fragment", inFrame{data: full, wireLen: len(full)}, egress{mtu: 1000}, 9000, needsFrag},
		{"non-IP above MTU", inFrame{data: append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x88, 0xb5}, make([]byte, 1600)...), wireLen: 1614},
			egress{mtu: 1500}, 9000, oversize},
		{"unfinished checksum on non-IP", inFrame{data: full[:60:60], wireLen: 60, csumNotReady: true}, egress{mtu: 1500}, 9000, malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := append([]byte(nil), tt.in.data...)
			tt.in.data = data
			if tt.name == "unfinished checksum on non-IP" {
				binary.BigEndian.PutUint16(data[12:], 0x88b5)
			}
			_, _, out := build(make([]byte, tt.dst), &tt.in, tt.eg)
			assert.Equal(t, tt.want, out)
		})
	}
}

func TestCompleteChecksum(t *testing.T) {
	f := ipv4UDP(101, nil, true)
	require.False(t, udpChecksumOK(f))
	in := inFrame{data: f, wireLen: len(f), csumNotReady: true}
	dst := make([]byte, 2048)
	n, hdr, out := build(dst, &in, egress{mtu: 1500})
	require.Equal(t, built, out)
	assert.True(t, udpChecksumOK(dst[hdr:n]))

	// Tagged: the checksum is found behind the tag.
	in.vlan, in.tpid, in.tci = true, tpid8021AD, 1
	n, hdr, out = build(dst, &in, egress{mtu: 1500})
	require.Equal(t, built, out)
	assert.True(t, udpChecksumOK(dst[hdr:n]))
}

func TestFragment(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []byte
		mtu  int
		vnet bool
		vlan bool
	}{
		{"4000 bytes at MTU 1500", nil, 1500, false, false},
		{"with vnet and tag", nil, 1500, true, true},
		{"options, copied and not", []byte{0x07, 3, 0, 1, 0x94, 4, 0, 0}, 576, false, false},
		{"odd MTU", nil, 1001, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ipv4UDP(4000-8, tc.opts, false)
			in := inFrame{data: f, wireLen: len(f), vlan: tc.vlan, tpid: tpid8021Q, tci: 4}
			big := make([]byte, 70000)
			n, _, out := build(big, &in, egress{mtu: tc.mtu, vnet: tc.vnet})
			require.Equal(t, needsFrag, out)
			whole := big[:n]
			var fr fragmenter
			require.Equal(t, built, fr.reset(whole, tc.mtu, tc.vnet))
			k := fr.count()
			_, l2 := l3(whole)
			var payload []byte
			next := 0
			for i := range 100 {
				slot := make([]byte, 2048)
				m := fr.next(slot)
				if m == 0 {
					break
				}
				frag := slot[:m]
				if tc.vnet {
					assert.Equal(t, make([]byte, 10), frag[:10])
					frag = frag[10:]
				}
				assert.Equal(t, whole[:l2], frag[:l2], "fragment %d keeps the L2 header", i)
				ip := frag[l2:]
				ihl := int(ip[0]&0xf) * 4
				assert.LessOrEqual(t, len(ip), tc.mtu)
				assert.Equal(t, len(ip), int(binary.BigEndian.Uint16(ip[2:])))
				assert.Equal(t, uint16(0xffff), fold(sum(0, ip[:ihl])), "header checksum")
				fo := binary.BigEndian.Uint16(ip[6:])
				assert.Equal(t, next, int(fo&0x1fff)*8)
				if i > 0 && len(tc.opts) > 0 {
					assert.Equal(t, 24, ihl, "only the copied option survives")
					assert.Equal(t, byte(0x94), ip[20])
				}
				payload = append(payload, ip[ihl:]...)
				next += len(ip) - ihl
				if fo&0x2000 == 0 {
					assert.Zero(t, fr.next(slot), "nothing after the last fragment")
					break
				}
			}
			ihl := 20 + len(tc.opts)
			assert.True(t, bytes.Equal(whole[l2+ihl:], payload), "fragments reassemble to the datagram")
			assert.Equal(t, k, checkFragments(t, whole, tc.mtu, tc.vnet), "count predicts the fragments")
		})
	}
}

// checkFragments fragments the IPv4 frame whole for mtu and checks every fragment against it
// independently of the fragmenter: each fits the MTU and has a valid header checksum; ID, TOS,
// TTL, protocol, addresses, the DF and reserved bits and the L2 header are the datagram's;
// offsets are contiguous from the datagram's own, never wrapping into the flags; MF is set on all
// but the last, which has the datagram's own; the payloads add up to the datagram's. It returns
// how many fragments there were.
func checkFragments(t testing.TB, whole []byte, mtu int, vnet bool) int {
	t.Helper()
	var fr fragmenter
	require.Equal(t, built, fr.reset(whole, mtu, vnet))
	_, l2 := l3(whole)
	oip := whole[l2:]
	oihl := int(oip[0]&0xf) * 4
	ofo := binary.BigEndian.Uint16(oip[6:])
	next := int(ofo&0x1fff) * 8
	var payload []byte
	slot := make([]byte, mtu+l2+vnetHdrLen+64)
	n := 0
	for ; n < 1<<14; n++ {
		m := fr.next(slot)
		if m == 0 {
			break
		}
		frag := slot[:m]
		if vnet {
			require.Equal(t, make([]byte, vnetHdrLen), frag[:vnetHdrLen])
			frag = frag[vnetHdrLen:]
		}
		require.Equal(t, whole[:l2], frag[:l2], "fragment %d: L2 header", n)
		ip := frag[l2:]
		ihl := int(ip[0]&0xf) * 4
		require.Equal(t, byte(4), ip[0]>>4)
		require.LessOrEqual(t, len(ip), mtu, "fragment %d fits the MTU", n)
		require.Equal(t, len(ip), int(binary.BigEndian.Uint16(ip[2:])))
		require.Equal(t, uint16(0xffff), fold(sum(0, ip[:ihl])), "fragment %d: header checksum", n)
		require.Equal(t, oip[1], ip[1], "TOS")
		require.Equal(t, oip[4:6], ip[4:6], "identification")
		require.Equal(t, oip[8:10], ip[8:10], "TTL and protocol")
		require.Equal(t, oip[12:20], ip[12:20], "addresses")
		fo := binary.BigEndian.Uint16(ip[6:])
		require.Equal(t, ofo&0xc000, fo&0xc000, "fragment %d keeps DF and the reserved bit", n)
		require.Equal(t, next, int(fo&0x1fff)*8, "fragment %d: offset", n)
		if n == 0 {
			require.Equal(t, oip[20:oihl], ip[20:ihl], "the first fragment keeps every option")
		}
		payload = append(payload, ip[ihl:]...)
		next += len(ip) - ihl
		require.LessOrEqual(t, next, maxIPv4-20)
		if fo&0x2000 == 0 {
			require.Zero(t, fr.next(slot), "nothing after the last fragment")
			n++
			break
		}
		if len(payload) == len(oip)-oihl {
			require.NotZero(t, ofo&0x2000, "the last fragment keeps MF only from a datagram that had it")
			require.Zero(t, fr.next(slot))
			n++
			break
		}
		require.NotEmpty(t, ip[ihl:], "fragment %d carries payload", n)
	}
	require.Equal(t, oip[oihl:binary.BigEndian.Uint16(oip[2:])], payload, "fragments reassemble to the datagram")
	return n
}

// TestFragmentKeepsHeader refragments datagrams as the kernel hands them over after reassembly
// (DF set or not), and datagrams that are themselves fragments at an offset.
func TestFragmentKeepsHeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint16 // the flags and offset field
		mtu   int
	}{
		{"reassembled with DF", 0x4000, 1500},
		{"reassembled without DF", 0, 1280},
		{"reserved bit", 0x8000, 1500},
		{"a middle fragment", 0x2000 | 100, 1000},
		{"a last fragment at a high offset", 7000, 576},
		{"DF and MF", 0x6000 | 3, 1500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ipv4UDP(5000, []byte{0x94, 4, 0, 0, 0x07, 3, 0, 1}, false)
			ip := f[14:]
			binary.BigEndian.PutUint16(ip[6:], tc.flags)
			ip[1], ip[8] = 0xb8, 3
			ip[10], ip[11] = 0, 0
			binary.BigEndian.PutUint16(ip[10:], ^fold(sum(0, ip[:28])))
			checkFragments(t, f, tc.mtu, false)
			checkFragments(t, f, tc.mtu, true)
		})
	}
}

// TestFragmentOffsetWraps is issue 14's finding: refragmenting a datagram that is itself a
// fragment at a high offset made offsets past 0x1fff wrap into the flags (0x202e). It is refused
// as malformed and nothing is written.
func TestFragmentOffsetWraps(t *testing.T) {
	f := ipv4UDP(3000, nil, false)
	ip := f[14:]
	binary.BigEndian.PutUint16(ip[6:], 0x1f00) // offset 63488: the datagram would end at 66516
	var fr fragmenter
	assert.Equal(t, malformed, fr.reset(f, 1500, false))

	binary.BigEndian.PutUint16(ip[6:], uint16((maxIPv4-20-3008)/8)) // ends exactly at the limit
	assert.Equal(t, built, fr.reset(f, 1500, false))
	checkFragments(t, f, 1500, false)
}

// TestFragmentRefusesHopelessMTU: an MTU that leaves no room for 8 bytes after the header.
func TestFragmentRefusesHopelessMTU(t *testing.T) {
	f := ipv4UDP(3000, make([]byte, 40), false)
	var fr fragmenter
	assert.Equal(t, oversize, fr.reset(f, 64, false))
	assert.Equal(t, malformed, fr.reset(f[:20], 1500, false))
}

func TestReassembled(t *testing.T) {
	big := ipv4UDP(3000, nil, false)
	df := ipv4UDP(3000, nil, false)
	df[14+6] = 0x40
	frag := ipv4UDP(3000, nil, false)
	frag[14+6] = 0x20
	tagged := append(append(append([]byte{}, big[:12]...), 0x81, 0, 0, 5), big[12:]...)
	v6 := append([]byte{}, big...)
	v6[12], v6[13] = 0x86, 0xdd
	for _, tc := range []struct {
		name string
		f    []byte
		mtu  int
		want bool
	}{
		{"above the MTU", big, 1500, true},
		{"with DF", df, 1500, true},
		{"behind an inner tag", tagged, 1500, true},
		{"fits the MTU", big, 9000, false},
		{"a fragment", frag, 1500, false},
		{"not IPv4", v6, 1500, false},
		{"truncated", big[:1000], 500, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, reassembled(tc.f, tc.mtu))
		})
	}
}

// TestFragmentRefusesDF: a DF datagram above the MTU is oversize, unless the kernel reassembled
// it (its fragments carried DF and fitted), when it is fragmented again.
func TestFragmentRefusesDF(t *testing.T) {
	f := ipv4UDP(3000, nil, false)
	f[14+6] |= 0x40
	in := inFrame{data: f, wireLen: len(f)}
	_, _, out := build(make([]byte, 9000), &in, egress{mtu: 1500})
	assert.Equal(t, oversize, out)
	in.reassembled = true
	dst := make([]byte, 9000)
	n, _, out := build(dst, &in, egress{mtu: 1500})
	require.Equal(t, needsFrag, out)
	assert.Equal(t, 3, checkFragments(t, dst[:n], 1500, false))
}

func TestBuildAllocatesNothing(t *testing.T) {
	f := ipv4UDP(500, nil, true)
	in := inFrame{data: f, wireLen: len(f), vlan: true, tpid: tpid8021Q, csumNotReady: true}
	dst := make([]byte, 2048)
	assert.Zero(t, testing.AllocsPerRun(1000, func() { build(dst, &in, egress{mtu: 1500}) }))
}

// FuzzBuild feeds arbitrary frame metadata (VLAN tags, vnet headers with any GSO fields,
// truncated captures) through the TX slot code: it must never panic, never write past the slot,
// and what it builds must be the received frame with the tag restored.
func FuzzBuild(f *testing.F) {
	f.Add(ipv4UDP(100, nil, true), 0, []byte{1, 1, 66, 0, 0xa8, 5, 34, 0, 16, 0}, true, uint16(0x8100), uint16(5), true, 1500, true, 4096)
	f.Add(ipv4UDP(1472, nil, false), 1514, []byte{}, false, uint16(0), uint16(0), false, 1500, false, 2048)
	f.Add(ipv4UDP(4000, []byte{0x94, 4, 0, 0}, false), 0, []byte{}, true, uint16(0x88a8), uint16(0), false, 576, false, 70000)
	f.Add([]byte{1, 2, 3}, 3, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false, uint16(0), uint16(0), true, 1500, true, 100)
	f.Fuzz(func(t *testing.T, data []byte, wireLen int, vnet []byte, vlan bool, tpid, tci uint16, csum bool, mtu int, egVnet bool, slot int) {
		if wireLen <= 0 {
			wireLen = len(data)
		}
		if mtu < 68 || mtu > 65535 || slot < 0 || slot > 1<<17 {
			return
		}
		orig := append([]byte(nil), data...)
		in := inFrame{data: data, wireLen: wireLen, vnet: vnet, vlan: vlan, tpid: tpid, tci: tci, csumNotReady: csum}
		// As a worker with defrag on judges it (GSO aside).
		in.reassembled = reassembled(data, mtu)
		dst := make([]byte, slot)
		n, hdr, out := build(dst, &in, egress{vnet: egVnet, mtu: mtu})
		require.True(t, bytes.Equal(orig, data), "the received frame is never modified")
		switch out {
		case built:
			require.LessOrEqual(t, n, slot)
			got := dst[hdr:n]
			tag := 0
			if vlan {
				tag = 4
			}
			require.Equal(t, len(data)+tag, len(got))
			require.Equal(t, data[:12], got[:12])
			if !csum || egVnet {
				require.Equal(t, data[12:], got[12+tag:])
			}
		case needsFrag:
			var fr fragmenter
			if fr.reset(dst[:n], mtu, egVnet) != built {
				return
			}
			require.Positive(t, checkFragments(t, dst[:n], mtu, egVnet))
		case truncated:
			require.Less(t, len(data), wireLen)
		}
	})
}

// FuzzFragment fragments arbitrary IPv4 headers and payloads (any options, flags, offsets and
// lengths) for any MTU: the fragmenter refuses what it cannot fragment, and what it writes passes
// checkFragments.
func FuzzFragment(f *testing.F) {
	f.Add(ipv4UDP(4000, nil, false)[14:], 1500, false)
	f.Add(ipv4UDP(3000, []byte{0x94, 4, 0, 0, 0x07, 3, 0, 1}, false)[14:], 576, true)
	big := ipv4UDP(3000, nil, false)
	binary.BigEndian.PutUint16(big[14+6:], 0x3f00)
	f.Add(big[14:], 1500, false)
	f.Fuzz(func(t *testing.T, ip []byte, mtu int, vnet bool) {
		if mtu < 68 || mtu > 65535 || len(ip) > 65535 {
			return
		}
		fr := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}, ip...)
		if len(ip) >= 4 {
			binary.BigEndian.PutUint16(fr[14+2:], uint16(len(ip))) // as fragmentable requires
		}
		if !fragmentable(fr, true) {
			return
		}
		var g fragmenter
		if g.reset(fr, mtu, vnet) != built {
			return
		}
		k := g.count()
		require.Equal(t, k, checkFragments(t, fr, mtu, vnet))
	})
}

// TestFragmentAllocatesNothing: refragmenting is on the hot path of a defrag bridge.
func TestFragmentAllocatesNothing(t *testing.T) {
	f := ipv4UDP(8000, []byte{0x94, 4, 0, 0, 0x07, 3, 0, 1}, false)
	f[14+6] = 0x40
	var fr fragmenter
	slot := make([]byte, 2048)
	assert.Zero(t, testing.AllocsPerRun(200, func() {
		if fr.reset(f, 1500, true) != built {
			t.Fatal("not fragmentable")
		}
		for range fr.count() {
			fr.next(slot)
		}
	}))
}

// TestFragMTU: every fragment of a tagged datagram fits the kernel's size check (maxFrame),
// whatever the tags and the vnet header.
func TestFragMTU(t *testing.T) {
	base := ipv4UDP(4000, nil, false)
	tag := func(f []byte, tpid uint16) []byte {
		return append(append(append([]byte{}, f[:12]...), byte(tpid>>8), byte(tpid), 0, 7), f[12:]...)
	}
	for _, tc := range []struct {
		name string
		f    []byte
		vnet bool
		want int
	}{
		{"untagged", base, false, 1500},
		{"802.1Q", tag(base, tpid8021Q), false, 1500},
		{"802.1ad", tag(base, tpid8021AD), false, 1496},
		{"802.1ad with vnet", tag(base, tpid8021AD), true, 1500},
		{"QinQ with vnet", tag(tag(base, tpid8021Q), tpid8021AD), true, 1496},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eg := egress{mtu: 1500, vnet: tc.vnet}
			mtu := fragMTU(tc.f, eg)
			assert.Equal(t, tc.want, mtu)
			var fr fragmenter
			require.Equal(t, built, fr.reset(tc.f, mtu, tc.vnet))
			slot := make([]byte, 2048)
			hdr := 0
			if tc.vnet {
				hdr = vnetHdrLen
			}
			for range fr.count() {
				m := fr.next(slot)
				require.NotZero(t, m)
				assert.LessOrEqual(t, m-hdr, maxFrame(slot[hdr:m], eg))
			}
			checkFragments(t, tc.f, mtu, tc.vnet)
		})
	}
}
