//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/netns"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// The evasion topology: client c0 == b0 [bridge] b1 == s0 server, IPv4 and IPv6, fixed MACs.
// The client crafts its frames on a packet socket; the TCP client uses addresses that are not
// the client namespace's own (.3 / ::3), so its kernel ignores the server's replies instead of
// resetting the connection, and reads the SYN-ACK from the packet socket.
const (
	evMACClient = "02:00:00:00:00:01"
	evMACServer = "02:00:00:00:00:02"
)

var (
	evMACc = [6]byte{2, 0, 0, 0, 0, 1}
	evMACs = [6]byte{2, 0, 0, 0, 0, 2}
	ev4Raw = [4]byte{198, 18, 0, 3}
	ev6Raw = [16]byte{0x20, 0x01, 0x00, 0x02, 15: 3}
)

type evTopo struct {
	t      *testing.T
	client *netns.NS
	fd     int // packet socket on c0, in the client namespace
	ifidx  int

	mu      sync.Mutex
	streams map[string][]byte // by client address:port
	dgrams  [][]byte
}

func newEvTopo(t *testing.T, rulesText string) (*evTopo, string) {
	t.Helper()
	testenv.RequirePriv(t)
	client, bridge, server := testenv.NS(t, "client"), testenv.NS(t, "bridge"), testenv.NS(t, "server")
	c0, _ := testenv.Veth(t, client, "c0", bridge, "b0", &testenv.VethConfig{MACA: evMACClient})
	_, s0 := testenv.Veth(t, bridge, "b1", server, "s0", &testenv.VethConfig{MACB: evMACServer})
	// New namespaces may start with IPv6 off (net.ipv6.conf.default.disable_ipv6 inherited).
	c0.Run(t, "sysctl", "-q", "-w", "net.ipv6.conf.c0.disable_ipv6=0")
	s0.Run(t, "sysctl", "-q", "-w", "net.ipv6.conf.s0.disable_ipv6=0")
	c0.Run(t, "ip", "addr", "add", clientIP+"/24", "dev", "c0")
	c0.Run(t, "ip", "addr", "add", "2001:2::1/64", "dev", "c0", "nodad")
	s0.Run(t, "ip", "addr", "add", serverIP+"/24", "dev", "s0")
	s0.Run(t, "ip", "addr", "add", "2001:2::2/64", "dev", "s0", "nodad")
	for _, a := range []string{"198.18.0.3", "198.18.0.1", "2001:2::3", "2001:2::1"} {
		s0.Run(t, "ip", "neigh", "replace", a, "lladdr", evMACClient, "dev", "s0")
	}
	tp := &evTopo{t: t, client: client, streams: map[string][]byte{}, ifidx: c0.Interface(t).Index}
	tp.serve(server)
	require.NoError(t, client.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		tp.fd = fd
		tv := unix.Timeval{Usec: 100_000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: tp.ifidx})
	}))
	t.Cleanup(func() { unix.Close(tp.fd) })

	dir := t.TempDir()
	evePath := dir + "/eve.json"
	p := start(t, bridge, "-i", "b0:b1", "-rules", writeFile(t, dir, "evasion.rules", rulesText), "-eve", evePath)
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	return tp, evePath
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// serve runs TCP (8080) and UDP (9999) servers on both addresses in ns, recording what arrives.
func (tp *evTopo) serve(ns *netns.NS) {
	t := tp.t
	var closers []func()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		for _, c := range closers {
			c()
		}
		wg.Wait()
	})
	require.NoError(t, ns.Do(func() error {
		for _, a := range []string{"198.18.0.2", "[2001:2::2]"} {
			ln, err := net.Listen("tcp", a+":8080")
			if err != nil {
				return err
			}
			pc, err := net.ListenPacket("udp", a+":9999")
			if err != nil {
				return err
			}
			var cmu sync.Mutex
			var conns []net.Conn
			closers = append(closers, func() {
				ln.Close()
				pc.Close()
				cmu.Lock()
				for _, c := range conns {
					c.Close()
				}
				cmu.Unlock()
			})
			wg.Add(2)
			go func() {
				defer wg.Done()
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					cmu.Lock()
					conns = append(conns, c)
					cmu.Unlock()
					wg.Add(1)
					go func() {
						defer wg.Done()
						buf := make([]byte, 4096)
						for {
							n, err := c.Read(buf)
							tp.mu.Lock()
							tp.streams[c.RemoteAddr().String()] = append(tp.streams[c.RemoteAddr().String()], buf[:n]...)
							tp.mu.Unlock()
							if err != nil {
								return
							}
						}
					}()
				}
			}()
			go func() {
				defer wg.Done()
				buf := make([]byte, 70000)
				for {
					n, _, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					tp.mu.Lock()
					tp.dgrams = append(tp.dgrams, bytes.Clone(buf[:n]))
					tp.mu.Unlock()
				}
			}()
		}
		return nil
	}))
}

func (tp *evTopo) send(frame []byte) {
	tp.t.Helper()
	require.NoError(tp.t, unix.Sendto(tp.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: tp.ifidx, Halen: 6, Addr: [8]byte{2, 0, 0, 0, 0, 2}}))
	time.Sleep(20 * time.Millisecond) // keep the order on the wire
}

// received returns what the server got on the TCP connection from addr, or the UDP datagrams.
func (tp *evTopo) received(addr string) []byte {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return bytes.Clone(tp.streams[addr])
}

func (tp *evTopo) datagrams() [][]byte {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([][]byte(nil), tp.dgrams...)
}

// eventually waits (at most 20 s, a bound for a hang on a loaded machine) for cond.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// checksum folds the one's complement sum of the byte slices.
func inetChecksum(parts ...[]byte) uint16 {
	var s uint32
	for _, b := range parts {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			s += uint32(b[len(b)-1]) << 8
		}
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// pseudo is the TCP/UDP pseudo header.
func pseudo(src, dst []byte, proto uint8, n int) []byte {
	p := append(append([]byte(nil), src...), dst...)
	if len(src) == 4 {
		return append(p, 0, proto, byte(n>>8), byte(n))
	}
	return append(p, byte(n>>24), byte(n>>16), byte(n>>8), byte(n), 0, 0, 0, proto)
}

// l4sum sets the checksum of a TCP segment or UDP datagram (field at off) for src -> dst.
func l4sum(l4 []byte, off int, src, dst []byte, proto uint8) []byte {
	l4[off], l4[off+1] = 0, 0
	binary.BigEndian.PutUint16(l4[off:], inetChecksum(pseudo(src, dst, proto, len(l4)), l4))
	return l4
}

// ipFrame wraps l4 (or a fragment of it) in IP and Ethernet from the client to the server.
func ipFrame(v6 bool, src []byte, proto uint8, frag bool, id uint32, off int, more bool, body []byte) []byte {
	var ip []byte
	if v6 {
		ip = ip6([16]byte(src), ip6Server, proto, 0, frag, id, off, more, body)
	} else {
		ip = ip4([4]byte(src), ipServer, proto, uint16(id), off, more, body)
		binary.BigEndian.PutUint16(ip[10:], inetChecksum(ip[:20]))
	}
	return eth(evMACc, evMACs, ip)
}

// rawTCP is a TCP client made of crafted frames.
type rawTCP struct {
	tp         *evTopo
	v6         bool
	src        []byte
	port       uint16
	isn, srvSN uint32
}

func (c *rawTCP) addr() string {
	if c.v6 {
		return fmt.Sprintf("[2001:2::3]:%d", c.port)
	}
	return fmt.Sprintf("198.18.0.3:%d", c.port)
}

func (c *rawTCP) dst() []byte {
	if c.v6 {
		return ip6Server[:]
	}
	return ipServer[:]
}

func (c *rawTCP) segment(seq, ack uint32, flags uint8, payload []byte, badSum bool) []byte {
	seg := l4sum(tcp(c.port, 8080, seq, ack, flags, payload), 16, c.src, c.dst(), 6)
	if badSum {
		seg[16] ^= 0xff
	}
	return ipFrame(c.v6, c.src, 6, false, 0, 0, false, seg)
}

// connect sends the SYN, reads the SYN-ACK from the packet socket and sends the ACK.
func (c *rawTCP) connect() {
	t := c.tp.t
	t.Helper()
	c.tp.send(c.segment(c.isn, 0, 0x02, nil, false))
	buf := make([]byte, 2048)
	for i := 0; i < 100 && c.srvSN == 0; i++ {
		n, _, err := unix.Recvfrom(c.tp.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			require.NoError(t, err)
		}
		f := buf[:n]
		var l4 []byte
		switch {
		case !c.v6 && n >= 54 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == 6 && bytes.Equal(f[30:34], c.src):
			l4 = f[14+int(f[14]&15)*4:]
		case c.v6 && n >= 74 && binary.BigEndian.Uint16(f[12:]) == 0x86dd && f[20] == 6 && bytes.Equal(f[38:54], c.src):
			l4 = f[54:]
		default:
			continue
		}
		if binary.BigEndian.Uint16(l4[2:]) == c.port && l4[13]&0x12 == 0x12 {
			c.srvSN = binary.BigEndian.Uint32(l4[4:])
		}
	}
	require.NotZero(t, c.srvSN, "no SYN-ACK from the server")
	c.tp.send(c.segment(c.isn+1, c.srvSN+1, 0x10, nil, false))
}

// data sends payload at stream offset off.
func (c *rawTCP) data(off int, payload string, badSum bool) {
	c.tp.send(c.segment(c.isn+1+uint32(off), c.srvSN+1, 0x18, []byte(payload), badSum))
}

// TestEvasionTCP: through the binary, each TCP evasion of issue 13 is blocked with its alert in
// EVE, and the same connection with other bytes reaches the server byte for byte.
func TestEvasionTCP(t *testing.T) {
	type step struct {
		off    int
		data   string
		badSum bool   // the receiver drops it; an IPS that does not check sees it
		benign string // the benign variant's bytes, when not data with the pattern replaced
	}
	const req = "GET /forbidden HTTP/1.1\r\n\r\n"
	cases := []struct {
		name  string
		steps []step
		sid   uint32
	}{
		{"split in two", []step{{0, "GET /forb", false, ""}, {9, "idden HTTP/1.1\r\n\r\n", false, ""}}, 100},
		{"split in three", []step{{0, "GET /fo", false, ""}, {7, "rbid", false, ""}, {11, "den HTTP/1.1\r\n\r\n", false, ""}}, 100},
		{"out of order", []step{{9, "idden HTTP/1.1\r\n\r\n", false, ""}, {0, "GET /forb", false, ""}}, 100},
		{"overlap with other data", []step{{0, "GET /harmless HTTP/1.1\r\n\r\n", true, ""}, {0, req, false, "GET /harmless HTTP/1.1\r\n\r\n"}}, 2900003},
		{"retransmitting the dropped segment", []step{{0, "GET /forb", false, ""}, {9, "idden HTTP/1.1\r\n\r\n", false, ""}, {9, "idden HTTP/1.1\r\n\r\n", false, ""}}, 100},
	}
	tp, evePath := newEvTopo(t, evasionRules)
	port := uint16(50000)
	for _, v6 := range []bool{false, true} {
		for _, tc := range cases {
			for _, bad := range []bool{true, false} {
				port++
				c := &rawTCP{tp: tp, v6: v6, src: ev4Raw[:], port: port, isn: 0xfffffff0 - uint32(port)}
				if v6 {
					c.src = ev6Raw[:]
				}
				c.connect()
				var want []byte // the stream the server should read
				for _, s := range tc.steps {
					d := s.data
					if !bad && s.benign != "" {
						d = s.benign
					} else if !bad {
						d = strings.NewReplacer("forbidden", "fabulous!", "forb", "fabu", "idden", "lous!", "fo", "fa", "rbid", "bulo", "den", "us!").Replace(d)
					}
					c.data(s.off, d, s.badSum && bad)
					if !s.badSum || !bad {
						if end := s.off + len(d); end > len(want) {
							want = append(want, make([]byte, end-len(want))...)
						}
						copy(want[s.off:], d)
					}
				}
				name := fmt.Sprintf("%s v6=%v bad=%v", tc.name, v6, bad)
				if bad {
					time.Sleep(500 * time.Millisecond)
					assert.NotContains(t, string(tp.received(c.addr())), "forbidden", name)
					ev := findEVE(t, evePath, tc.sid)
					assert.Equal(t, "blocked", ev.Alert.Action, name)
					continue
				}
				ok := eventually(func() bool { return bytes.Equal(tp.received(c.addr()), want) })
				assert.True(t, ok, "%s: the server got %q, want %q", name, tp.received(c.addr()), want)
			}
		}
	}
}

// TestEvasionFragments: through the binary, a UDP datagram with the forbidden bytes after the
// first fragment (in order, reversed, in tiny fragments, or overlapped with other bytes, IPv4 and
// IPv6) never reaches the server and is named in EVE; the same datagrams without the forbidden
// bytes arrive whole. IPv6 UDP behind 9 destination-options headers is inspected too.
func TestEvasionFragments(t *testing.T) {
	tp, evePath := newEvTopo(t, evasionRules)
	// Each datagram is a flow of its own (its source port): a dropped one drops its flow.
	body := func(v6, bad bool, sport uint16) []byte {
		p := bytes.Repeat([]byte("."), 3000)
		if bad {
			copy(p[2000:], "forbidden")
		}
		src, dst := ipClient[:], ipServer[:]
		if v6 {
			src, dst = ip6Client[:], ip6Server[:]
		}
		return l4sum(udp(sport, 9999, p), 6, src, dst, 17)
	}
	type piece struct {
		off, end int
		other    bool // carries the other variant's bytes (an overlap with different data)
	}
	cases := []struct {
		name   string
		pieces []piece
		sid    uint32
	}{
		{"in order", []piece{{0, 1400, false}, {1400, 2800, false}, {2800, 3008, false}}, 101},
		{"reversed", []piece{{2800, 3008, false}, {1400, 2800, false}, {0, 1400, false}}, 101},
		{"tiny", []piece{{0, 1400, false}, {1400, 1992, false}, {1992, 2000, false}, {2000, 2008, false}, {2008, 2016, false}, {2016, 3008, false}}, 101},
		{"overlap", []piece{{0, 1400, false}, {1400, 2800, true}, {1400, 2800, false}, {2800, 3008, false}}, 2900001},
	}
	id := uint32(100)
	for _, v6 := range []bool{false, true} {
		src := ipClient[:]
		if v6 {
			src = ip6Client[:]
		}
		for _, tc := range cases {
			for _, bad := range []bool{true, false} {
				id++
				name := fmt.Sprintf("%s v6=%v bad=%v", tc.name, v6, bad)
				b, other := body(v6, bad, uint16(id)), body(v6, !bad, uint16(id))
				before := len(tp.datagrams())
				for _, pc := range tc.pieces {
					if pc.other && !bad {
						continue // the benign datagram has no overlap: receivers drop overlaps
					}
					data := b
					if pc.other {
						data = other
					}
					tp.send(ipFrame(v6, src, 17, true, id, pc.off, pc.end < len(b), data[pc.off:pc.end]))
				}
				if bad {
					time.Sleep(500 * time.Millisecond)
					for _, d := range tp.datagrams()[before:] {
						assert.NotContains(t, string(d), "forbidden", name)
					}
					assert.Equal(t, "blocked", findEVE(t, evePath, tc.sid).Alert.Action, name)
					continue
				}
				ok := eventually(func() bool { return len(tp.datagrams()) > before })
				require.True(t, ok, "%s: nothing arrived", name)
				assert.Equal(t, b[8:], tp.datagrams()[before], name)
			}
		}
	}
	// UDP behind 9 destination-options headers.
	for i, bad := range []bool{true, false} {
		payload := []byte("a fine datagram")
		if bad {
			payload = []byte("a forbidden one")
		}
		u := l4sum(udp(uint16(7000+i), 9999, payload), 6, ip6Client[:], ip6Server[:], 17)
		before := len(tp.datagrams())
		tp.send(eth(evMACc, evMACs, ip6(ip6Client, ip6Server, 17, 9, false, 0, 0, false, u)))
		if bad {
			time.Sleep(300 * time.Millisecond)
			assert.Len(t, tp.datagrams(), before, "9 extension headers, forbidden")
			continue
		}
		require.True(t, eventually(func() bool { return len(tp.datagrams()) > before }), "9 extension headers, fine")
		assert.Equal(t, payload, tp.datagrams()[before])
	}
}

// TestInspectDownload: a 4 MiB download with offloads on (GSO super-frames) passes through the
// inspecting bridge intact, with nothing dropped by inspection.
func TestInspectDownload(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	p := start(t, tp.bridge, "-i", "b0:b1", "-threads", "2", "-rules",
		writeFile(t, dir, "r.rules", `drop tcp any any -> any any (msg:"x"; content:"forbidden-bytes"; sid:1;)`))
	p.waitFor(banner2, 20*time.Second)
	download(t, tp, 4<<20)
	tp.mustBlock(t, "/forbidden-bytes")
	p.signal(unix.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second))
	assert.Regexp(t, `inspection: datagrams reassembled \d+; dropped: flows \d+, fragments 0, segments 0, IPv6 header chains 0`, p.stderr.String())
}

// TestEvasionKernel: the evasions as an ordinary client makes them, through the kernel's
// own TCP and UDP (offloads on): a request written in two pieces with TCP_NODELAY, and a
// 3,000-byte UDP datagram the kernel fragments, with "forbidden" at offset 2,000. Both are
// blocked; the same without the forbidden bytes goes through.
func TestEvasionKernel(t *testing.T) {
	tp := newTopo(t)
	var got [][]byte
	var mu sync.Mutex
	var pc net.PacketConn
	require.NoError(t, tp.server.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", serverIP+":9999")
		return err
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, bytes.Clone(buf[:n]))
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	dir := t.TempDir()
	evePath := dir + "/eve.json"
	p := start(t, tp.bridge, "-i", "b0:b1", "-rules", writeFile(t, dir, "r.rules", `drop tcp any any -> any 80 (msg:"forbidden tcp"; content:"forbidden"; sid:100;)
drop udp any any -> any 9999 (msg:"forbidden udp"; content:"forbidden"; sid:101;)
`), "-eve", evePath)
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)

	// request sends a request in two pieces and reads the answer for at most wait: long for
	// one that must pass (a bound for a hang), a short window for one that must be blocked.
	request := func(first, second string, wait time.Duration) (string, error) {
		var c net.Conn
		err := tp.client.Do(func() (err error) {
			c, err = net.DialTimeout("tcp4", net.JoinHostPort(serverIP, demoPort), 5*time.Second)
			return err
		})
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.(*net.TCPConn).SetNoDelay(true)
		if _, err := c.Write([]byte(first)); err != nil {
			return "", err
		}
		time.Sleep(100 * time.Millisecond) // the first piece is on the wire, and acknowledged
		if _, err := c.Write([]byte(second)); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(wait))
		b := make([]byte, 4096)
		n, err := c.Read(b)
		return string(b[:n]), err
	}
	resp, err := request("GET /hel", "lo HTTP/1.1\r\nHost: x\r\n\r\n", 20*time.Second)
	require.NoError(t, err)
	assert.Contains(t, resp, "hello from the server")
	resp, err = request("GET /forb", "idden HTTP/1.1\r\nHost: x\r\n\r\n", 1500*time.Millisecond)
	assert.Error(t, err, "blocked, got %q", resp)
	assert.Equal(t, "blocked", findEVE(t, evePath, 100).Alert.Action)

	send := func(payload []byte) {
		require.NoError(t, tp.client.Do(func() error {
			c, err := net.Dial("udp4", net.JoinHostPort(serverIP, "9999"))
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write(payload)
			return err
		}))
	}
	fine := bytes.Repeat([]byte("."), 3000)
	bad := bytes.Clone(fine)
	copy(bad[2000:], "forbidden")
	send(bad)
	send(fine)
	require.True(t, eventually(func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 }), "the fine datagram arrives")
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	assert.Equal(t, [][]byte{fine}, got, "only the fine datagram, whole")
	mu.Unlock()
	assert.Equal(t, "blocked", findEVE(t, evePath, 101).Alert.Action)
}
