//go:build linux

package bypass

import (
	"encoding/binary"
	"errors"
	"github.com/afbridge/afbridge/flow"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/internal/netns"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// bed is a bridge under test: host namespaces a and b, each with one end of a veth pair whose
// other end (ports[0], ports[1]) sits in the bridge namespace. A userspace forwarder with one
// socket per port stands in for peer's workers.
type bed struct {
	t      *testing.T
	hostA  testenv.Link
	hostB  testenv.Link
	ports  [2]testenv.Link
	br     *netns.NS
	p      *Path
	fw     *forwarder
	macA   net.HardwareAddr
	macB   net.HardwareAddr
	ifidx  [2]int
	sendA  *rawConn
	sendB  *rawConn
	stopFw func()
}

func newBed(t *testing.T, cfg *Config, veth *testenv.VethConfig) *bed {
	t.Helper()
	return newBedBuf(t, cfg, veth, 64<<20)
}

// newBedBuf is newBed with the forwarder's sockets given recvBuf bytes of receive buffer: a
// small one overflows under a flood.
func newBedBuf(t *testing.T, cfg *Config, veth *testenv.VethConfig, recvBuf int) *bed {
	t.Helper()
	testenv.RequirePriv(t)
	br := testenv.NS(t, "br")
	na := testenv.NS(t, "ha")
	nb := testenv.NS(t, "hb")
	ha, pa := testenv.Veth(t, na, "h0", br, "p0", veth)
	pb, hb := testenv.Veth(t, br, "p1", nb, "h1", veth)
	b := &bed{t: t, hostA: ha, hostB: hb, ports: [2]testenv.Link{pa, pb}, br: br}
	b.macA = ha.Interface(t).HardwareAddr
	b.macB = hb.Interface(t).HardwareAddr
	b.p = openPath(t, cfg)
	b.attach()
	b.sendA = openRaw(t, ha)
	b.sendB = openRaw(t, hb)
	b.fw = newForwarder(t, b.p, pa, pb, recvBuf)
	b.stopFw = b.fw.start()
	t.Cleanup(b.stopFw)
	return b
}

// attach (re)attaches the tc programs to the ports' current indexes.
func (b *bed) attach() {
	b.t.Helper()
	for i, l := range b.ports {
		b.ifidx[i] = l.Interface(b.t).Index
	}
	require.NoError(b.t, b.br.Do(func() error { return b.p.Attach(b.ifidx[0], b.ifidx[1]) }))
}

// rawConn is a plain AF_PACKET socket in a host namespace, to inject and collect test frames.
type rawConn struct {
	fd       int
	outgoing bool // collect only the frames the interface sends (an observer of a bridge port)
}

func openRaw(t *testing.T, l testenv.Link) *rawConn {
	t.Helper()
	return openSocket(t, l, false)
}

// openObserver opens a socket that collects the frames a bridge port sends, in the order the
// kernel transmits them: the order in which they leave the bridge.
func openObserver(t *testing.T, l testenv.Link) *rawConn {
	t.Helper()
	return openSocket(t, l, true)
}

func openSocket(t *testing.T, l testenv.Link, outgoing bool) *rawConn {
	t.Helper()
	idx := l.Interface(t).Index
	var fd int
	require.NoError(t, l.NS.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20)
		if !outgoing {
			_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: idx})
	}))
	t.Cleanup(func() { unix.Close(fd) })
	return &rawConn{fd: fd, outgoing: outgoing}
}

func (c *rawConn) send(t *testing.T, f []byte) {
	t.Helper()
	for try := 0; ; try++ {
		_, err := unix.Write(c.fd, f)
		if err == nil {
			return
		}
		if (!errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN)) || try > 1000 {
			require.NoError(t, err)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// collect reads frames of the test flows (UDP from or to port testPort) until want have arrived or none
// came for idle; it returns their sequence numbers in arrival order.
func (c *rawConn) collect(want int, idle time.Duration) []uint32 {
	var seqs []uint32
	buf := make([]byte, 65536)
	tv := unix.NsecToTimeval(int64(idle))
	_ = unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	for len(seqs) < want {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			break
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || (ll.Pkttype == unix.PACKET_OUTGOING) != c.outgoing {
			continue
		}
		if seq, ok := testSeq(buf[:n]); ok {
			seqs = append(seqs, seq)
		}
	}
	return seqs
}

const testPort = 4789

var (
	ipA = [4]byte{198, 18, 0, 1}
	ipB = [4]byte{198, 18, 0, 2}
)

// udpFrame builds an IPv4/UDP frame from src:sport to dst:dport carrying seq; flags sets the
// IPv4 flags and fragment offset field.
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst [4]byte, sport, dport uint16, seq uint32, flags uint16) []byte {
	f := make([]byte, 0, 64)
	f = append(f, dstMAC...)
	f = append(f, srcMAC...)
	f = binary.BigEndian.AppendUint16(f, 0x0800)
	f = append(f, 0x45, 0)
	f = binary.BigEndian.AppendUint16(f, 20+8+4)
	f = binary.BigEndian.AppendUint16(f, uint16(seq))
	f = binary.BigEndian.AppendUint16(f, flags)
	f = append(f, 64, 17, 0, 0)
	f = append(f, src[:]...)
	f = append(f, dst[:]...)
	f = binary.BigEndian.AppendUint16(f, sport)
	f = binary.BigEndian.AppendUint16(f, dport)
	f = binary.BigEndian.AppendUint16(f, 8+4)
	f = binary.BigEndian.AppendUint16(f, 0)
	f = binary.BigEndian.AppendUint32(f, seq)
	return f
}

// testSeq returns the sequence number of a frame udpFrame built (with or without a VLAN tag).
func testSeq(f []byte) (uint32, bool) {
	off := 12
	if len(f) >= 18 && binary.BigEndian.Uint16(f[12:]) == 0x8100 {
		off = 16
	}
	if len(f) < off+2+28+4 || binary.BigEndian.Uint16(f[off:]) != 0x0800 || f[off+2+9] != 17 ||
		(binary.BigEndian.Uint16(f[off+2+22:]) != testPort && binary.BigEndian.Uint16(f[off+2+20:]) != testPort) {
		return 0, false
	}
	return binary.BigEndian.Uint32(f[off+2+28:]), true
}

// keyOf returns the canonical key of a frame udpFrame built.
func keyOf(t testing.TB, f []byte) flow.Key {
	t.Helper()
	k, ok := goParse(f)
	require.True(t, ok)
	return k
}

// forwarder is a minimal bridge: one socket per port, frames from one go out of the other. It
// settles each member after draining its socket, as peer's workers do.
type forwarder struct {
	t        *testing.T
	conns    [2]*afpacket.Conn
	fds      [2]int
	filters  [2]*Filter
	received [2]atomic.Uint64
	// onFrame, when set, sees each frame before it is forwarded (in the forwarder's goroutine).
	onFrame atomic.Pointer[func(side int, f []byte)]
}

func newForwarder(t *testing.T, p *Path, pa, pb testenv.Link, recvBuf int) *forwarder {
	t.Helper()
	w := &forwarder{t: t}
	for s, l := range []testenv.Link{pa, pb} {
		var c *afpacket.Conn
		require.NoError(t, l.NS.Do(func() error {
			var err error
			c, err = afpacket.Listen(l.Name, &afpacket.Config{
				Filter:         []bpf.Instruction{bpf.RetConstant{Val: 0}},
				IgnoreOutgoing: true,
				NoPoller:       true,
				RecvBuffer:     recvBuf,
				SendBuffer:     16 << 20,
			})
			return err
		}))
		t.Cleanup(func() { c.Close() })
		f, err := p.Filter(Side(s), 0, nil)
		require.NoError(t, err)
		t.Cleanup(func() { f.Close() })
		w.conns[s], w.filters[s] = c, f
		rc, err := c.SyscallConn()
		require.NoError(t, err)
		require.NoError(t, rc.Control(func(fd uintptr) { w.fds[s] = int(fd) }))
	}
	// Replace the drop-all filters only now, as peer does once the fanout group is complete.
	for s := range 2 {
		require.NoError(t, w.filters[s].Attach(w.conns[s]))
	}
	return w
}

// start runs the forwarder until the returned function is called.
func (w *forwarder) start() func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.loop(stop)
	}()
	var once sync.Once
	return func() { once.Do(func() { close(stop); wg.Wait() }) }
}

func (w *forwarder) loop(stop <-chan struct{}) {
	buf := make([]byte, 65536)
	pfd := []unix.PollFd{{Fd: int32(w.fds[0]), Events: unix.POLLIN}, {Fd: int32(w.fds[1]), Events: unix.POLLIN}}
	for {
		select {
		case <-stop:
			return
		default:
		}
		for s := range 2 {
			for range 256 { // bounded batch, as a worker reads a ring
				n, _, err := unix.Recvfrom(w.fds[s], buf, unix.MSG_DONTWAIT)
				if err != nil {
					break
				}
				if fn := w.onFrame.Load(); fn != nil {
					(*fn)(s, buf[:n])
				}
				for try := 0; try < 1000; try++ {
					_, err := unix.Write(w.fds[1-s], buf[:n])
					if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) {
						break
					}
					time.Sleep(20 * time.Microsecond)
				}
				w.received[s].Add(1)
			}
			// Every frame taken from the socket has been sent: settle. (The forwarder sends each
			// frame as it takes it, so it observes only now; peer's workers observe before sending.)
			if w.filters[s].Wants() {
				if st, err := w.conns[s].Stats(); err == nil {
					w.filters[s].Observe(st.Packets, st.Drops)
					w.filters[s].Settle(w.received[s].Load())
				}
			}
		}
		_, _ = unix.Poll(pfd, 1)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// testenvVeth re-creates port p1 towards the host namespace nb (after the old pair was deleted).
func testenvVeth(t *testing.T, b *bed, nb *netns.NS) (testenv.Link, testenv.Link) {
	t.Helper()
	return testenv.Veth(t, b.br, "p1", nb, "h1", nil)
}
