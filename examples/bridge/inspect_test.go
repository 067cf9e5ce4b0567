//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const evasionRules = `drop tcp any any -> any 8080 (msg:"forbidden tcp"; content:"forbidden"; sid:100;)
drop udp any any -> any 9999 (msg:"forbidden udp"; content:"forbidden"; sid:101;)
alert tcp any any -> any 8080 (msg:"request"; content:"GET"; flow:established,to_server; sid:102;)
`

var (
	ip6Client = [16]byte{0x20, 0x01, 0x00, 0x02, 15: 1}
	ip6Server = [16]byte{0x20, 0x01, 0x00, 0x02, 15: 2}
)

// eth wraps an IP packet in an Ethernet header.
func eth(src, dst [6]byte, ip []byte) []byte {
	f := make([]byte, 14, 14+len(ip))
	copy(f, dst[:])
	copy(f[6:], src[:])
	et := uint16(0x0800)
	if ip[0]>>4 == 6 {
		et = 0x86dd
	}
	binary.BigEndian.PutUint16(f[12:], et)
	return append(f, ip...)
}

// ip4 builds an IPv4 packet (a fragment when off > 0 or more).
func ip4(src, dst [4]byte, proto uint8, id uint16, off int, more bool, body []byte) []byte {
	p := make([]byte, 20, 20+len(body))
	p[0], p[8], p[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(p[4:], id)
	fo := uint16(off / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(p[6:], fo)
	copy(p[12:], src[:])
	copy(p[16:], dst[:])
	p = append(p, body...)
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	return p
}

// ip6 builds an IPv6 packet behind ndst destination-options headers, with a fragment header when
// frag is set.
func ip6(src, dst [16]byte, proto uint8, ndst int, frag bool, id uint32, off int, more bool, body []byte) []byte {
	p := make([]byte, 40)
	p[0], p[7] = 0x60, 64
	copy(p[8:], src[:])
	copy(p[24:], dst[:])
	nh := 6
	for range ndst {
		p[nh] = 60
		nh = len(p)
		p = append(p, 0, 0, 1, 4, 0, 0, 0, 0)
	}
	if frag {
		p[nh] = 44
		nh = len(p)
		fo := uint16(off)
		if more {
			fo |= 1
		}
		p = append(p, 0, 0, byte(fo>>8), byte(fo), byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	}
	p[nh] = proto
	p = append(p, body...)
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	return p
}

func udp(sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u, sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return append(u, payload...)
}

func tcp(sport, dport uint16, seq, ack uint32, flags uint8, payload []byte) []byte {
	t := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(t, sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12], t[13] = 5<<4, flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	return append(t, payload...)
}

// tcpConn drives one TCP connection through a handler: client on side A, server on side B.
type tcpConn struct {
	t          testing.TB
	h          verdict.Handler
	v6         bool
	cport      uint16
	cisn, sisn uint32
}

func (c *tcpConn) frame(fromClient bool, seq, ack uint32, flags uint8, payload []byte) *verdict.Packet {
	sp, dp, sm, dm, d := c.cport, uint16(8080), macClient, macServer, verdict.AToB
	if !fromClient {
		sp, dp, sm, dm, d = dp, sp, macServer, macClient, verdict.BToA
	}
	seg := tcp(sp, dp, seq, ack, flags, payload)
	var ip []byte
	switch {
	case c.v6 && fromClient:
		ip = ip6(ip6Client, ip6Server, 6, 0, false, 0, 0, false, seg)
	case c.v6:
		ip = ip6(ip6Server, ip6Client, 6, 0, false, 0, 0, false, seg)
	case fromClient:
		ip = ip4(ipClient, ipServer, 6, 1, 0, false, seg)
	default:
		ip = ip4(ipServer, ipClient, 6, 1, 0, false, seg)
	}
	return packet(eth(sm, dm, ip), d)
}

func (c *tcpConn) handshake() {
	c.t.Helper()
	require.Equal(c.t, verdict.Pass, c.h.Handle(c.frame(true, c.cisn, 0, 0x02, nil)))
	require.Equal(c.t, verdict.Pass, c.h.Handle(c.frame(false, c.sisn, c.cisn+1, 0x12, nil)))
	require.Equal(c.t, verdict.Pass, c.h.Handle(c.frame(true, c.cisn+1, c.sisn+1, 0x10, nil)))
}

// send sends client bytes at stream offset off and returns the verdict.
func (c *tcpConn) send(off int, data string) verdict.Verdict {
	return c.h.Handle(c.frame(true, c.cisn+1+uint32(off), c.sisn+1, 0x18, []byte(data)))
}

func (c *tcpConn) reply(data string) verdict.Verdict {
	return c.h.Handle(c.frame(false, c.sisn+1, c.cisn+1, 0x18, []byte(data)))
}

// TestInspectTCP: each evasion of the issue is blocked by the segment that completes the
// forbidden bytes, then the whole flow both ways; the same flows with other bytes pass whole.
func TestInspectTCP(t *testing.T) {
	type step struct {
		off  int
		data string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"one segment", []step{{0, "GET /forbidden HTTP/1.1\r\n"}}},
		{"two segments", []step{{0, "GET /forb"}, {9, "idden HTTP/1.1\r\n"}}},
		{"three segments", []step{{0, "GET /fo"}, {7, "rbid"}, {11, "den HTTP/1.1\r\n"}}},
		{"out of order", []step{{9, "idden HTTP/1.1\r\n"}, {0, "GET /forb"}}},
		{"out of order, three", []step{{11, "den HTTP/1.1\r\n"}, {7, "rbid"}, {0, "GET /fo"}}},
		{"overlap with other bytes", []step{{0, "GET /harmless HTTP/1.1\r\n"}, {0, "GET /forbidden HTTP/1.1\r\n"}}},
		{"overlap inside", []step{{0, "GET /forbXdden HTTP/1.1\r\n"}, {9, "i"}}},
	}
	for _, v6 := range []bool{false, true} {
		for i, tc := range cases {
			name := tc.name
			if v6 {
				name += "/v6"
			}
			t.Run(name, func(t *testing.T) {
				b, buf, _ := testBridge(t, evasionRules, peer.IPS, peer.IPS)
				c := &tcpConn{t: t, h: b.cfg.Verdict.New(0), v6: v6, cport: uint16(40000 + i), cisn: 0xfffffff0, sisn: 7}
				c.handshake()
				last := len(tc.steps) - 1
				for j, s := range tc.steps[:last] {
					assert.Equal(t, verdict.Pass, c.send(s.off, s.data), "step %d", j)
				}
				s := tc.steps[last]
				assert.Equal(t, verdict.Drop, c.send(s.off, s.data), "the completing segment")
				assert.Equal(t, verdict.Drop, c.send(s.off, s.data), "its retransmission")
				assert.Equal(t, verdict.Drop, c.reply("HTTP/1.1 200 OK\r\n"), "the flow, the other way")
				evs := waitEvents(t, b.eng, buf, int(b.eng.alerts.Load()))
				sids := map[uint32]string{}
				for _, ev := range evs {
					sids[ev.Alert.SignatureID] = ev.Alert.Action
				}
				assert.Equal(t, "blocked", sids[100], "the alert is in EVE")
				if strings.HasPrefix(tc.name, "overlap") {
					assert.Equal(t, "blocked", sids[2900003], "the overlap is named too")
				}

				// The same flow without the forbidden bytes passes, every segment.
				b, _, _ = testBridge(t, evasionRules, peer.IPS, peer.IPS)
				c.h = b.cfg.Verdict.New(0)
				c.handshake()
				for j, s := range tc.steps {
					data := strings.NewReplacer("forbidden", "fabulous!", "forb", "fabu", "idden", "lous!", "rbid", "bulo", "den", "us!", "fo", "fa").Replace(s.data)
					if tc.name == "overlap with other bytes" || tc.name == "overlap inside" {
						first := tc.steps[0].data
						data = first[s.off:min(len(first), s.off+len(s.data))] // an honest retransmission
					}
					assert.Equal(t, verdict.Pass, c.send(s.off, data), "benign step %d %q", j, data)
				}
				assert.Equal(t, verdict.Pass, c.reply("HTTP/1.1 200 OK\r\n"))
			})
		}
	}
}

// TestInspectFlowKeyword: flow:established,to_server matches requests of an established
// connection only.
func TestInspectFlowKeyword(t *testing.T) {
	b, buf, _ := testBridge(t, evasionRules, peer.IPS, peer.IPS)
	h := b.cfg.Verdict.New(0)
	// Not established: a segment out of nowhere is picked up midstream, one way only.
	c := &tcpConn{t: t, h: h, cport: 41000, cisn: 100, sisn: 200}
	assert.Equal(t, verdict.Pass, c.send(0, "GET / HTTP/1.1\r\n"))
	assert.Zero(t, b.eng.alerts.Load())
	c = &tcpConn{t: t, h: h, cport: 41001, cisn: 100, sisn: 200}
	c.handshake()
	assert.Equal(t, verdict.Pass, c.reply("GET is in the reply"))
	assert.Zero(t, b.eng.alerts.Load(), "to_client")
	assert.Equal(t, verdict.Pass, c.send(0, "GET / HTTP/1.1\r\n"))
	evs := waitEvents(t, b.eng, buf, 1)
	assert.Equal(t, uint32(102), evs[0].Alert.SignatureID)
	assert.Equal(t, "allowed", evs[0].Alert.Action)
}

// fragments cuts datagram body (an UDP header and payload) into IPv4 or IPv6 fragments.
func fragments(v6 bool, body []byte, cuts ...int) [][]byte {
	var out [][]byte
	cuts = append(append([]int{0}, cuts...), len(body))
	for i := 0; i+1 < len(cuts); i++ {
		off, end := cuts[i], cuts[i+1]
		more := end < len(body)
		var ip []byte
		if v6 {
			ip = ip6(ip6Client, ip6Server, 17, 0, true, 77, off, more, body[off:end])
		} else {
			ip = ip4(ipClient, ipServer, 17, 77, off, more, body[off:end])
		}
		out = append(out, eth(macClient, macServer, ip))
	}
	return out
}

// TestInspectFragments: a datagram whose forbidden bytes lie after the first fragment, in any
// order, overlapping or in tiny pieces, is dropped at the fragment that completes it (the others
// went on, so the datagram cannot be delivered); the same datagram with other bytes passes.
func TestInspectFragments(t *testing.T) {
	payload := func(bad bool) []byte {
		p := bytes.Repeat([]byte("."), 3000)
		if bad {
			copy(p[2000:], "forbidden")
		}
		return udp(5353, 9999, p)
	}
	cases := []struct {
		name  string
		build func(v6 bool, body []byte) [][]byte
	}{
		{"in order", func(v6 bool, b []byte) [][]byte { return fragments(v6, b, 1480, 2960) }},
		{"reversed", func(v6 bool, b []byte) [][]byte {
			f := fragments(v6, b, 1480, 2960)
			return [][]byte{f[2], f[1], f[0]}
		}},
		{"pattern across fragments", func(v6 bool, b []byte) [][]byte { return fragments(v6, b, 1480, 2008) }},
		{"tiny", func(v6 bool, b []byte) [][]byte {
			var cuts []int
			for c := 1992; c < 2024; c += 8 {
				cuts = append(cuts, c)
			}
			return fragments(v6, b, cuts...)
		}},
	}
	for _, v6 := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(tc.name+map[bool]string{true: "/v6"}[v6], func(t *testing.T) {
				b, buf, _ := testBridge(t, evasionRules, peer.IPS, peer.IPS)
				h := b.cfg.Verdict.New(0)
				frags := tc.build(v6, payload(true))
				for i, f := range frags[:len(frags)-1] {
					assert.Equal(t, verdict.Pass, h.Handle(packet(f, verdict.AToB)), "fragment %d goes on", i)
				}
				last := frags[len(frags)-1]
				assert.Equal(t, verdict.Drop, h.Handle(packet(last, verdict.AToB)), "the completing fragment")
				assert.Equal(t, verdict.Drop, h.Handle(packet(last, verdict.AToB)), "sent again")
				evs := waitEvents(t, b.eng, buf, int(b.eng.alerts.Load()))
				require.NotEmpty(t, evs)
				assert.Equal(t, uint32(101), evs[0].Alert.SignatureID)
				assert.Equal(t, "blocked", evs[0].Alert.Action)
				assert.Equal(t, uint16(9999), *evs[0].DestPort)

				b, _, _ = testBridge(t, evasionRules, peer.IPS, peer.IPS)
				h = b.cfg.Verdict.New(0)
				for i, f := range tc.build(v6, payload(false)) {
					assert.Equal(t, verdict.Pass, h.Handle(packet(f, verdict.AToB)), "benign fragment %d", i)
				}
				assert.EqualValues(t, 1, b.eng.inspect.reassembled.Load())
			})
		}
	}
}

// TestInspectOverlappingFragments: a fragment that overlaps held bytes with other bytes is
// dropped (and the datagram with it), whatever policy would pick the bytes.
func TestInspectOverlappingFragments(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		b, buf, _ := testBridge(t, evasionRules, peer.IPS, peer.IPS)
		h := b.cfg.Verdict.New(0)
		good := udp(5353, 9999, bytes.Repeat([]byte("."), 3000))
		bad := bytes.Clone(good)
		copy(bad[2000:], "forbidden")
		f := fragments(v6, good, 1480, 2960)
		g := fragments(v6, bad, 1480, 2960)
		assert.Equal(t, verdict.Pass, h.Handle(packet(f[0], verdict.AToB)))
		assert.Equal(t, verdict.Pass, h.Handle(packet(f[1], verdict.AToB)))
		assert.Equal(t, verdict.Drop, h.Handle(packet(g[1], verdict.AToB)), "same place, other bytes")
		assert.Equal(t, verdict.Drop, h.Handle(packet(f[2], verdict.AToB)), "the rest of an evasive datagram")
		assert.EqualValues(t, 2, b.eng.inspect.fragDrops.Load())
		evs := waitEvents(t, b.eng, buf, 2)
		for _, ev := range evs {
			assert.Equal(t, uint32(2900001), ev.Alert.SignatureID, "named in EVE")
			assert.Equal(t, "blocked", ev.Alert.Action)
			assert.Equal(t, "UDP", ev.Proto)
		}
	}
}

// TestInspectIPv6Headers: UDP behind 9 destination-options headers is inspected; past
// flow.MaxExtHeaders it is dropped uninspected.
func TestInspectIPv6Headers(t *testing.T) {
	b, buf, _ := testBridge(t, evasionRules, peer.IPS, peer.IPS)
	h := b.cfg.Verdict.New(0)
	pkt := func(n int, payload string) *verdict.Packet {
		return packet(eth(macClient, macServer, ip6(ip6Client, ip6Server, 17, n, false, 0, 0, false, udp(5353, 9999, []byte(payload)))), verdict.AToB)
	}
	assert.Equal(t, verdict.Pass, h.Handle(pkt(9, "fine")))
	assert.Equal(t, verdict.Drop, h.Handle(pkt(9, "forbidden")))
	assert.Equal(t, verdict.Drop, h.Handle(pkt(17, "fine")))
	assert.EqualValues(t, 1, b.eng.inspect.extHdrDrops.Load())
	evs := waitEvents(t, b.eng, buf, 2)
	assert.Equal(t, uint32(101), evs[0].Alert.SignatureID)
	assert.Equal(t, uint32(2900005), evs[1].Alert.SignatureID)
	assert.Equal(t, "2001:2::1", evs[1].SrcIP)
}

// TestInspectNoAlloc: TCP segments of an established connection, in order, and a fragmented
// datagram allocate nothing once the worker's buffers exist.
func TestInspectNoAlloc(t *testing.T) {
	b, _, _ := testBridge(t, evasionRules, peer.IPS, peer.IPS)
	h := b.cfg.Verdict.New(0)
	c := &tcpConn{t: t, h: h, cport: 42000, cisn: 1, sisn: 2}
	c.handshake()
	seg := c.frame(true, c.cisn+1, c.sisn+1, 0x18, bytes.Repeat([]byte("x"), 1400))
	ack := c.frame(false, c.sisn+1, 0, 0x10, nil)
	frags := fragments(false, udp(5353, 9999, bytes.Repeat([]byte("."), 3000)), 1480, 2960)
	fp := make([]*verdict.Packet, len(frags))
	for i, f := range frags {
		fp[i] = packet(f, verdict.AToB)
	}
	seq, id := c.cisn+1, uint16(0)
	tcpData := seg.Data[14+20:]
	run := func() {
		binary.BigEndian.PutUint32(tcpData[4:], seq)
		if h.Handle(seg) != verdict.Pass {
			t.Fatal("segment dropped")
		}
		seq += 1400
		binary.BigEndian.PutUint32(ack.Data[14+20+8:], seq)
		h.Handle(ack)
		id++
		for _, p := range fp {
			binary.BigEndian.PutUint16(p.Data[14+4:], id)
			if h.Handle(p) != verdict.Pass {
				t.Fatal("fragment dropped")
			}
		}
	}
	// Warm up past the reassembler's 1,024 remembered datagrams, so its buffers are all made.
	for range 1100 {
		run()
	}
	assert.Zero(t, testing.AllocsPerRun(500, run))
}

// BenchmarkInspect is the per-frame cost of inspection beside plain frame-by-frame matching: the
// same 1,400-byte TCP segments (in order, a new one each op) and 64-byte ones, with the rules of
// TestInspectTCP.
func BenchmarkInspect(b *testing.B) {
	for _, size := range []int{64, 1400} {
		for _, mode := range []string{"match", "inspect"} {
			b.Run(mode+"/"+map[int]string{64: "64B", 1400: "1400B"}[size], func(b *testing.B) {
				br, _, _ := testBridge(b, evasionRules, peer.IPS, peer.IPS)
				set, err := rules.Parse(strings.NewReader(evasionRules), "bench.rules")
				require.NoError(b, err)
				rh := br.rulesFactory(set).New(0).(*ruleHandler)
				if mode == "match" {
					rh.ins = nil
				}
				c := &tcpConn{t: b, h: rh, cport: 43000, cisn: 1, sisn: 2}
				c.handshake()
				seg := c.frame(true, c.cisn+1, c.sisn+1, 0x18, bytes.Repeat([]byte("x"), size))
				ack := c.frame(false, c.sisn+1, 0, 0x10, nil)
				seq := c.cisn + 1
				tcpData := seg.Data[14+20:]
				b.SetBytes(int64(len(seg.Data)))
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					binary.BigEndian.PutUint32(tcpData[4:], seq)
					rh.Handle(seg)
					seq += uint32(size)
					if i%8 == 7 {
						binary.BigEndian.PutUint32(ack.Data[14+20+8:], seq)
						rh.Handle(ack)
					}
				}
			})
		}
	}
}

// TestInspectTick: the worker's tick expires idle flows, a dropped one included.
func TestInspectTick(t *testing.T) {
	b, _, _ := testBridge(t, evasionRules, peer.IPS, peer.IPS)
	h := b.cfg.Verdict.New(0)
	c := &tcpConn{t: t, h: h, cport: 44000, cisn: 1, sisn: 2}
	c.handshake()
	require.Equal(t, verdict.Drop, c.send(0, "GET /forbidden"))
	require.Equal(t, verdict.Drop, c.reply("x"))
	tk, ok := h.(verdict.Ticker)
	require.True(t, ok, "the handler expires flows on the bridge's tick")
	tk.Tick(packet(nil, verdict.AToB).Time.Add(time.Hour))
	assert.Equal(t, verdict.Pass, c.reply("x"), "forgotten: a new flow")
}

// TestInspectAlertOnce: an alert rule whose content the stream context repeats in the next
// segment's view alerts once, not again for every segment while the bytes stay in the tail.
func TestInspectAlertOnce(t *testing.T) {
	b, buf, _ := testBridge(t, `alert tcp any any -> any any (msg:"hi"; content:"hi"; sid:7;)
alert tcp any any -> any 8080 (msg:"any tcp to 8080"; sid:8;)
drop tcp any any -> any any (msg:"long"; content:"0123456789abcdefghij"; sid:9;)`, peer.IPS, peer.IPS)
	h := b.cfg.Verdict.New(0)
	c := &tcpConn{t: t, h: h, cport: 45000, cisn: 1, sisn: 2}
	c.handshake()
	before := b.eng.alerts.Load()
	require.Equal(t, verdict.Pass, c.send(0, "hi"))
	require.Equal(t, verdict.Pass, c.send(2, "x"))
	require.Equal(t, verdict.Pass, c.send(3, "y"))
	require.Equal(t, verdict.Pass, c.send(4, "h"))
	require.Equal(t, verdict.Pass, c.send(5, "i"), "a new occurrence, across segments")
	// "hi" twice, and the header-only rule for each of the 5 segments (never deduplicated).
	assert.EqualValues(t, 2+5, b.eng.alerts.Load()-before)
	evs := waitEvents(t, b.eng, buf, int(b.eng.alerts.Load()))
	n := 0
	for _, ev := range evs {
		if ev.Alert.SignatureID == 7 {
			n++
		}
	}
	assert.Equal(t, 2, n)
}

// TestInspectLongSegment: a segment of nearly 64 KiB behind the stream's tail makes a view
// longer than an IP length can state; the bytes past 65,535 are matched too (they were not:
// "forbidden" in a full-size segment's last bytes passed), also across the cut, and alerts of
// both parts are reported.
func TestInspectLongSegment(t *testing.T) {
	const first = "HELO 0123456789abcdef" // more than the stream's tail of 16 bytes
	long := func(size, off int, s string) string {
		b := bytes.Repeat([]byte("x"), size)
		copy(b[off:], s)
		return string(b)
	}
	for _, v6 := range []bool{false, true} {
		size := 65535 - 20 - 20 // the largest TCP payload: IPv4 counts its header, IPv6 not
		if v6 {
			size = 65535 - 20
		}
		// The view is 16 tail bytes and the payload; the IP length covers the TCP header and
		// the first size-16 bytes of the payload.
		for _, tc := range []struct {
			name string
			data string
			want verdict.Verdict
		}{
			{"clean", long(size, 0, ""), verdict.Pass},
			{"at the end", long(size, size-9, "forbidden"), verdict.Drop},
			{"across the cut", long(size, size-20, "forbidden"), verdict.Drop},
			{"at the start", long(size, 0, "forbidden"), verdict.Drop},
		} {
			t.Run(fmt.Sprintf("v6=%v/%s", v6, tc.name), func(t *testing.T) {
				b, _, _ := testBridge(t, evasionRules, peer.IPS, peer.IPS)
				c := &tcpConn{t: t, h: b.cfg.Verdict.New(0), v6: v6, cport: 47000, cisn: 1, sisn: 2}
				c.handshake()
				require.Equal(t, verdict.Pass, c.send(0, first))
				before := b.eng.alerts.Load()
				assert.Equal(t, tc.want, c.send(len(first), tc.data))
				assert.EqualValues(t, map[verdict.Verdict]int{verdict.Pass: 0, verdict.Drop: 1}[tc.want], b.eng.alerts.Load()-before)
			})
		}
	}
	t.Run("alerts of both parts", func(t *testing.T) {
		b, _, _ := testBridge(t, `alert tcp any any -> any any (msg:"a"; content:"aaaa"; sid:1;)
alert tcp any any -> any any (msg:"b"; content:"bbbb"; sid:2;)`, peer.IPS, peer.IPS)
		c := &tcpConn{t: t, h: b.cfg.Verdict.New(0), cport: 47001, cisn: 1, sisn: 2}
		c.handshake()
		require.Equal(t, verdict.Pass, c.send(0, first))
		size := 65535 - 20 - 20
		data := []byte(long(size, 0, "aaaa"))
		copy(data[size-4:], "bbbb")
		before := b.eng.alerts.Load()
		assert.Equal(t, verdict.Pass, c.send(len(first), string(data)))
		assert.EqualValues(t, 2, b.eng.alerts.Load()-before)
	})
}

// TestInspectGapFilledLate: a one-byte gap in front of 300 KB of held out-of-order data; the
// byte that fills it makes a view of all of it, longer than several IP lengths, and the view is
// matched to its end (it was not: past about 128 KiB the bytes reached the receiver unmatched).
func TestInspectGapFilledLate(t *testing.T) {
	const first = "HELO 0123456789abcdef"
	const seg, n = 60000, 5
	for _, tc := range []struct {
		name string
		at   int // where "forbidden" goes in the held data; negative: nowhere
		want verdict.Verdict
	}{
		{"clean", -1, verdict.Pass},
		{"near the end", seg*n - 100, verdict.Drop},
		{"across a part's cut", 65535 - 40 - 16 + 65535 - 40 - 16 - 30, verdict.Drop},
		{"in the middle", seg * n / 2, verdict.Drop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _, _ := testBridge(t, evasionRules, peer.IPS, peer.IPS)
			c := &tcpConn{t: t, h: b.cfg.Verdict.New(0), cport: 47100, cisn: 1, sisn: 2}
			c.handshake()
			require.Equal(t, verdict.Pass, c.send(0, first))
			data := bytes.Repeat([]byte("x"), seg*n)
			if tc.at >= 0 {
				copy(data[tc.at:], "forbidden")
			}
			for i := range n {
				require.Equal(t, verdict.Pass, c.send(len(first)+1+i*seg, string(data[i*seg:(i+1)*seg])), "held segment %d", i)
			}
			assert.Equal(t, tc.want, c.send(len(first), "y"), "the byte that fills the gap is judged with all the held data")
		})
	}
}
