//go:build linux

package main

import (
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afbridge/afbridge/examples/bridge/eve"
	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	macClient = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	macServer = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	ipClient  = [4]byte{198, 18, 0, 1}
	ipServer  = [4]byte{198, 18, 0, 2}
)

// tcpFrame builds an Ethernet/IPv4/TCP frame with an ACK and payload; checksums are left zero,
// which matching ignores.
func tcpFrame(srcMAC, dstMAC [6]byte, src, dst [4]byte, sport, dport uint16, payload string) []byte {
	f := make([]byte, 14+20+20, 14+20+20+len(payload))
	copy(f[0:], dstMAC[:])
	copy(f[6:], srcMAC[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	copy(ip[12:], src[:])
	copy(ip[16:], dst[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	binary.BigEndian.PutUint32(tcp[8:], 5000)
	tcp[12], tcp[13] = 5<<4, rules.TCPAck|rules.TCPPsh
	f = append(f, payload...)
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
	return f
}

func fromClient(payload string) []byte {
	return tcpFrame(macClient, macServer, ipClient, ipServer, 40000, 80, payload)
}

// sent records the frames a reject socket would send.
type sent struct {
	mu     sync.Mutex
	frames [][]byte
}

func (s *sent) send(_ *rejectTx, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frames = append(s.frames, append([]byte(nil), b...))
	return nil
}

func (s *sent) Close() error { return nil }

// testBridge is a bridge that is never started: enough for its handlers.
func testBridge(t testing.TB, text string, modeA, modeB peer.CopyMode) (*bridge, *lockedBuffer, [2]*sent) {
	t.Helper()
	set, err := rules.Parse(strings.NewReader(text), "test.rules")
	require.NoError(t, err)
	events := &lockedBuffer{}
	eng := &engine{eve: eve.NewWriter(events, 0)}
	t.Cleanup(func() { eng.eve.Close() })
	cfg := peer.Config{
		A: peer.Side{Interface: "b0", CopyMode: modeA}, Threads: 2,
		B: peer.Side{Interface: "b1", CopyMode: modeB},
	}
	b := newBridge(eng, cfg, "", set)
	out := [2]*sent{{}, {}}
	b.inject = [2]frameSender{out[0], out[1]}
	return b, events, out
}

func packet(data []byte, dir verdict.Direction) *verdict.Packet {
	ifs := [2]verdict.Interface{{Index: 2, Name: "b0"}, {Index: 3, Name: "b1"}}
	return &verdict.Packet{Data: data, Len: len(data), In: ifs[dir], Out: ifs[1-dir], Dir: dir,
		Time: time.Date(2026, 11, 27, 22, 9, 10, 123456000, time.UTC)}
}

// events waits for n EVE lines and returns them decoded.
func waitEvents(t *testing.T, eng *engine, buf *lockedBuffer, n int) []eve.Event {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); eng.eve.Written() < uint64(n) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	var out []eve.Event
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var ev eve.Event
		require.NoError(t, json.Unmarshal([]byte(l), &ev), l)
		out = append(out, ev)
	}
	require.Len(t, out, n)
	return out
}

const testRules = `alert tcp any any -> any any (msg:"hello"; content:"hello"; sid:1; rev:3;)
drop tcp any any -> any any (msg:"bad"; content:"bad"; sid:2;)
reject tcp any any -> any any (msg:"ugly"; content:"ugly"; sid:3;)
pass tcp any any -> any any (msg:"trusted"; content:"trusted"; sid:4;)
`

// TestHandler: each action gives its verdict and EVE events; a blocking rule logs "blocked"
// in ips mode and "allowed" in tap mode, where the frame goes on.
func TestHandler(t *testing.T) {
	for _, c := range []struct {
		payload string
		mode    peer.CopyMode
		want    verdict.Verdict
		events  []string // "sid action"
		rejects int      // frames sent per side
	}{
		{"nothing to see", peer.IPS, verdict.Pass, nil, 0},
		{"hello", peer.IPS, verdict.Pass, []string{"1 allowed"}, 0},
		{"bad", peer.IPS, verdict.Drop, []string{"2 blocked"}, 0},
		{"hello bad", peer.IPS, verdict.Drop, []string{"1 allowed", "2 blocked"}, 0},
		{"ugly", peer.IPS, verdict.Drop, []string{"3 blocked"}, 1},
		{"bad but trusted", peer.IPS, verdict.Pass, nil, 0},
		{"bad", peer.Tap, verdict.Drop, []string{"2 allowed"}, 0}, // counted as would-drop
		{"ugly", peer.Tap, verdict.Drop, []string{"3 allowed"}, 0},
	} {
		t.Run(c.mode.String()+"/"+c.payload, func(t *testing.T) {
			b, buf, out := testBridge(t, testRules, c.mode, peer.IPS)
			h := b.cfg.Verdict.New(1)
			assert.Equal(t, c.want, h.Handle(packet(fromClient(c.payload), verdict.AToB)))
			evs := waitEvents(t, b.eng, buf, len(c.events))
			for i, ev := range evs {
				assert.Equal(t, c.events[i], strconv.Itoa(int(ev.Alert.SignatureID))+" "+ev.Alert.Action)
				assert.Equal(t, "b0", ev.InIface)
				assert.Equal(t, "198.18.0.1", ev.SrcIP)
				assert.Equal(t, uint16(80), *ev.DestPort)
				assert.Equal(t, "TCP", ev.Proto)
			}
			assert.EqualValues(t, len(c.events), b.eng.alerts.Load())
			assert.Len(t, out[0].frames, c.rejects)
			assert.Len(t, out[1].frames, c.rejects)
		})
	}
}

// TestRejectSides: the RST towards the sender leaves through the port the frame came in on, the
// one towards its destination through the other port, whichever way the frame crossed.
func TestRejectSides(t *testing.T) {
	b, _, out := testBridge(t, testRules, peer.IPS, peer.IPS)
	h := b.cfg.Verdict.New(0)
	client, server := netip.AddrFrom4(ipClient), netip.AddrFrom4(ipServer)

	require.Equal(t, verdict.Drop, h.Handle(packet(fromClient("ugly"), verdict.AToB)))
	// Another connection: the first one is dropped as a whole now (flow drop), silently.
	fromServer := tcpFrame(macServer, macClient, ipServer, ipClient, 80, 40001, "ugly")
	require.Equal(t, verdict.Drop, h.Handle(packet(fromServer, verdict.BToA)))

	require.Len(t, out[0].frames, 2)
	require.Len(t, out[1].frames, 2)
	var p rules.Packet
	// Through b0 (the client's side): both RSTs are addressed to the client.
	for _, f := range out[0].frames {
		require.True(t, p.Decode(f))
		assert.Equal(t, client, p.DstIP)
		assert.Equal(t, macClient[:], f[0:6])
		assert.NotZero(t, p.TCPFlags&rules.TCPRst)
	}
	// Through b1 (the server's side): both to the server.
	for _, f := range out[1].frames {
		require.True(t, p.Decode(f))
		assert.Equal(t, server, p.DstIP)
		assert.Equal(t, macServer[:], f[0:6])
	}
	assert.EqualValues(t, 4, b.eng.rejects.Load())
}

// TestHotSwap: setRules takes effect at the next frame of a handler made before the swap.
func TestHotSwap(t *testing.T) {
	b, _, _ := testBridge(t, "", peer.IPS, peer.IPS)
	h := b.cfg.Verdict.New(0)
	frame := fromClient("GET /forbidden HTTP/1.1")
	assert.Equal(t, verdict.Pass, h.Handle(packet(frame, verdict.AToB)))
	set, err := rules.Parse(strings.NewReader(`drop tcp any any -> any any (msg:"x"; content:"forbidden"; sid:1;)`), "new.rules")
	require.NoError(t, err)
	b.setRules(set)
	assert.Equal(t, verdict.Drop, h.Handle(packet(frame, verdict.AToB)))
	b.setRules(nil)
	assert.Equal(t, verdict.Pass, h.Handle(packet(frame, verdict.AToB)))
}

// TestNoAlloc: a frame no rule matches goes through the whole per-worker chain (byte counter,
// Switch, matcher) without allocating.
func TestNoAlloc(t *testing.T) {
	b, _, _ := testBridge(t, testRules, peer.IPS, peer.IPS)
	h := b.cfg.Verdict.New(0)
	p := packet(fromClient(strings.Repeat("GET /index.html HTTP/1.1\r\nHost: example\r\n", 20)), verdict.AToB)
	h.Handle(p)
	allocs := testing.AllocsPerRun(1000, func() {
		if h.Handle(p) != verdict.Pass {
			t.Fatal("the frame should pass")
		}
	})
	assert.Zero(t, allocs)
}

// BenchmarkHandler measures the per-frame cost of the chain, and what the byte counter adds:
// compare "matcher" (the rules alone) with "chain" (counter, Switch, rules), and the counter's
// atomic add with a plain one.
func BenchmarkHandler(b *testing.B) {
	br, _, _ := testBridge(b, testRules, peer.IPS, peer.IPS)
	set, _ := rules.Parse(strings.NewReader(testRules), "bench.rules")
	p := packet(fromClient(strings.Repeat("x", 1400)), verdict.AToB)
	run := func(h verdict.Handler) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.Data)))
			for b.Loop() {
				h.Handle(p)
			}
		}
	}
	b.Run("matcher", run(br.rulesFactory(set).New(0)))
	b.Run("chain", run(br.cfg.Verdict.New(0)))
}
