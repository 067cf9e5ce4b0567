//go:build linux

package ring_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/afbridge/afbridge/ring"
	"golang.org/x/sys/unix"
)

// openPacketSocket opens a non-blocking AF_PACKET socket bound to ifi, as afpacket.Conn does.
func openPacketSocket(ifi *net.Interface) (*os.File, error) {
	const ethPAll = unix.ETH_P_ALL>>8 | unix.ETH_P_ALL&0xff<<8 // htons
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, ethPAll)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPAll, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	return os.NewFile(uintptr(fd), "packet:"+ifi.Name), nil
}

// This example is a reflector: every frame received on eth0 goes back out of it, with its
// source and destination addresses swapped. It receives in place from the RX ring, builds each
// reply in place in a TX slot, and sends each batch with one syscall. It needs root and an
// eth0, so go test does not run it as an example; TestExamples runs it on a veth named eth0.
func Example() {
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		fmt.Println(err)
		return
	}
	sock, err := openPacketSocket(ifi)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sock.Close() // after m.Close: the socket belongs to its owner

	m, err := ring.New(sock, &ring.Config{MTU: ifi.MTU, TXFrameCount: 256})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	var f ring.Frame
	_ = sock.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		for m.RX.Next(&f) {
			if f.PacketType == ring.PacketOutgoing || f.Truncated() || len(f.Data) < 14 {
				continue
			}
			buf, ok := m.TX.Reserve()
			if !ok {
				break // the TX ring is full: flush first
			}
			n := copy(buf, f.Data)
			copy(buf[0:6], f.Data[6:12]) // to the sender
			copy(buf[6:12], f.Data[0:6])
			if err := m.TX.Commit(n); err != nil {
				continue // refused (too large, say): the slot is reused by the next Reserve
			}
		}
		if err := m.RX.Release(); err != nil {
			return
		}
		if err := m.TX.Flush(); err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.ENOBUFS) {
			return // EAGAIN and ENOBUFS leave the frames committed for the next Flush
		}
		if err := m.RX.Wait(); err != nil {
			return // os.ErrDeadlineExceeded after 10 s, os.ErrClosed after m.Close
		}
	}
}
