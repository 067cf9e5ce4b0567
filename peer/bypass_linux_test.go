//go:build linux

package peer_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afbridge/afbridge/flow"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// bypassAfter bypasses a flow once it has passed after bytes through the verdict (both
// directions together), as the example bridge's -bypass-after does; drop, when set, drops
// every eligible frame instead (a rule loaded later).
type bypassAfter struct {
	after  int
	drop   *atomic.Bool
	seen   map[flow.Key]int
	closed map[flow.Key]bool // flows that sent a FIN or RST: judged to the end
	p      flow.Packet
}

func (h *bypassAfter) Handle(p *verdict.Packet) verdict.Verdict {
	if flow.Parse(p.Data, &h.p) != nil && !h.p.Bypassable() {
		return verdict.Pass
	}
	if !h.p.Bypassable() {
		return verdict.Pass
	}
	if h.drop != nil && h.drop.Load() {
		return verdict.Drop
	}
	if h.p.TCPFlags&(flow.TCPFIN|flow.TCPRST) != 0 {
		h.closed[h.p.Key] = true
	}
	h.seen[h.p.Key] += len(p.Data)
	if h.seen[h.p.Key] > h.after && !h.closed[h.p.Key] {
		return verdict.Bypass
	}
	return verdict.Pass
}

func bypassVerdict(after int, drop *atomic.Bool) verdict.Factory {
	return verdict.FactoryFunc(func(int) verdict.Handler {
		return &bypassAfter{after: after, drop: drop, seen: map[flow.Key]int{}, closed: map[flow.Key]bool{}}
	})
}

// TestBypassTCP bypasses a checksum-verified TCP transfer after 1 MiB, with offloads on and off:
// the transfer completes intact, the bridge sees only its start, and the fast path's counters
// account for the rest. The sender pauses 2 ms after every 256 KiB, through a small send buffer:
// a direction hands over at the first pause in which the bridge catches up with it (see bypass's
// package comment); a saturating sender keeps the bridge's ring full and its flow on the bridge.
func TestBypassTCP(t *testing.T) {
	size := 40 << 20
	if testing.Short() {
		size = 8 << 20
	}
	for _, offload := range []bool{true, false} {
		for _, threads := range []int{1, 2} {
			t.Run(fmt.Sprintf("offloads=%v/workers=%d", offload, threads), func(t *testing.T) {
				tp := newTopo(t, &testenv.VethConfig{OffloadsOff: !offload})
				cfg := tp.config(threads)
				cfg.Verdict = bypassVerdict(1<<20, nil)
				cfg.Bypass = peer.BypassConfig{Enable: true, Require: true}
				br := tp.start(t, cfg)
				start := time.Now()
				tcpTransferPaced(t, tp, size, 2*time.Millisecond)
				el := time.Since(start)
				st := br.Stats()
				require.True(t, st.BypassActive)
				a := st.Dir(verdict.AToB)
				t.Logf("%d MB in %v (%.2f Gbit/s); bridge A->B %d frames %d bytes, %d bypassed verdicts; fast path %+v",
					size>>20, el.Round(time.Millisecond), float64(size)*8/el.Seconds()/1e9, a.Received, a.Bytes, a.Bypassed, st.Bypass)
				assert.Greater(t, st.Bypass.Bytes[0], uint64(size/2), "most of the transfer took the fast path")
				assert.Less(t, a.Bytes, uint64(size/2), "the bridge saw only the start")
				assert.Positive(t, a.Bypassed)
				assert.Positive(t, st.Bypass.Total)
				assert.Positive(t, st.Bypass.Closed, "the FIN returned the flow to the bridge")
				assert.Zero(t, st.Bypass.Current, "and the verdict judged the teardown")
				for _, d := range []verdict.Direction{verdict.AToB, verdict.BToA} {
					c := st.Dir(d)
					assert.Zero(t, c.Truncated+c.Malformed+c.Oversize+c.TXErrors, "%v: nothing lost or mangled", d)
					assert.Equal(t, c.Received, c.Forwarded, "%v: every frame received was forwarded", d)
				}
			})
		}
	}
}

// TestBypassWithdraw: a drop rule loaded after a flow was bypassed does nothing to it until the
// bypass is withdrawn, and then drops it; other flows are judged all along.
func TestBypassWithdraw(t *testing.T) {
	tp := newTopo(t, nil)
	var drop atomic.Bool
	cfg := tp.config(1)
	cfg.Verdict = bypassVerdict(0, &drop)
	cfg.Bypass = peer.BypassConfig{Enable: true, Require: true}
	br := tp.start(t, cfg)
	cli, srv := udpSocket(t, tp, true), udpSocket(t, tp, false)

	// Flow 1 is bypassed at its first frame and handed over. The rule must meet a live flow:
	// one the fast path has forwarded a frame of.
	require.Equal(t, 50, udpExchange(t, cli, srv, 50, passWait), "flow 1 before the rule")
	untilLive(t, br, cli, srv)
	drop.Store(true)
	require.Equal(t, 50, udpExchange(t, cli, srv, 50, passWait), "the rule does not touch a bypassed flow: %+v", br.Stats().Bypass)
	other := udpSocket(t, tp, true)
	assert.Equal(t, 0, udpExchange(t, other, srv, 10, dropWait), "a new flow is judged, and dropped")

	n, err := br.WithdrawAll()
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, 0, udpExchange(t, cli, srv, 10, dropWait), "withdrawn: flow 1 is judged again, and dropped")
	st := br.Stats()
	assert.Equal(t, uint64(1), st.Bypass.Withdrawn)
	assert.Positive(t, st.Bypass.Frames[0])
}

// untilLive sends datagrams of the flow from cli, with pauses, until the fast path has forwarded
// one of them. A flow goes live at the first pause in which the bridge has caught up with it (see
// bypass's package comment). Back-to-back exchanges may offer none: on a loaded machine the
// receiver's wake-up can preempt the worker between sending a frame and publishing that it left,
// and the next datagram then finds its predecessor still counted as in flight, every time.
func untilLive(t *testing.T, br *peer.Bridge, cli, srv *net.UDPConn) {
	t.Helper()
	for i := 0; br.Stats().Bypass.Frames[0] == 0; i++ {
		require.Less(t, i, 1000, "the flow never went live on the fast path: %+v", br.Stats().Bypass)
		require.Equal(t, 1, udpExchange(t, cli, srv, 1, passWait))
		time.Sleep(time.Millisecond)
	}
}

// udpSocket opens a UDP socket on the client (198.18.0.1) or the server (198.18.0.2, port 9).
func udpSocket(t *testing.T, tp *topo, client bool) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	ns, addr := tp.server, &net.UDPAddr{IP: net.ParseIP(serverIP), Port: 9}
	if client {
		ns, addr = tp.client, &net.UDPAddr{IP: net.ParseIP(clientIP)}
	}
	require.NoError(t, ns.Do(func() (err error) { c, err = net.ListenUDP("udp4", addr); return }))
	t.Cleanup(func() { c.Close() })
	return c
}

// udpExchange sends n numbered datagrams from cli to the server socket, one at a time, and
// returns how many arrived, each within wait of being sent. Exchanges that must get through
// wait long (a bound for a hang: the first datagram also waits for ARP through the bridge, and
// a -race build on a loaded machine can take far more than 200 ms to forward a frame); the
// ones that must be dropped wait a short window. A datagram counts only if it is the one just
// sent, from cli.
func udpExchange(t *testing.T, cli, srv *net.UDPConn, n int, wait time.Duration) int {
	t.Helper()
	to := &net.UDPAddr{IP: net.ParseIP(serverIP), Port: 9}
	from := cli.LocalAddr().(*net.UDPAddr).Port
	got := 0
	buf := make([]byte, 64)
	for i := range n {
		_, err := cli.WriteToUDP(binary.BigEndian.AppendUint32(nil, uint32(i)), to)
		require.NoError(t, err)
		require.NoError(t, srv.SetReadDeadline(time.Now().Add(wait)))
		for {
			k, addr, err := srv.ReadFromUDP(buf)
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) && !isTimeout(err) {
					require.NoError(t, err)
				}
				break
			}
			if k == 4 && addr.Port == from && binary.BigEndian.Uint32(buf) == uint32(i) {
				got++
				break
			}
		}
	}
	return got
}

// passWait bounds the wait for a datagram that must get through, dropWait the window in which
// one that must be dropped would have shown up.
const passWait, dropWait = 10 * time.Second, 200 * time.Millisecond

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestBypassCloseLeavesNothing: after Close no tcx program is attached to either port.
func TestBypassCloseLeavesNothing(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	cfg.Bypass = peer.BypassConfig{Enable: true, Require: true}
	br := tp.start(t, cfg)
	progs := func() int {
		n := 0
		for _, l := range []testenv.Link{tp.b0, tp.b1} {
			idx := l.Interface(t).Index
			require.NoError(t, tp.bridge.Do(func() error {
				r, err := link.QueryPrograms(link.QueryOptions{Target: idx, Attach: ebpf.AttachTCXIngress})
				if err == nil {
					n += len(r.Programs)
				}
				return err
			}))
		}
		return n
	}
	assert.Equal(t, 2, progs(), "one tcx program per port while running")
	require.NoError(t, br.Close())
	assert.Equal(t, 0, progs(), "none after Close")
}

// TestBypassRebind: port B is deleted and re-created under a bypassing bridge; after the
// re-bind the tc programs are on the new ifindex and the redirect from A targets it.
func TestBypassRebind(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(1)
	cfg.Verdict = bypassVerdict(0, nil)
	cfg.Bypass = peer.BypassConfig{Enable: true, Require: true}
	br := tp.start(t, cfg)
	cli, srv := udpSocket(t, tp, true), udpSocket(t, tp, false)
	require.Equal(t, 50, udpExchange(t, cli, srv, 50, passWait))
	untilLive(t, br, cli, srv)
	before := br.Stats().Bypass.Frames[0]
	old := br.Stats().B.Index

	tp.bridge.Run("ip", "link", "del", "b1")
	require.Eventually(t, func() bool { return br.Stats().B.Removals == 1 }, 20*time.Second, time.Millisecond)
	tp.b1, tp.s0 = testenv.Veth(t, tp.bridge, "b1", tp.server, "s0", nil)
	tp.s0.Run(t, "ip", "addr", "add", serverIP+"/24", "dev", "s0")
	require.Eventually(t, func() bool { return br.Stats().B.Rebinds == 1 && br.Stats().B.Up }, 20*time.Second, time.Millisecond)
	require.NotEqual(t, old, br.Stats().B.Index)
	tp.c0.Run(t, "ip", "neigh", "flush", "all") // the new s0 has a new MAC address

	require.Equal(t, 50, udpExchange(t, cli, srv, 50, passWait), "the bypassed flow reaches the new port")
	st := br.Stats()
	assert.Greater(t, st.Bypass.Frames[0], before+40, "on the fast path, redirected to the new ifindex")
}

// TestBypassSaturating: a TCP sender that never pauses keeps the bridge's ring full, so with
// HandoverLimit its data direction hands over anyway; the transfer stays intact (TCP absorbs the
// reordering) and most of it takes the fast path.
func TestBypassSaturating(t *testing.T) {
	tp := newTopo(t, &testenv.VethConfig{OffloadsOff: true})
	cfg := tp.config(1)
	cfg.Verdict = bypassVerdict(1<<20, nil)
	cfg.Bypass = peer.BypassConfig{Enable: true, Require: true, HandoverLimit: 256}
	br := tp.start(t, cfg)
	size := 16 << 20
	tcpTransfer(t, tp, size)
	st := br.Stats()
	t.Logf("bridge A->B %d bytes; fast path %+v", st.Dir(verdict.AToB).Bytes, st.Bypass)
	assert.Greater(t, st.Bypass.Bytes[0], uint64(size/2), "most of the transfer took the fast path")
}
