//go:build linux

package peer_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTraffic sends ping and a content-checked TCP transfer through the bridge, with veth
// offloads at their defaults (checksum, TSO, GSO on) and all off, for 1, 2 and 4 workers.
func TestTraffic(t *testing.T) {
	testenv.RequireTool(t, "ping")
	size := 50 << 20
	if testing.Short() {
		size = 8 << 20
	}
	for _, offload := range []bool{true, false} {
		for _, threads := range []int{1, 2, 4} {
			t.Run(fmt.Sprintf("offloads=%v/workers=%d", offload, threads), func(t *testing.T) {
				tp := newTopo(t, &testenv.VethConfig{OffloadsOff: !offload})
				br := tp.start(t, tp.config(threads))
				tp.ping(t, 3)
				start := time.Now()
				tcpTransfer(t, tp, size)
				el := time.Since(start)
				st := br.Stats()
				t.Logf("%d MB in %v (%.2f Gbit/s); A->B %+v", size>>20, el.Round(time.Millisecond),
					float64(size)*8/el.Seconds()/1e9, st.Dir(verdict.AToB))
				for _, d := range []verdict.Direction{verdict.AToB, verdict.BToA} {
					c := st.Dir(d)
					assert.Zero(t, c.Truncated+c.Malformed+c.Oversize+c.TXErrors, "%v: nothing lost or mangled", d)
					assert.Equal(t, c.Received, c.Forwarded, "%v: every frame received was forwarded", d)
				}
			})
		}
	}
}

// tcpTransfer streams size bytes of pseudo-random data from the client to the server and checks
// the server received exactly those bytes.
func tcpTransfer(t *testing.T, tp *topo, size int) {
	t.Helper()
	tcpTransferPaced(t, tp, size, 0)
}

// tcpTransferPaced is tcpTransfer with the sending application pausing for pause after every
// 256 KiB it writes, through a 128 KiB send buffer so that the pauses show on the wire (no pause
// when zero).
func tcpTransferPaced(t *testing.T, tp *topo, size int, pause time.Duration) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, tp.server.Do(func() (err error) { ln, err = net.Listen("tcp4", serverIP+":0"); return }))
	defer ln.Close()
	type result struct {
		n   int64
		sum [32]byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r result
		r.n, r.err = n, err
		copy(r.sum[:], h.Sum(nil))
		res <- r
	}()
	var conn net.Conn
	require.NoError(t, tp.client.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
		return
	}))
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	h := sha256.New()
	var src io.Reader = io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), int64(size)), h)
	if pause > 0 {
		src = &pacedReader{r: src, pause: pause}
		// A small send buffer, so that the pauses reach the wire.
		require.NoError(t, conn.(*net.TCPConn).SetWriteBuffer(128<<10))
	}
	_, err := io.Copy(conn, src)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	r := <-res
	require.NoError(t, r.err)
	assert.Equal(t, int64(size), r.n, "bytes received")
	assert.Equal(t, h.Sum(nil), r.sum[:], "content intact")
}

// exchange sends frames from src and collects them at dst in windows small enough that no ring
// overflows even under the race detector; it returns every test frame dst received. It sends
// from one CPU, so that the frames reach the bridge in the order sent (see [testenv.OneCPU]).
func exchange(t *testing.T, src, dst *pktgen.Conn, frames [][]byte) [][]byte {
	t.Helper()
	const window = 100
	var got [][]byte
	for i := 0; i < len(frames); i += window {
		end := min(i+window, len(frames))
		require.NoError(t, testenv.OneCPU(func() {
			for _, f := range frames[i:end] {
				require.NoError(t, src.Send(f))
			}
		}))
		got = append(got, dst.Collect(end-len(got), 2*time.Second, 20*time.Second)...)
	}
	// Anything late or duplicated shows up here.
	return append(got, dst.Collect(1, 200*time.Millisecond, 300*time.Millisecond)...)
}

// TestFramesExact sends random-size frames, untagged and tagged, and checks that each arrives
// exactly once and byte for byte (tag included), with nothing else, in both directions.
func TestFramesExact(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 2000
	}
	for _, tc := range []struct {
		name    string
		mtu     int
		threads int
		maxSize int
		count   int
	}{
		{"mtu1500/1worker", 1500, 1, 1514, n},
		{"mtu1500/4workers", 1500, 4, 1514, n},
		{"mtu9000/2workers", 9000, 2, 9014, n / 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := newTopo(t, &testenv.VethConfig{MTU: tc.mtu})
			br := tp.start(t, tp.config(tc.threads))
			client, server := tp.open(t)
			rng := rand.New(rand.NewPCG(uint64(tc.mtu), uint64(tc.threads)))
			var frames [][]byte
			for i := range tc.count {
				size := 60 + rng.IntN(tc.maxSize-60+1)
				f := pktgen.Frame(nil, tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr, uint32(i), size)
				switch i % 3 {
				case 1:
					f = pktgen.Tag(f[:len(f)-4], unix.ETH_P_8021Q, uint16(i%4096)) // TCI 0 included
				case 2:
					f = pktgen.Tag(f[:len(f)-4], unix.ETH_P_8021AD, uint16(i%4096))
				}
				frames = append(frames, f)
			}
			got := exchange(t, client, server, frames)
			checkExact(t, frames, got)

			// And back, server to client.
			back := make([][]byte, 0, 500)
			for i := range 500 {
				f := pktgen.Frame(nil, tp.cIfi.HardwareAddr, tp.sIfi.HardwareAddr, uint32(i), 60+i*2)
				if i%2 == 1 {
					f = pktgen.Tag(f, unix.ETH_P_8021AD, uint16(i))
				}
				back = append(back, f)
			}
			checkExact(t, back, exchange(t, server, client, back))
			st := br.Stats()
			t.Logf("A->B %+v", st.Dir(verdict.AToB))
			assert.Zero(t, st.Dir(verdict.AToB).KernelDrops, "no ring overflow")
		})
	}
}

// checkExact asserts that got holds each of want exactly once, byte for byte.
func checkExact(t *testing.T, want, got [][]byte) {
	t.Helper()
	key := func(f []byte) string { return string(f) }
	seen := map[string]int{}
	for _, f := range got {
		seen[key(f)]++
	}
	missing, dup := 0, 0
	for _, f := range want {
		switch seen[key(f)] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
		delete(seen, key(f))
	}
	assert.Zero(t, missing, "frames missing or altered")
	assert.Zero(t, dup, "frames duplicated")
	assert.Empty(t, seen, "frames nobody sent")
	assert.Equal(t, len(want), len(got), "frames received")
}

// markerVerdict drops test frames of exactly 101 bytes: the "marked" ones.
var markerVerdict = verdict.Shared(verdict.Func(func(p *verdict.Packet) verdict.Verdict {
	if len(p.Data) == 101 && pktgen.IsTest(p.Data) {
		return verdict.Drop
	}
	return verdict.Pass
}))

func TestVerdictIPSAndTap(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	cfg.A.CopyMode = peer.IPS // client -> server honours drops
	cfg.B.CopyMode = peer.Tap // server -> client only counts them
	cfg.Verdict = markerVerdict
	br := tp.start(t, cfg)
	client, server := tp.open(t)

	mk := func(dst, src net.HardwareAddr) (all, passed [][]byte) {
		for i := range 300 {
			size := 100
			if i%3 == 0 {
				size = 101
			}
			f := pktgen.Frame(nil, dst, src, uint32(i), size)
			if size == 100 {
				passed = append(passed, f)
			}
			all = append(all, f)
		}
		return all, passed
	}
	all, passed := mk(tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr)
	checkExact(t, passed, exchange(t, client, server, all))
	allBack, _ := mk(tp.cIfi.HardwareAddr, tp.sIfi.HardwareAddr)
	checkExact(t, allBack, exchange(t, server, client, allBack))

	st := br.Stats()
	ab, ba := st.Dir(verdict.AToB), st.Dir(verdict.BToA)
	assert.Equal(t, uint64(100), ab.Dropped, "ips drops exactly the marked frames")
	assert.Zero(t, ab.WouldDrop)
	assert.Equal(t, uint64(100), ba.WouldDrop, "tap counts them")
	assert.Zero(t, ba.Dropped)
	assert.Equal(t, ab.Received, ab.Forwarded+ab.Dropped, "counters add up")
	assert.Equal(t, uint64(200*100+100*101), ab.Bytes, "bytes of every frame received")
}

func TestVerdictRewrites(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(1)
	cfg.Verdict = verdict.Shared(verdict.Func(func(p *verdict.Packet) verdict.Verdict {
		if len(p.Data) > 40 {
			p.Data[40] ^= 0xff
		}
		return verdict.Pass
	}))
	tp.start(t, cfg)
	client, server := tp.open(t)
	f := pktgen.Frame(nil, tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr, 1, 200)
	got := exchange(t, client, server, [][]byte{f})
	require.Len(t, got, 1)
	want := bytes.Clone(f)
	want[40] ^= 0xff
	assert.Equal(t, want, got[0])
}

// TestFlowAffinity runs 100 TCP flows through 4 workers and checks that every frame of a flow,
// in both directions, was judged by one worker.
func TestFlowAffinity(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(4)
	type key struct{ lo, hi uint16 } // the two TCP ports of a flow, sorted
	seen := make([]map[key]int, 4)   // per worker: no lock needed, that is the point
	cfg.Verdict = verdict.FactoryFunc(func(w int) verdict.Handler {
		m := map[key]int{}
		seen[w] = m
		return verdict.Func(func(p *verdict.Packet) verdict.Verdict {
			d := p.Data
			if len(d) >= 38 && binary.BigEndian.Uint16(d[12:]) == 0x0800 && d[23] == 6 {
				ihl := int(d[14]&0xf) * 4
				a, b := binary.BigEndian.Uint16(d[14+ihl:]), binary.BigEndian.Uint16(d[16+ihl:])
				m[key{min(a, b), max(a, b)}] |= 1 << p.Dir
			}
			return verdict.Pass
		})
	})
	br := tp.start(t, cfg)

	var ln net.Listener
	require.NoError(t, tp.server.Do(func() (err error) { ln, err = net.Listen("tcp4", serverIP+":0"); return }))
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 100 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.Copy(c, c)
			c.Close()
		}
	}()
	for i := range 100 {
		var c net.Conn
		require.NoError(t, tp.client.Do(func() (err error) {
			c, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
			return
		}))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := []byte(strings.Repeat(fmt.Sprint(i), 100))
		_, err := c.Write(msg)
		require.NoError(t, err)
		c.(*net.TCPConn).CloseWrite()
		echo, err := io.ReadAll(c)
		require.NoError(t, err)
		require.Equal(t, msg, echo)
		c.Close()
	}
	wg.Wait()
	br.Close() // workers stop, so their maps may be read

	owner := map[key]int{}
	used := map[int]bool{}
	for w, m := range seen {
		for k, dirs := range m {
			if prev, ok := owner[k]; ok {
				t.Errorf("flow %v seen by workers %d and %d", k, prev, w)
			}
			owner[k] = w
			used[w] = true
			assert.Equal(t, 3, dirs, "flow %v: worker %d saw both directions", k, w)
		}
	}
	assert.Len(t, owner, 100, "every flow was seen")
	assert.Greater(t, len(used), 1, "flows spread over workers")
}

// TestHostFramesNotBridged sends a frame from the bridge host itself out of a bridged port: it must
// reach the client (it was sent there) but never come out of the other port.
func TestHostFramesNotBridged(t *testing.T) {
	tp := newTopo(t, nil)
	tp.start(t, tp.config(2))
	client, server := tp.open(t)
	b0 := tp.b0.Interface(t)
	var host *pktgen.Conn
	require.NoError(t, tp.bridge.Do(func() (err error) { host, err = pktgen.Open(b0.Index); return }))
	defer host.Close()
	f := pktgen.Frame(nil, tp.sIfi.HardwareAddr, b0.HardwareAddr, 42, 100)
	for range 5 {
		require.NoError(t, host.Send(f))
	}
	assert.Len(t, client.Collect(5, 2*time.Second, 10*time.Second), 5, "the client got the host's frames")
	assert.Empty(t, server.Collect(1, 500*time.Millisecond, time.Second), "the bridge did not forward them")
}

func TestValidate(t *testing.T) {
	tp := newTopo(t, nil)
	tp.b1.Run(t, "ip", "link", "set", "b1", "mtu", "9000")
	tests := []struct {
		name   string
		mut    func(*peer.Config)
		phrase []string
	}{
		{"threads", func(c *peer.Config) { c.Threads = -1 }, []string{"threads -1 is negative"}},
		{"cluster type", func(c *peer.Config) { c.ClusterType = fanout.CBPF }, []string{"cluster type cbpf needs a program"}},
		{"unknown cluster type", func(c *peer.Config) { c.ClusterType = 200 }, []string{"unknown cluster type 200"}},
		{"tick", func(c *peer.Config) { c.TickInterval = -time.Second }, []string{"tick interval -1s is negative"}},
		{"ring", func(c *peer.Config) { c.B.Ring.FrameSize = 1000 }, []string{"b1: ring: FrameSize 1000 is not a multiple of 16"}},
		{"mtu", func(c *peer.Config) {}, []string{"MTUs differ", "b0 has 1500", "b1 has 9000"}},
		{"cluster id", func(c *peer.Config) { c.A.ClusterID, c.B.ClusterID = 7, 7 }, []string{"b0 and b1 both use cluster id 7"}},
		{"self", func(c *peer.Config) { c.B.Interface = "b0" }, []string{"b0 is peered with itself"}},
		{"missing", func(c *peer.Config) { c.B.Interface = "nosuch" }, []string{`no interface named "nosuch"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tp.config(1)
			tt.mut(&cfg)
			var err error
			require.NoError(t, tp.bridge.Do(func() error { err = peer.Validate(cfg); return nil }))
			require.Error(t, err)
			for _, p := range tt.phrase {
				assert.Contains(t, err.Error(), p)
			}
			var ce *peer.ConfigError
			assert.True(t, errors.As(err, &ce))
			// Start refuses the same configuration.
			br, _ := peer.New(cfg)
			require.NoError(t, tp.bridge.Do(func() error { err = br.Start(); return nil }))
			assert.Error(t, err)
		})
	}
}

func TestPreflight(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(1)
	var findings []peer.Finding
	require.NoError(t, tp.bridge.Do(func() error { findings = peer.Preflight(cfg); return nil }))
	assert.Empty(t, findings, "a clean setup has nothing to report")

	tp.bridge.Run("ip", "link", "add", "kbr0", "type", "bridge")
	testenv.MustRun(t, tp.bridge, "ip", "link", "set", "b0", "master", "kbr0")
	testenv.MustRun(t, tp.bridge, "ip", "addr", "add", "198.19.0.1/24", "dev", "b1")
	require.NoError(t, tp.bridge.Do(func() error { findings = peer.Preflight(cfg); return nil }))
	var text []string
	for _, f := range findings {
		text = append(text, f.String())
	}
	all := strings.Join(text, "\n")
	t.Log(all)
	assert.Contains(t, all, "b0: enslaved to bridge kbr0")
	assert.Contains(t, all, "ip link set b0 nomaster")
	assert.Contains(t, all, "b1: has IP address 198.19.0.1/24")
}

// TestPreflightCarrier: a port that is up without carrier is reported only after a bounded
// wait, and not at all when the carrier comes within it, as right after the links come up.
func TestPreflightCarrier(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(1)
	tp.c0.Run(t, "ip", "link", "set", "c0", "down") // b0 stays up, without carrier
	// The kernel's link watcher updates the operational state (IFF_RUNNING) a moment later.
	for deadline := time.Now().Add(10 * time.Second); tp.b0.Interface(t).Flags&net.FlagRunning != 0; time.Sleep(10 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "b0 still has carrier 10s after c0 went down")
	}
	var findings []peer.Finding
	require.NoError(t, tp.bridge.Do(func() error { findings = peer.Preflight(cfg); return nil }))
	require.Len(t, findings, 1, "%v", findings)
	assert.Equal(t, peer.Critical, findings[0].Severity)
	assert.Equal(t, "b0", findings[0].Interface)
	assert.Equal(t, "no carrier: the link is down (waited 2s for it)", findings[0].Problem)

	// The peer comes up while Preflight runs: it waits for the carrier and reports nothing.
	up := make(chan string, 1)
	go func() {
		out, err := tp.client.Run("ip", "link", "set", "c0", "up")
		if err != nil {
			out += err.Error()
		}
		up <- out
	}()
	require.NoError(t, tp.bridge.Do(func() error { findings = peer.Preflight(cfg); return nil }))
	require.Empty(t, <-up)
	assert.Empty(t, findings, "the carrier came within the wait")
}

func TestPreflightGOMAXPROCS(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	var findings []peer.Finding
	require.NoError(t, tp.bridge.Do(func() error { findings = peer.Preflight(cfg); return nil }))
	require.Len(t, findings, 1)
	assert.Equal(t, peer.Warning, findings[0].Severity)
	assert.Contains(t, findings[0].Problem, "GOMAXPROCS is 1 for 2 workers")
	assert.Contains(t, findings[0].Fix, "GOMAXPROCS=3")

	runtime.GOMAXPROCS(2)
	require.NoError(t, tp.bridge.Do(func() error { findings = peer.Preflight(cfg); return nil }))
	assert.Empty(t, findings, "one P per worker is enough")
}

func TestVerdictPanic(t *testing.T) {
	for _, policy := range []peer.Policy{peer.FailOpen, peer.FailClosed} {
		t.Run(policy.String(), func(t *testing.T) {
			tp := newTopo(t, nil)
			cfg := tp.config(1)
			cfg.OnPanic = policy
			// Every other frame makes the verdict fail, each time differently: a panic with a
			// string or an error, a nil map write, an index out of range.
			var nilMap map[uint32]bool
			cfg.Verdict = verdict.Shared(verdict.Func(func(p *verdict.Packet) verdict.Verdict {
				if seq, ok := pktgen.Check(p.Data); ok && seq%2 == 0 {
					switch seq % 8 {
					case 0:
						panic("verdict bug")
					case 2:
						panic(errors.New("verdict error"))
					case 4:
						nilMap[seq] = true
					case 6:
						_ = p.Data[len(p.Data)+int(seq)]
					}
				}
				return verdict.Pass
			}))
			br := tp.start(t, cfg)
			client, server := tp.open(t)
			var frames, odd [][]byte
			for i := range 100 {
				f := pktgen.Frame(nil, tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr, uint32(i), 80)
				frames = append(frames, f)
				if i%2 == 1 {
					odd = append(odd, f)
				}
			}
			got := exchange(t, client, server, frames)
			want := odd
			if policy == peer.FailOpen {
				want = frames
			}
			checkExact(t, want, got)
			// The worker carried on with the very next frame each time, in order.
			var seqs []uint32
			for _, f := range got {
				seq, _ := pktgen.Check(f)
				seqs = append(seqs, seq)
			}
			assert.IsIncreasing(t, seqs, "frames arrive in order around the panics")
			c := br.Stats().Dir(verdict.AToB)
			assert.Equal(t, uint64(50), c.Panics)
			assert.Equal(t, c.Received, c.Forwarded+c.Dropped)
			// And it still forwards afterwards.
			checkExact(t, odd, exchange(t, client, server, odd))
		})
	}
}

// TestDefragRefragments sends a 4000-byte UDP datagram, fragmented by the client's stack; with
// fanout defrag the bridge gets it whole, judges it whole, and must fragment it again to fit the
// server's MTU.
func TestDefragRefragments(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	cfg.Defrag = true
	var whole sync.Map
	cfg.Verdict = verdict.Shared(verdict.Func(func(p *verdict.Packet) verdict.Verdict {
		if len(p.Data) > 4000 {
			whole.Store(len(p.Data), true)
		}
		return verdict.Pass
	}))
	br := tp.start(t, cfg)

	pc, cc := udpPair(t, tp)
	msg := make([]byte, 4000)
	for i := range msg {
		msg[i] = byte(i * 13)
	}
	buf := make([]byte, 9000)
	for range 3 {
		_, err := cc.Write(msg)
		require.NoError(t, err)
		pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		require.NoError(t, err)
		assert.Equal(t, msg, buf[:n])
	}
	// Counters are published after the batch is flushed, a moment after the frames leave.
	var c peer.Counters
	assert.Eventually(t, func() bool {
		c = br.Stats().Dir(verdict.AToB)
		return c.Fragments >= 9
	}, 2*time.Second, 10*time.Millisecond, "3 datagrams, 3 fragments each")
	t.Logf("A->B %+v", c)
	_, sawWhole := whole.Load(14 + 20 + 8 + 4000)
	assert.True(t, sawWhole, "the verdict saw the reassembled datagram")
}

// pacedReader sleeps for pause after every 256 KiB read through it, like an application that
// writes in bursts.
type pacedReader struct {
	r     io.Reader
	pause time.Duration
	n     int
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if len(b) > 32<<10 {
		b = b[:32<<10]
	}
	n, err := p.r.Read(b)
	if p.n += n; p.n >= 256<<10 {
		p.n = 0
		time.Sleep(p.pause)
	}
	return n, err
}

// udpPair opens a UDP socket on the server and one connected to it on the client, both closed
// when the test ends.
func udpPair(t *testing.T, tp *topo) (net.PacketConn, net.Conn) {
	t.Helper()
	var pc net.PacketConn
	require.NoError(t, tp.server.Do(func() (err error) { pc, err = net.ListenPacket("udp4", serverIP+":0"); return }))
	t.Cleanup(func() { pc.Close() })
	var cc net.Conn
	require.NoError(t, tp.client.Do(func() (err error) { cc, err = net.Dial("udp4", pc.LocalAddr().String()); return }))
	t.Cleanup(func() { cc.Close() })
	return pc, cc
}
