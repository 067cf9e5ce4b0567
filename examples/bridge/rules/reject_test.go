package rules

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parsedReply is a reject frame taken apart by hand, without Decode, so the
// test does not trust the code it checks.
type parsedReply struct {
	dstMAC, srcMAC [6]byte
	tags           []byte // raw VLAN tags
	src, dst       netip.Addr
	ttl            uint8
	proto          uint8
	ipHeader       []byte
	l4             []byte
}

func parseReply(t *testing.T, b []byte) parsedReply {
	t.Helper()
	var r parsedReply
	require.GreaterOrEqual(t, len(b), 14)
	copy(r.dstMAC[:], b[0:6])
	copy(r.srcMAC[:], b[6:12])
	off := 12
	for binary.BigEndian.Uint16(b[off:]) == etherTypeVLAN || binary.BigEndian.Uint16(b[off:]) == etherTypeQinQ {
		r.tags = append(r.tags, b[off:off+4]...)
		off += 4
	}
	et := binary.BigEndian.Uint16(b[off:])
	ip := b[off+2:]
	switch et {
	case etherTypeIPv4:
		require.Equal(t, byte(0x45), ip[0], "version 4, no options")
		total := int(binary.BigEndian.Uint16(ip[2:]))
		require.Equal(t, len(ip), total, "IPv4 total length covers exactly the rest of the frame")
		require.True(t, csumOK(nil, ip[:20]), "IPv4 header checksum")
		r.ttl, r.proto = ip[8], ip[9]
		r.src = netip.AddrFrom4([4]byte(ip[12:16]))
		r.dst = netip.AddrFrom4([4]byte(ip[16:20]))
		r.ipHeader, r.l4 = ip[:20], ip[20:]
	case etherTypeIPv6:
		require.Equal(t, byte(0x60), ip[0]&0xf0)
		require.Equal(t, len(ip)-40, int(binary.BigEndian.Uint16(ip[4:])), "IPv6 payload length")
		r.proto, r.ttl = ip[6], ip[7]
		r.src = netip.AddrFrom16([16]byte(ip[8:24]))
		r.dst = netip.AddrFrom16([16]byte(ip[24:40]))
		r.ipHeader, r.l4 = ip[:40], ip[40:]
	default:
		t.Fatalf("ethertype %#x", et)
	}
	return r
}

type tcpReply struct {
	sport, dport uint16
	seq, ack     uint32
	flags        uint8
}

func parseTCPReply(t *testing.T, r parsedReply) tcpReply {
	t.Helper()
	require.Equal(t, uint8(protoTCP), r.proto)
	require.Len(t, r.l4, 20)
	require.Equal(t, byte(5<<4), r.l4[12], "data offset 5, no options")
	require.True(t, csumOK(pseudo(r.src, r.dst, protoTCP, len(r.l4)), r.l4), "TCP checksum")
	return tcpReply{
		sport: binary.BigEndian.Uint16(r.l4[0:]),
		dport: binary.BigEndian.Uint16(r.l4[2:]),
		seq:   binary.BigEndian.Uint32(r.l4[4:]),
		ack:   binary.BigEndian.Uint32(r.l4[8:]),
		flags: r.l4[13],
	}
}

func TestBuildRejectTCP(t *testing.T) {
	qinq := []vlanTag{{etherTypeQinQ, 0x6000 | 100}, {etherTypeVLAN, 200}}
	ext := []extHdr{{typ: ipv6HopByHop, size: 8}, {typ: ipv6DestOpts, size: 16}}
	tests := []struct {
		name     string
		frame    frameSpec
		toSource tcpReply
		toDest   tcpReply
	}{
		{
			name:     "established with data",
			frame:    frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, sport: 40000, dport: 80, seq: 1000, ack: 2000, flags: TCPAck | TCPPsh, payload: make([]byte, 100)},
			toSource: tcpReply{sport: 80, dport: 40000, seq: 2000, ack: 0, flags: TCPRst},
			toDest:   tcpReply{sport: 40000, dport: 80, seq: 1000, ack: 2000, flags: TCPRst | TCPAck},
		},
		{
			name:     "syn",
			frame:    frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, sport: 40000, dport: 23, seq: 5000, flags: TCPSyn},
			toSource: tcpReply{sport: 23, dport: 40000, seq: 0, ack: 5001, flags: TCPRst | TCPAck},
			// toDest: none, the destination has no connection to reset
		},
		{
			name:     "syn with data: the SYN and each byte count",
			frame:    frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, sport: 40000, dport: 23, seq: 5000, flags: TCPSyn, payload: make([]byte, 10)},
			toSource: tcpReply{sport: 23, dport: 40000, seq: 0, ack: 5011, flags: TCPRst | TCPAck},
		},
		{
			name:     "no ACK bit: a spoofed acknowledgment field is not copied",
			frame:    frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, sport: 40000, dport: 23, seq: 5000, ack: 0xdeadbeef, flags: TCPSyn},
			toSource: tcpReply{sport: 23, dport: 40000, seq: 0, ack: 5001, flags: TCPRst | TCPAck},
		},
		{
			name:     "fin without ack",
			frame:    frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, sport: 1, dport: 2, seq: 0xffffffff, flags: TCPFin, payload: make([]byte, 4)},
			toSource: tcpReply{sport: 2, dport: 1, seq: 0, ack: 4, flags: TCPRst | TCPAck},
		},
		{
			name:     "syn-ack: SEG.ACK becomes the sequence number",
			frame:    frameSpec{src: "10.0.0.2", dst: "10.0.0.1", proto: protoTCP, sport: 23, dport: 40000, seq: 9000, ack: 5001, flags: TCPSyn | TCPAck},
			toSource: tcpReply{sport: 40000, dport: 23, seq: 5001, flags: TCPRst},
			toDest:   tcpReply{sport: 23, dport: 40000, seq: 9000, ack: 5001, flags: TCPRst | TCPAck},
		},
		{
			name:     "fin with data and sequence wrap",
			frame:    frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, sport: 1, dport: 2, seq: 0xfffffffa, ack: 7, flags: TCPFin | TCPAck, payload: make([]byte, 10)},
			toSource: tcpReply{sport: 2, dport: 1, seq: 7, flags: TCPRst},
			toDest:   tcpReply{sport: 1, dport: 2, seq: 0xfffffffa, ack: 7, flags: TCPRst | TCPAck},
		},
		{
			name: "options and padding do not count as data",
			frame: frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, sport: 1, dport: 2, seq: 100, ack: 200, flags: TCPAck,
				ipOpts: 8, tcpOpts: 12, payload: []byte("abc"), pad: 20},
			toSource: tcpReply{sport: 2, dport: 1, seq: 200, flags: TCPRst},
			toDest:   tcpReply{sport: 1, dport: 2, seq: 100, ack: 200, flags: TCPRst | TCPAck},
		},
		{
			name: "ipv6 with extension headers and QinQ",
			frame: frameSpec{tags: qinq, src: "2001:db8::1", dst: "2001:db8::2", proto: protoTCP, sport: 443, dport: 50000, seq: 1, ack: 2,
				flags: TCPAck, ext: ext, payload: []byte("hello")},
			toSource: tcpReply{sport: 50000, dport: 443, seq: 2, flags: TCPRst},
			toDest:   tcpReply{sport: 443, dport: 50000, seq: 1, ack: 2, flags: TCPRst | TCPAck},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.frame.build()
			orig := append([]byte(nil), in...)
			src, dst := netip.MustParseAddr(tt.frame.src), netip.MustParseAddr(tt.frame.dst)
			var wantTags []byte
			for _, tag := range tt.frame.tags {
				wantTags = binary.BigEndian.AppendUint16(wantTags, tag.tpid)
				wantTags = binary.BigEndian.AppendUint16(wantTags, tag.id)
			}
			out := make([]byte, MaxRejectLen)

			n, err := BuildReject(in, ToSource, out)
			require.NoError(t, err)
			r := parseReply(t, out[:n])
			assert.Equal(t, macA, r.dstMAC, "back to the source's MAC")
			assert.Equal(t, macB, r.srcMAC)
			assert.Equal(t, wantTags, r.tags)
			assert.Equal(t, dst, r.src, "from the destination")
			assert.Equal(t, src, r.dst)
			assert.Equal(t, uint8(64), r.ttl)
			assert.Equal(t, tt.toSource, parseTCPReply(t, r))

			n, err = BuildReject(in, ToDestination, out)
			require.NoError(t, err)
			if tt.toDest == (tcpReply{}) {
				assert.Zero(t, n, "no RST towards the destination")
				return
			}
			r = parseReply(t, out[:n])
			assert.Equal(t, macB, r.dstMAC, "on to the destination's MAC")
			assert.Equal(t, macA, r.srcMAC)
			assert.Equal(t, wantTags, r.tags)
			assert.Equal(t, src, r.src, "from the source")
			assert.Equal(t, dst, r.dst)
			assert.Equal(t, tt.toDest, parseTCPReply(t, r))

			assert.Equal(t, orig, in, "the offending frame is not modified")
		})
	}
}

func TestBuildRejectUDP(t *testing.T) {
	t.Run("ipv4 port unreachable", func(t *testing.T) {
		f := frameSpec{tags: []vlanTag{{etherTypeVLAN, 42}}, src: "10.0.0.1", dst: "10.0.0.2", proto: protoUDP,
			sport: 40000, dport: 69, ipOpts: 4, payload: []byte("\x00\x01/etc/passwd\x00octet\x00"), pad: 10}
		in := f.build()
		out := make([]byte, MaxRejectLen)
		n, err := BuildReject(in, ToSource, out)
		require.NoError(t, err)
		r := parseReply(t, out[:n])
		assert.Equal(t, macA, r.dstMAC)
		assert.Equal(t, macB, r.srcMAC)
		assert.Equal(t, []byte{0x81, 0x00, 0, 42}, r.tags)
		assert.Equal(t, netip.MustParseAddr("10.0.0.2"), r.src)
		assert.Equal(t, netip.MustParseAddr("10.0.0.1"), r.dst)
		assert.Equal(t, uint8(protoICMP), r.proto)
		require.Len(t, r.l4, 8+24+8, "ICMP header, the 24-byte original IP header, 8 bytes of UDP")
		assert.Equal(t, []byte{3, 3}, r.l4[:2], "type 3 code 3")
		assert.Equal(t, []byte{0, 0, 0, 0}, r.l4[4:8])
		assert.True(t, csumOK(nil, r.l4), "ICMP checksum")
		origIP := in[18:]
		assert.Equal(t, origIP[:24+8], r.l4[8:], "quotes the original header and UDP header")

		n, err = BuildReject(in, ToDestination, out)
		assert.NoError(t, err)
		assert.Zero(t, n, "nothing is sent to the destination of a UDP packet")
	})

	t.Run("ipv6 port unreachable quotes what fits in 1280 bytes", func(t *testing.T) {
		for _, size := range []int{0, 100, 1232 - 48, 1232 - 48 + 1, 1400} {
			f := frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoUDP, sport: 1, dport: 53,
				ext: []extHdr{{typ: ipv6DestOpts, size: 8}}, payload: bytes.Repeat([]byte{0xab}, size), pad: 7}
			in := f.build()
			origIP := in[14 : len(in)-7]
			out := make([]byte, MaxRejectLen)
			n, err := BuildReject(in, ToSource, out)
			require.NoError(t, err)
			r := parseReply(t, out[:n])
			assert.Equal(t, netip.MustParseAddr("2001:db8::2"), r.src)
			assert.Equal(t, netip.MustParseAddr("2001:db8::1"), r.dst)
			assert.Equal(t, uint8(protoICMPv6), r.proto)
			assert.Equal(t, []byte{1, 4}, r.l4[:2], "type 1 code 4")
			assert.True(t, csumOK(pseudo(r.src, r.dst, protoICMPv6, len(r.l4)), r.l4), "ICMPv6 checksum")
			wantQuote := origIP[:min(len(origIP), 1280-48)]
			assert.Equal(t, wantQuote, r.l4[8:], "size %d", size)
			assert.LessOrEqual(t, len(r.ipHeader)+len(r.l4), 1280)
			if len(origIP) >= 1232 {
				assert.Equal(t, 1280, len(r.ipHeader)+len(r.l4))
			}
		}
	})
}

func TestMaxRejectLen(t *testing.T) {
	assert.Equal(t, 14+2*4+1280, MaxRejectLen)
}

func TestBuildRejectRefuses(t *testing.T) {
	out := make([]byte, MaxRejectLen)
	tcp := tcp4("10.0.0.1", "10.0.0.2", 1, 2, "x")
	rst := tcp
	rst.flags = TCPRst | TCPAck
	mcast := udp4("10.0.0.1", "224.0.0.251", 5353, 5353, "x")
	bcast := udp4("10.0.0.1", "255.255.255.255", 68, 67, "x")
	bcastMAC := udp4("10.0.0.1", "10.0.0.255", 1, 2, "x")
	bcastMAC.dstMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	unspecified := udp4("0.0.0.0", "10.0.0.2", 68, 67, "x")
	mcast6 := frameSpec{src: "fe80::1", dst: "ff02::fb", proto: protoUDP, sport: 5353, dport: 5353}
	tests := []struct {
		name  string
		frame []byte
		dir   Direction
		err   error
	}{
		{"reset", rst.build(), ToSource, ErrNotRejectable},
		{"icmp", frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoICMP, icmpType: 8}.build(), ToSource, ErrNotRejectable},
		{"other protocol", frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: 47}.build(), ToSource, ErrNotRejectable},
		{"later fragment", frameSpec{src: "10.0.0.1", dst: "10.0.0.2", proto: protoTCP, fragOff: 2, rawL4: true, payload: []byte("data")}.build(), ToSource, ErrNotRejectable},
		{"truncated tcp", tcp.build()[:14+20+10], ToDestination, ErrNotRejectable},
		{"not ip", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x06, 0, 0}, ToSource, ErrNotRejectable},
		{"multicast destination", mcast.build(), ToSource, ErrNotRejectable},
		{"broadcast destination", bcast.build(), ToSource, ErrNotRejectable},
		{"broadcast MAC", bcastMAC.build(), ToSource, ErrNotRejectable},
		{"unspecified source", unspecified.build(), ToSource, ErrNotRejectable},
		{"ipv6 multicast", mcast6.build(), ToSource, ErrNotRejectable},
		{"zero direction", tcp.build(), 0, ErrDirection},
		{"bad direction", tcp.build(), 3, ErrDirection},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := BuildReject(tt.frame, tt.dir, out)
			assert.ErrorIs(t, err, tt.err)
			assert.Zero(t, n)
		})
	}

	t.Run("short buffer", func(t *testing.T) {
		for _, f := range [][]byte{tcp.build(), udp4("10.0.0.1", "10.0.0.2", 1, 2, "x").build(),
			frameSpec{src: "2001:db8::1", dst: "2001:db8::2", proto: protoUDP, payload: make([]byte, 2000)}.build()} {
			n, err := BuildReject(f, ToSource, make([]byte, MaxRejectLen))
			require.NoError(t, err)
			_, err = BuildReject(f, ToSource, make([]byte, n-1))
			assert.ErrorIs(t, err, ErrShortBuffer)
		}
	})
}

// TestBuildRejectDecodes checks the reject frames with the package's own
// decoder too: they must come out as the offending packet's reverse.
func TestBuildRejectDecodes(t *testing.T) {
	out := make([]byte, MaxRejectLen)
	for name, frame := range testFrames() {
		var orig Packet
		require.True(t, orig.Decode(frame))
		for _, dir := range []Direction{ToSource, ToDestination} {
			n, err := BuildReject(frame, dir, out)
			if err != nil {
				assert.ErrorIs(t, err, ErrNotRejectable, name)
				continue
			}
			if n == 0 {
				continue
			}
			var p Packet
			require.True(t, p.Decode(out[:n]), name)
			assert.Equal(t, orig.VLANs(), p.VLANs(), name)
			if dir == ToSource {
				assert.Equal(t, orig.SrcIP, p.DstIP, name)
				assert.Equal(t, orig.DstIP, p.SrcIP, name)
			} else {
				assert.Equal(t, orig.SrcIP, p.SrcIP, name)
				assert.Equal(t, orig.DstIP, p.DstIP, name)
			}
			if p.Proto == protoTCP {
				assert.True(t, p.TCPFlags&TCPRst != 0, name)
				if dir == ToSource {
					assert.Equal(t, [2]uint16{orig.DstPort, orig.SrcPort}, [2]uint16{p.SrcPort, p.DstPort}, name)
				}
				_, err := BuildReject(out[:n], ToSource, make([]byte, MaxRejectLen))
				assert.ErrorIs(t, err, ErrNotRejectable, "a reset is never answered")
			}
		}
	}
}

func TestBuildRejectAllocs(t *testing.T) {
	out := make([]byte, MaxRejectLen)
	for name, frame := range testFrames() {
		assert.Zero(t, testing.AllocsPerRun(100, func() {
			_, _ = BuildReject(frame, ToSource, out)
			_, _ = BuildReject(frame, ToDestination, out)
		}), name)
	}
}
