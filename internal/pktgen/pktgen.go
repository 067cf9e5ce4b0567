//go:build linux

// Package pktgen builds numbered test frames whose every byte is derived from their sequence
// number, and sends and receives them on plain AF_PACKET sockets that depend on none of afbridge's
// packages, so a test of the library never checks the library with itself.
package pktgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EtherType is the IEEE 802 local experimental EtherType that marks test frames; nothing else on
// a test's veth pairs uses it.
const EtherType = 0x88b5

// HeaderLen is the bytes of Ethernet header plus magic and sequence number.
const HeaderLen = 14 + 4 + 4 + 2

// MinSize is the smallest frame Frame builds.
const MinSize = HeaderLen

var magic = [4]byte{'A', 'F', 'B', 'T'}

// Frame writes a test frame of size bytes into buf (grown if short) and returns it: Ethernet
// header with EtherType, the magic "AFBT", seq, the size, then payload bytes derived from seq.
// Frames of sizes below MinSize are rounded up.
func Frame(buf []byte, dst, src net.HardwareAddr, seq uint32, size int) []byte {
	if size < MinSize {
		size = MinSize
	}
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	b := buf[:size]
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:14], EtherType)
	copy(b[14:18], magic[:])
	binary.BigEndian.PutUint32(b[18:22], seq)
	binary.BigEndian.PutUint16(b[22:24], uint16(size))
	fill(b[HeaderLen:], seq)
	return b
}

func fill(p []byte, seq uint32) {
	x := seed(seq)
	for i := range p {
		x = step(x)
		p[i] = byte(x)
	}
}

func seed(seq uint32) uint32 { return seq*2654435761 + 1 }

// step is one round of the xorshift generator behind the payload bytes.
func step(x uint32) uint32 {
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	return x
}

// Check reports the sequence number of a test frame and whether every byte is what Frame wrote
// for it (same length, same payload). Addresses are not checked. It allocates nothing, so the
// receiving side of a load test can afford it for every frame.
func Check(frame []byte) (seq uint32, ok bool) {
	if len(frame) < HeaderLen || binary.BigEndian.Uint16(frame[12:14]) != EtherType ||
		[4]byte(frame[14:18]) != magic {
		return 0, false
	}
	seq = binary.BigEndian.Uint32(frame[18:22])
	if int(binary.BigEndian.Uint16(frame[22:24])) != len(frame) {
		return seq, false
	}
	x := seed(seq)
	for _, b := range frame[HeaderLen:] {
		x = step(x)
		if b != byte(x) {
			return seq, false
		}
	}
	return seq, true
}

// IsTest reports whether frame carries the test EtherType, possibly behind VLAN tags.
func IsTest(frame []byte) bool {
	for off := 12; off+2 <= len(frame); off += 4 {
		switch binary.BigEndian.Uint16(frame[off:]) {
		case EtherType:
			return true
		case unix.ETH_P_8021Q, unix.ETH_P_8021AD:
			continue
		}
		return false
	}
	return false
}

// Tag returns a copy of frame with an 802.1Q (tpid 0x8100) or 802.1ad (0x88a8) tag inserted after
// the MAC addresses.
func Tag(frame []byte, tpid, tci uint16) []byte {
	out := make([]byte, 0, len(frame)+4)
	out = append(out, frame[:12]...)
	out = binary.BigEndian.AppendUint16(out, tpid)
	out = binary.BigEndian.AppendUint16(out, tci)
	return append(out, frame[12:]...)
}

// Conn is a plain AF_PACKET SOCK_RAW socket bound to one interface.
type Conn struct {
	fd      int
	ifindex int
	to      unix.SockaddrLinklayer // reused, so Send allocates nothing
}

// Open opens a raw socket on ifindex. Call it inside the interface's namespace. It receives all
// frames, incoming and outgoing; Recv reports which.
func Open(ifindex int) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	// Auxdata carries the VLAN tag the receiving kernel strips, so Recv can show the frame as it
	// was on the wire.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setsockopt PACKET_AUXDATA", err)
	}
	// Generous buffers: tests send bursts and must not lose frames to a small default.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 16<<20)
	return &Conn{fd: fd, ifindex: ifindex, to: unix.SockaddrLinklayer{Ifindex: ifindex}}, nil
}

// Send transmits one frame, retrying briefly while the kernel reports its queue full.
func (c *Conn) Send(frame []byte) error {
	for try := 0; ; try++ {
		err := unix.Sendto(c.fd, frame, 0, &c.to)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EAGAIN) || try >= 1000 {
			return os.NewSyscallError("sendto", err)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// Recv waits up to timeout for one frame, copies it into buf and returns its length and
// packet type (unix.PACKET_HOST, PACKET_OUTGOING, ...). An outer VLAN tag the kernel stripped
// is put back, so the frame reads as it was on the wire. It returns os.ErrDeadlineExceeded on timeout.
func (c *Conn) Recv(buf []byte, timeout time.Duration) (int, uint8, error) {
	ms := int(timeout / time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(timeout)
	for {
		n, err := unix.Poll(fds, ms)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0, 0, os.NewSyscallError("poll", err)
		}
		if n > 0 {
			n, pkt, err := c.recv(buf)
			if err == nil {
				return n, pkt, nil
			}
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
				return 0, 0, os.NewSyscallError("recvmsg", err)
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, os.ErrDeadlineExceeded
		}
	}
}

// recv reads one frame and puts back the outer VLAN tag the kernel stripped into skb metadata.
func (c *Conn) recv(buf []byte) (int, uint8, error) {
	var oob [64]byte
	n, oobn, _, from, err := unix.Recvmsg(c.fd, buf, oob[:], unix.MSG_DONTWAIT)
	if err != nil {
		return 0, 0, err
	}
	var pkt uint8
	if ll, ok := from.(*unix.SockaddrLinklayer); ok {
		pkt = ll.Pkttype
	}
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < 20 {
			continue
		}
		// struct tpacket_auxdata: status, len, snaplen (u32), mac, net, vlan_tci, vlan_tpid (u16).
		status := binary.NativeEndian.Uint32(m.Data[0:])
		tci := binary.NativeEndian.Uint16(m.Data[16:])
		tpid := binary.NativeEndian.Uint16(m.Data[18:])
		if status&unix.TP_STATUS_VLAN_VALID != 0 && n >= 12 && n+4 <= len(buf) {
			if status&unix.TP_STATUS_VLAN_TPID_VALID == 0 {
				tpid = unix.ETH_P_8021Q
			}
			copy(buf[16:n+4], buf[12:n])
			binary.BigEndian.PutUint16(buf[12:], tpid)
			binary.BigEndian.PutUint16(buf[14:], tci)
			n += 4
		}
	}
	return n, pkt, nil
}

// Collect receives incoming test frames (IsTest, not PACKET_OUTGOING) until want have arrived or
// no frame arrives for idle, and returns copies of them. It never blocks longer than max in all.
func (c *Conn) Collect(want int, idle, max time.Duration) [][]byte {
	var out [][]byte
	buf := make([]byte, 1<<16)
	end := time.Now().Add(max)
	for len(out) < want && time.Now().Before(end) {
		wait := min(idle, time.Until(end))
		n, pkt, err := c.Recv(buf, wait)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			continue // a transient socket error (sk_err) is reported once; keep collecting
		}
		if pkt == unix.PACKET_OUTGOING || !IsTest(buf[:n]) {
			continue
		}
		out = append(out, append([]byte(nil), buf[:n]...))
	}
	return out
}

// CountTest reads frames without allocating until want incoming test frames have arrived, no
// frame arrived for idle, or stop returns true; it returns how many arrived. Benchmarks use it
// as a sink that adds no garbage of its own to allocation counts. It is not safe to use
// together with Recv or Collect on the same Conn.
func (c *Conn) CountTest(want int, idle time.Duration, stop func() bool, progress func(int)) int {
	tv := unix.NsecToTimeval(int64(idle))
	_ = unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	defer func() {
		var zero unix.Timeval
		_ = unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &zero)
	}()
	var buf [65536]byte
	var peer unix.RawSockaddrLinklayer
	n := 0
	for n < want && (stop == nil || !stop()) {
		m, err := recvFrom(c.fd, buf[:], &peer)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			break // SO_RCVTIMEO: idle
		}
		if peer.Pkttype == unix.PACKET_OUTGOING || !IsTest(buf[:m]) {
			continue
		}
		n++
		if progress != nil {
			progress(n)
		}
	}
	return n
}

// recvFrom is recvfrom(2) into a caller-owned sockaddr: x/sys/unix's Recvfrom allocates one.
func recvFrom(fd int, p []byte, from *unix.RawSockaddrLinklayer) (int, error) {
	l := uint32(unix.SizeofSockaddrLinklayer)
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0,
		uintptr(unsafe.Pointer(from)), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// Close closes the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// String describes the socket for test messages.
func (c *Conn) String() string { return fmt.Sprintf("pktgen.Conn(ifindex %d)", c.ifindex) }

func htons(v uint16) uint16 { return v<<8 | v>>8 }
