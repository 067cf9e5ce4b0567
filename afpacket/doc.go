// Package afpacket opens Linux AF_PACKET sockets bound to one network interface.
//
// A Conn is one SOCK_RAW socket: it sees whole Ethernet frames as they cross the interface, in
// both directions, and sends frames out of it unchanged. The socket is set up in the order that
// never shows an unfiltered frame: it is opened with protocol 0 (nothing is captured yet), the
// socket options and the cBPF filter are applied, and only then is it bound to the interface with
// the capture protocol (ETH_P_ALL by default).
//
// The descriptor lives in Go's runtime network poller, so deadlines work and Close wakes every
// goroutine blocked on the socket. Config.NoPoller keeps it out (which saves the kernel a wake-up
// per transmitted frame): reads then sleep in poll(2), Close still wakes them, and deadlines
// return os.ErrNoDeadline.
//
// Listen, ListenIndex and the interface lookups work in the network namespace of the calling
// OS thread. Conn is a net.PacketConn for programs that want the plain
// recvfrom/sendto path (Suricata's use-mmap: no); the fast path builds mmap rings on the socket
// with package ring, and joins fanout groups with package fanout.
//
// Errors are *net.OpError values wrapping *os.SyscallError, so errors.Is(err, os.ErrPermission)
// and errors.Is(err, unix.ENETDOWN) work, and their text says how to fix the common causes:
// a missing CAP_NET_RAW, an unknown interface, an interface that is down.
package afpacket
