//go:build linux

package afpacket_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture is a veth pair with an afpacket.Conn on the local end and a pktgen socket on the remote.
type fixture struct {
	testenv.Pair
	local, remote *net.Interface
	peer          *pktgen.Conn
}

func newFixture(t *testing.T, veth *testenv.VethConfig) *fixture {
	t.Helper()
	p := testenv.NewPair(t, veth)
	f := &fixture{Pair: p, local: p.Local.Interface(t), remote: p.Remote.Interface(t)}
	require.NoError(t, p.Remote.NS.Do(func() (err error) { f.peer, err = pktgen.Open(f.remote.Index); return }))
	t.Cleanup(func() { f.peer.Close() })
	return f
}

func (f *fixture) listen(t *testing.T, cfg *afpacket.Config) *afpacket.Conn {
	t.Helper()
	var c *afpacket.Conn
	require.NoError(t, f.Local.NS.Do(func() (err error) { c, err = afpacket.Listen(f.Local.Name, cfg); return }))
	t.Cleanup(func() { c.Close() })
	return c
}

func (f *fixture) frame(seq uint32, size int) []byte {
	return pktgen.Frame(nil, f.local.HardwareAddr, f.remote.HardwareAddr, seq, size)
}

// readTest reads frames until a test frame arrives or the deadline passes.
func readTest(t *testing.T, c *afpacket.Conn, buf []byte, timeout time.Duration) (int, afpacket.Info, error) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(timeout)))
	for range 10000 {
		n, info, err := c.ReadMsg(buf)
		if err != nil || pktgen.IsTest(buf[:n]) && info.PktType != unix.PACKET_OUTGOING {
			return n, info, err
		}
	}
	return 0, afpacket.Info{}, errors.New("no test frame among 10000")
}

func TestListenErrors(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name   string
		open   func() (*afpacket.Conn, error)
		is     error
		phrase string
	}{
		{"unknown name", func() (*afpacket.Conn, error) { return afpacket.Listen("nosuch0", nil) }, unix.ENODEV, `no interface named "nosuch0"`},
		{"unknown index", func() (*afpacket.Conn, error) { return afpacket.ListenIndex(99999, nil) }, unix.ENODEV, "no interface with index 99999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NoError(t, f.Local.NS.Do(func() error { _, err = tt.open(); return nil }))
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.is)
			assert.Contains(t, err.Error(), tt.phrase)
			var op *net.OpError
			require.ErrorAs(t, err, &op)
			assert.Equal(t, afpacket.Network, op.Net)
		})
	}
}

func TestListenDownInterface(t *testing.T) {
	f := newFixture(t, nil)
	f.Local.Run(t, "ip", "link", "set", f.Local.Name, "down")
	var err error
	require.NoError(t, f.Local.NS.Do(func() error { _, err = afpacket.Listen(f.Local.Name, nil); return nil }))
	require.Error(t, err)
	assert.ErrorIs(t, err, unix.ENETDOWN)
	assert.Contains(t, err.Error(), "ip link set afb0 up")

	c := f.listen(t, &afpacket.Config{AllowDown: true})
	ifi, err := c.Interface()
	require.NoError(t, err)
	assert.False(t, ifi.Up)
	assert.False(t, ifi.Carrier)
}

// TestListenWithoutCapNetRaw drops CAP_NET_RAW on one locked thread (capabilities are per
// thread) and checks that the error says what is missing.
func TestListenWithoutCapNetRaw(t *testing.T) {
	f := newFixture(t, nil)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// This thread is never unlocked: it dies with the goroutine, taking its lowered
		// capabilities (and namespace) with it.
		errc <- f.Local.NS.Do(func() error {
			runtime.LockOSThread() // Do's own goroutine; keep it from being reused either
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var data [2]unix.CapUserData
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				return err
			}
			data[0].Effective &^= 1 << unix.CAP_NET_RAW
			if err := unix.Capset(&hdr, &data[0]); err != nil {
				return err
			}
			_, err := afpacket.Listen(f.Local.Name, nil)
			if err == nil {
				return errors.New("Listen succeeded without CAP_NET_RAW")
			}
			if !errors.Is(err, os.ErrPermission) {
				return err
			}
			if !errors.Is(err, unix.EPERM) {
				return err
			}
			t.Logf("error without CAP_NET_RAW: %v", err)
			assert.Contains(t, err.Error(), "CAP_NET_RAW")
			return nil
		})
	}()
	require.NoError(t, <-errc)
}

func TestReadWrite(t *testing.T) {
	f := newFixture(t, nil)
	c := f.listen(t, &afpacket.Config{Auxdata: true, Promiscuous: true})

	// Remote -> local: ReadFrom sees the frame byte for byte.
	want := f.frame(7, 200)
	require.NoError(t, f.peer.Send(want))
	buf := make([]byte, 2048)
	n, info, err := readTest(t, c, buf, 2*time.Second)
	require.NoError(t, err)
	assert.Equal(t, want, buf[:n])
	assert.Equal(t, f.local.Index, info.Ifindex)
	assert.Equal(t, uint8(unix.PACKET_HOST), info.PktType)
	assert.True(t, info.AuxValid)
	assert.Equal(t, len(want), info.Len)

	// Local -> remote: WriteTo sends it unchanged.
	out := pktgen.Frame(nil, f.remote.HardwareAddr, f.local.HardwareAddr, 9, 300)
	_, err = c.WriteTo(out, nil)
	require.NoError(t, err)
	got := f.peer.Collect(1, time.Second, 2*time.Second)
	require.Len(t, got, 1)
	assert.Equal(t, out, got[0])

	// A short buffer truncates, and the info says how long the frame was.
	require.NoError(t, f.peer.Send(f.frame(8, 500)))
	small := make([]byte, 100)
	n, info, err = readTest(t, c, small, 2*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 100, n)
	assert.Equal(t, 500, info.Len)
}

func TestAuxdataVLAN(t *testing.T) {
	f := newFixture(t, nil)
	c := f.listen(t, &afpacket.Config{Auxdata: true})
	for _, tt := range []struct {
		tpid, tci uint16
	}{{unix.ETH_P_8021Q, 0}, {unix.ETH_P_8021Q, 0x2064}, {unix.ETH_P_8021AD, 0}, {unix.ETH_P_8021AD, 100}} {
		plain := f.frame(uint32(tt.tci), 100)
		require.NoError(t, f.peer.Send(pktgen.Tag(plain, tt.tpid, tt.tci)))
		buf := make([]byte, 2048)
		n, info, err := readTest(t, c, buf, 2*time.Second)
		require.NoError(t, err)
		assert.NotZero(t, info.Status&unix.TP_STATUS_VLAN_VALID, "tpid %#x tci %d: tag reported", tt.tpid, tt.tci)
		assert.Equal(t, tt.tpid, info.VLANTPID)
		assert.Equal(t, tt.tci, info.VLANTCI)
		assert.Equal(t, plain, buf[:n], "the kernel stripped the outer tag")
	}
}

// TestFilterBeforeBind floods the interface while the socket opens: a filter that passes only
// even sequence numbers must hold from the very first frame.
func TestFilterBeforeBind(t *testing.T) {
	f := newFixture(t, nil)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2_000_000 && !stop.Load(); i++ {
			if f.peer.Send(f.frame(uint32(i), 64)) != nil {
				return
			}
		}
	}()
	defer func() { stop.Store(true); <-done }()
	time.Sleep(20 * time.Millisecond) // the flood is running before the socket exists

	even := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: pktgen.EtherType, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 21, Size: 1}, // low byte of the sequence number
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 1, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
	for round := range 5 {
		c := f.listen(t, &afpacket.Config{Filter: even})
		buf := make([]byte, 2048)
		for i := range 200 {
			n, _, err := c.ReadMsg(buf)
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
			require.NoError(t, err)
			seq, ok := pktgen.Check(buf[:n])
			require.True(t, ok, "round %d frame %d is a test frame", round, i)
			require.Zero(t, seq%2, "round %d frame %d: odd seq %d passed the filter", round, i, seq)
		}
		c.Close()
	}
}

func TestSetBPF(t *testing.T) {
	f := newFixture(t, nil)
	dropAll := []bpf.Instruction{bpf.RetConstant{Val: 0}}
	c := f.listen(t, &afpacket.Config{Filter: dropAll})
	buf := make([]byte, 2048)

	require.NoError(t, f.peer.Send(f.frame(1, 80)))
	_, _, err := readTest(t, c, buf, 200*time.Millisecond)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "drop-all filter passes nothing")

	require.NoError(t, c.SetBPF(nil))
	require.NoError(t, f.peer.Send(f.frame(2, 80)))
	n, _, err := readTest(t, c, buf, 2*time.Second)
	require.NoError(t, err)
	seq, ok := pktgen.Check(buf[:n])
	assert.True(t, ok)
	assert.Equal(t, uint32(2), seq)

	assert.Error(t, c.SetBPF([]bpf.Instruction{bpf.Jump{Skip: 5}}), "a jump out of the program is refused")
}

func TestStatsCumulative(t *testing.T) {
	f := newFixture(t, nil)
	// A tiny receive buffer and no reader: most of the burst is dropped.
	c := f.listen(t, &afpacket.Config{RecvBuffer: 4096})
	const sent = 2000
	for i := range sent {
		require.NoError(t, f.peer.Send(f.frame(uint32(i), 1000)))
	}
	time.Sleep(50 * time.Millisecond)
	s1, err := c.Stats()
	require.NoError(t, err)
	assert.Positive(t, s1.Drops, "a full buffer drops frames")
	assert.GreaterOrEqual(t, s1.Packets, s1.Drops, "the kernel counts drops among packets")
	assert.GreaterOrEqual(t, s1.Packets, uint64(sent), "every frame was counted")

	// The kernel resets its counters on read; Stats must not go backwards.
	s2, err := c.Stats()
	require.NoError(t, err)
	assert.Equal(t, s1, s2)
	for i := range 100 {
		require.NoError(t, f.peer.Send(f.frame(uint32(i), 1000)))
	}
	time.Sleep(20 * time.Millisecond)
	s3, err := c.Stats()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, s3.Packets, s1.Packets+100)
}

func TestInterfaceFacts(t *testing.T) {
	f := newFixture(t, &testenv.VethConfig{MTU: 9000})
	c := f.listen(t, nil)
	ifi, err := c.Interface()
	require.NoError(t, err)
	assert.Equal(t, 9000, ifi.MTU)
	assert.Equal(t, f.local.Index, ifi.Index)
	assert.Equal(t, "afb0", ifi.Name)
	assert.True(t, ifi.Up)
	assert.True(t, ifi.Carrier)

	f.Remote.Run(t, "ip", "link", "set", f.Remote.Name, "down")
	// The kernel's link watcher clears IFF_RUNNING asynchronously.
	assert.Eventually(t, func() bool {
		ifi, err = c.Interface()
		return err == nil && !ifi.Carrier
	}, 2*time.Second, 10*time.Millisecond, "a veth whose peer is down has no carrier")
	assert.True(t, ifi.Up, "still administratively up")
}

// TestCloseWakesReader: Close wakes a goroutine blocked in ReadFrom, in the poller and outside
// it (NoPoller), and later reads fail with os.ErrClosed.
func TestCloseWakesReader(t *testing.T) {
	for _, noPoller := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoPoller=%v", noPoller), func(t *testing.T) {
			f := newFixture(t, nil)
			c := f.listen(t, &afpacket.Config{NoPoller: noPoller, Filter: []bpf.Instruction{bpf.RetConstant{Val: 0}}})
			errc := make(chan error, 1)
			go func() {
				_, _, err := c.ReadFrom(make([]byte, 100))
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond) // most likely asleep by now; the test holds either way
			require.NoError(t, c.Close())
			select {
			case err := <-errc:
				assert.ErrorIs(t, err, os.ErrClosed)
			case <-time.After(30 * time.Second):
				t.Fatal("ReadFrom still blocked 30 s after Close")
			}
			_, _, err := c.ReadFrom(make([]byte, 100))
			assert.ErrorIs(t, err, os.ErrClosed)
		})
	}
}

// TestNoPollerReads: a socket outside the poller still receives, blocking until a frame comes,
// and says plainly that it has no deadlines.
func TestNoPollerReads(t *testing.T) {
	f := newFixture(t, nil)
	c := f.listen(t, &afpacket.Config{NoPoller: true, Promiscuous: true})
	assert.ErrorIs(t, c.SetReadDeadline(time.Now()), os.ErrNoDeadline)
	want := f.frame(7, 200)
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	buf := make([]byte, 2048)
	go func() {
		for range 1000 { // other traffic on the veth (IPv6 noise) is skipped
			n, _, err := c.ReadFrom(buf)
			if err != nil || bytes.Equal(buf[:n], want) {
				res <- result{n, err}
				return
			}
		}
		res <- result{}
	}()
	require.NoError(t, f.peer.Send(want))
	select {
	case r := <-res:
		require.NoError(t, r.err)
		assert.Equal(t, want, buf[:r.n])
	case <-time.After(30 * time.Second):
		t.Fatal("ReadFrom did not return the frame")
	}
}

func TestReadDeadline(t *testing.T) {
	f := newFixture(t, nil)
	c := f.listen(t, &afpacket.Config{Filter: []bpf.Instruction{bpf.RetConstant{Val: 0}}})
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Millisecond)))
	_, _, err := c.ReadFrom(make([]byte, 100))
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
}

func TestSendOnly(t *testing.T) {
	f := newFixture(t, nil)
	c := f.listen(t, &afpacket.Config{SendOnly: true, VnetHdr: true})
	out := pktgen.Frame(nil, f.remote.HardwareAddr, f.local.HardwareAddr, 3, 400)
	_, err := c.WriteTo(append(make([]byte, 10), out...), nil) // an all-zero vnet header first
	require.NoError(t, err)
	got := f.peer.Collect(1, time.Second, 2*time.Second)
	require.Len(t, got, 1)
	assert.Equal(t, out, got[0])

	require.NoError(t, f.peer.Send(f.frame(4, 100)))
	_, _, err = readTest(t, c, make([]byte, 2048), 200*time.Millisecond)
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "a send-only socket captures nothing")
}
