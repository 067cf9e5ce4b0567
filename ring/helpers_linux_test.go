//go:build linux

package ring

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sockOpts describe a test socket.
type sockOpts struct {
	vnet   bool // set PACKET_VNET_HDR
	txOnly bool // bind with protocol 0: the socket receives nothing
	sndbuf int  // SO_SNDBUFFORCE when non-zero
	// blocking leaves the descriptor blocking, so os.NewFile keeps it out of the runtime poller,
	// as afpacket.Config.NoPoller does.
	blocking bool
}

// openSocket opens a non-blocking AF_PACKET socket bound to l inside l's namespace, wrapped in
// an *os.File so that it sits in the runtime poller, as afpacket.Conn does. The socket closes
// at cleanup.
func openSocket(tb testing.TB, l testenv.Link, o sockOpts) *os.File {
	tb.Helper()
	ifi := l.Interface(tb)
	var f *os.File
	require.NoError(tb, l.NS.Do(func() error {
		proto := htons(unix.ETH_P_ALL)
		if o.txOnly {
			proto = 0
		}
		typ := unix.SOCK_RAW | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
		if o.blocking {
			typ &^= unix.SOCK_NONBLOCK
		}
		fd, err := unix.Socket(unix.AF_PACKET, typ, int(proto))
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		if o.vnet {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
				unix.Close(fd)
				return os.NewSyscallError("setsockopt PACKET_VNET_HDR", err)
			}
		}
		if o.sndbuf > 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, o.sndbuf); err != nil {
				unix.Close(fd)
				return os.NewSyscallError("setsockopt SO_SNDBUFFORCE", err)
			}
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return os.NewSyscallError("bind", err)
		}
		f = os.NewFile(uintptr(fd), "packet:"+l.Name)
		return nil
	}))
	tb.Cleanup(func() { f.Close() })
	return f
}

// newMap maps rings on sock, unmapped at cleanup (before the socket closes).
func newMap(tb testing.TB, sock Socket, cfg *Config) *Map {
	tb.Helper()
	m, err := New(sock, cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, m.Close()) })
	return m
}

// openPktgen opens a pktgen socket on l, closed at cleanup.
func openPktgen(tb testing.TB, l testenv.Link) *pktgen.Conn {
	tb.Helper()
	ifi := l.Interface(tb)
	var c *pktgen.Conn
	require.NoError(tb, l.NS.Do(func() (err error) { c, err = pktgen.Open(ifi.Index); return }))
	tb.Cleanup(func() { c.Close() })
	return c
}

// collect receives frames through rx until want of them satisfy keep or timeout passes, and
// returns them with Data and Vnet copied, valid after Release. It bounds each Wait with the socket's read deadline.
func collect(tb testing.TB, rx *RX, sock *os.File, want int, timeout time.Duration, keep func(*Frame) bool) []Frame {
	tb.Helper()
	var out []Frame
	var f Frame
	end := time.Now().Add(timeout)
	for len(out) < want && time.Now().Before(end) {
		require.NoError(tb, sock.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		if err := rx.Wait(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			require.NoError(tb, err)
		}
		for rx.Next(&f) {
			if keep(&f) {
				c := f
				c.Data, c.Vnet = clone(f.Data), clone(f.Vnet)
				out = append(out, c)
			}
		}
		require.NoError(tb, rx.Release())
	}
	return out
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func isTest(f *Frame) bool { return pktgen.IsTest(f.Data) }

// packetStats reads and resets the socket's PACKET_STATISTICS: packets seen (drops included)
// and drops.
func packetStats(tb testing.TB, sock *os.File) (packets, drops uint32) {
	tb.Helper()
	rc, err := sock.SyscallConn()
	require.NoError(tb, err)
	var st *unix.TpacketStats
	var serr error
	require.NoError(tb, rc.Control(func(fd uintptr) {
		st, serr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	}))
	require.NoError(tb, serr)
	return st.Packets, st.Drops
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// frameSize is the size of test frame i of a varied stream that never exceeds max.
func frameSize(i, max int) int { return pktgen.MinSize + i*37%(max-pktgen.MinSize+1) }

// macs returns the hardware addresses of a pair's ends.
func macs(tb testing.TB, p testenv.Pair) (local, remote net.HardwareAddr) {
	return p.Local.Interface(tb).HardwareAddr, p.Remote.Interface(tb).HardwareAddr
}
