//go:build linux

package fanout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/afbridge/afbridge/internal/tpacket"
	"golang.org/x/sys/unix"
)

// The kernel answers a refused join with a bare EINVAL for half a dozen reasons. getsockopt
// cannot see another socket's group, but the socket diagnostics interface (sock_diag, what
// `ss -0` uses) lists every packet socket of a network namespace with its bound interface,
// protocol, running state and fanout id and mode. Only a group's flags and member limit stay
// hidden. This file uses it to turn EINVAL into the reason.

// diagSocket is one packet socket as sock_diag reports it.
type diagSocket struct {
	ino     uint32
	proto   uint16 // host byte order
	ifindex int
	running bool
	inGroup bool
	id      uint16
	mode    Mode
}

// dumpPacketSockets lists the packet sockets of the network namespace of the calling OS thread.
func dumpPacketSockets() ([]diagSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	// A dump never blocks for long, but a diagnostic must never hang the caller.
	tv := unix.Timeval{Sec: 2}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, os.NewSyscallError("setsockopt", err)
	}

	const seq = 1
	req := make([]byte, 0, unix.NLMSG_HDRLEN+tpacket.SizeofPacketDiagReq)
	ne := binary.NativeEndian
	req = ne.AppendUint32(req, unix.NLMSG_HDRLEN+tpacket.SizeofPacketDiagReq)
	req = ne.AppendUint16(req, unix.SOCK_DIAG_BY_FAMILY)
	req = ne.AppendUint16(req, unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	req = ne.AppendUint32(req, seq)
	req = ne.AppendUint32(req, 0) // pid: the kernel
	req = append(req, unix.AF_PACKET, 0, 0, 0)
	req = ne.AppendUint32(req, 0) // pdiag_ino
	req = ne.AppendUint32(req, tpacket.PACKET_SHOW_INFO|tpacket.PACKET_SHOW_FANOUT)
	req = ne.AppendUint64(req, 0) // pdiag_cookie
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, os.NewSyscallError("sendto", err)
	}

	var out []diagSocket
	buf := make([]byte, 64<<10)
	for range 1 << 12 { // bounded: a dump of thousands of sockets takes a few dozen reads
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, os.NewSyscallError("recvfrom", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(ne.Uint32(m.Data)); errno != 0 {
						return nil, os.NewSyscallError("sock_diag", unix.Errno(-errno))
					}
				}
				return out, nil
			case unix.SOCK_DIAG_BY_FAMILY:
				if s, ok := parseDiagMsg(m.Data); ok {
					out = append(out, s)
				}
			}
		}
	}
	return nil, errors.New("sock_diag: dump did not end")
}

func parseDiagMsg(b []byte) (diagSocket, bool) {
	if len(b) < tpacket.SizeofPacketDiagMsg || b[0] != unix.AF_PACKET {
		return diagSocket{}, false
	}
	ne := binary.NativeEndian
	s := diagSocket{proto: ne.Uint16(b[2:]), ino: ne.Uint32(b[4:]), ifindex: -1}
	for a := b[tpacket.SizeofPacketDiagMsg:]; len(a) >= unix.SizeofNlAttr; {
		l := int(ne.Uint16(a))
		typ := ne.Uint16(a[2:]) &^ (1<<15 | 1<<14) // NLA_F_NESTED, NLA_F_NET_BYTEORDER
		if l < unix.SizeofNlAttr || l > len(a) {
			break
		}
		payload := a[unix.SizeofNlAttr:l]
		switch {
		case typ == tpacket.PACKET_DIAG_INFO && len(payload) >= tpacket.SizeofPacketDiagInfo:
			s.ifindex = int(ne.Uint32(payload))
			s.running = ne.Uint32(payload[20:])&tpacket.PDI_RUNNING != 0
		case typ == tpacket.PACKET_DIAG_FANOUT && len(payload) >= 4:
			v := ne.Uint32(payload)
			s.inGroup, s.id, s.mode = true, uint16(v), Mode(v>>16)
		}
		al := (l + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if al >= len(a) {
			break
		}
		a = a[al:]
	}
	return s, true
}

// inode returns the socket's inode number as sock_diag reports it (truncated to 32 bits).
func inode(fd int) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}

// selfDiag finds the socket fd in a dump of the calling OS thread's namespace. It returns nil
// without error when the socket is not there: the thread is in another namespace, and the
// dump says nothing about the socket's.
func selfDiag(fd int) (*diagSocket, error) {
	all, err := dumpPacketSockets()
	if err != nil {
		return nil, err
	}
	ino, err := inode(fd)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].ino == ino {
			return &all[i], nil
		}
	}
	return nil, nil
}

const genericEINVAL = "a group with this id already exists with a different mode, flags, interface, protocol or member limit, " +
	"or this socket is not running (bound with protocol 0, or, before Linux 6.13, its interface is down); " +
	"use another ID or the same settings"

// joinHint explains a refused PACKET_FANOUT setsockopt.
func joinHint(fd int, g Group, ifindex int, proto uint16, err error) string {
	switch {
	case errors.Is(err, unix.EALREADY):
		cur, ok, _ := groupOf(fd)
		if ok {
			return fmt.Sprintf("the socket is already in %s; a socket joins one group in its lifetime, so open a new socket", cur)
		}
		return "the socket is already in a fanout group; a socket joins one group in its lifetime, so open a new socket"
	case errors.Is(err, unix.ENOSPC):
		return "the group already has as many members as its limit allows (MaxMembers, 256 by default)"
	case errors.Is(err, unix.ENOMEM) && g.Flags&FlagUniqueID != 0:
		return "no unused group id is left in this network namespace"
	case !errors.Is(err, unix.EINVAL):
		return ""
	}

	if ifindex >= 0 && proto == 0 {
		return "this socket is bound with protocol 0, so the kernel has not hooked it into the receive path and cannot add it to a group: " +
			"bind it with a protocol (ETH_P_ALL, say) first"
	}
	all, derr := dumpPacketSockets()
	ino, ierr := inode(fd)
	if derr != nil || ierr != nil {
		return genericEINVAL
	}
	var self *diagSocket
	var members []diagSocket
	for i, s := range all {
		switch {
		case s.ino == ino:
			self = &all[i]
		case s.inGroup && s.id == g.ID:
			members = append(members, s)
		}
	}
	if self == nil {
		// The calling thread is in another network namespace than the socket.
		return genericEINVAL
	}

	var why []string
	if len(members) > 0 {
		m := members[0]
		desc := fmt.Sprintf("group %d already exists with %d member(s), mode %s, bound to %s, protocol %#04x",
			g.ID, len(members), m.mode, ifname(m.ifindex), m.proto)
		switch {
		case m.mode != g.Mode:
			why = append(why, fmt.Sprintf("%s: its mode is %s, not %s", desc, m.mode, g.Mode))
		case m.ifindex != self.ifindex:
			why = append(why, fmt.Sprintf("%s: this socket is bound to %s instead", desc, ifname(self.ifindex)))
		case m.proto != self.proto:
			why = append(why, fmt.Sprintf("%s: this socket is bound to protocol %#04x instead", desc, self.proto))
		default:
			why = append(why, desc+", the same as this socket's, so its flags or member limit must differ "+
				"(the kernel shows a group's flags only to its members): pass the same Flags and MaxMembers as the other members")
		}
	}
	if !self.running {
		why = append(why, "this socket is not running: its interface is down, and before Linux 6.13 a socket can join only while it is up")
	}
	if len(why) == 0 {
		return genericEINVAL
	}
	return strings.Join(why, "; ") + "; use another ID or the same settings"
}

func ifname(ifindex int) string {
	if ifindex == 0 {
		return "all interfaces"
	}
	return fmt.Sprintf("ifindex %d", ifindex)
}
