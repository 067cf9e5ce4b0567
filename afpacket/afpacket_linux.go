//go:build linux

package afpacket

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Conn is an AF_PACKET SOCK_RAW socket bound to one interface.
//
// Its methods are safe for concurrent use. Close wakes goroutines blocked in ReadFrom or ReadMsg,
// which then return an error matching os.ErrClosed, with or without Config.NoPoller. A goroutine
// waiting in the RX.Wait of a ring built on the socket is woken by the ring's Map.Close, which
// must come before the socket's Close.
type Conn struct {
	f    *os.File
	rc   syscall.RawConn
	addr Addr
	cfg  Config

	mu    sync.Mutex // guards stats
	stats Stats

	closed atomic.Bool

	// With NoPoller, readers sleep in poll(2) on the socket and on wakeFD, an eventfd that Close
	// makes readable; readers hold rw's read lock, so Close closes wakeFD after the last leaves.
	wakeFD   int
	rw       sync.RWMutex
	wakeOnce sync.Once
}

var _ net.PacketConn = (*Conn)(nil)

// Listen opens a socket bound to the interface named ifname in the network namespace of the
// calling OS thread (a goroutine that switched namespaces must have locked its thread). A nil
// cfg means the zero Config.
func Listen(ifname string, cfg *Config) (*Conn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, opError("listen", &Addr{Name: ifname}, hint(os.NewSyscallError("if_nametoindex", unix.ENODEV),
			"no interface named %q in this network namespace; list them with `ip link`", ifname))
	}
	return listen(ifi, cfg)
}

// ListenIndex opens a socket bound to the interface with index ifindex, in the network namespace
// of the calling OS thread, as Listen does.
func ListenIndex(ifindex int, cfg *Config) (*Conn, error) {
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return nil, opError("listen", &Addr{Ifindex: ifindex}, hint(os.NewSyscallError("if_indextoname", unix.ENODEV),
			"no interface with index %d in this network namespace; list them with `ip link`", ifindex))
	}
	return listen(ifi, cfg)
}

func listen(ifi *net.Interface, cfg *Config) (*Conn, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	addr := &Addr{Ifindex: ifi.Index, Name: ifi.Name, HardwareAddr: ifi.HardwareAddr}
	if ifi.Flags&net.FlagUp == 0 && !cfg.AllowDown {
		return nil, opError("listen", addr, hint(os.NewSyscallError("bind", unix.ENETDOWN),
			"interface %s is down; bring it up with `ip link set %s up` (or set Config.AllowDown)", ifi.Name, ifi.Name))
	}
	proto := cfg.Protocol
	if proto == 0 {
		proto = unix.ETH_P_ALL
	}
	if cfg.SendOnly {
		proto = 0 // bound to the device, but no protocol hook: nothing is captured
	}

	// Protocol 0: the socket captures nothing until bind names the real protocol, so options and
	// the filter below are all in place before the first frame.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		err = os.NewSyscallError("socket", err)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			err = hint(err, "AF_PACKET sockets need CAP_NET_RAW (and CAP_NET_ADMIN for promiscuous mode and large buffers); run as root or `setcap cap_net_raw,cap_net_admin+ep` on the binary")
		}
		return nil, opError("listen", addr, err)
	}
	fail := func(err error) (*Conn, error) {
		unix.Close(fd)
		return nil, opError("listen", addr, err)
	}

	bools := []struct {
		on   bool
		opt  int
		name string
	}{
		{cfg.VnetHdr, unix.PACKET_VNET_HDR, "PACKET_VNET_HDR"},
		{cfg.Auxdata, unix.PACKET_AUXDATA, "PACKET_AUXDATA"},
		{cfg.QdiscBypass, unix.PACKET_QDISC_BYPASS, "PACKET_QDISC_BYPASS"},
		{cfg.IgnoreOutgoing, unix.PACKET_IGNORE_OUTGOING, "PACKET_IGNORE_OUTGOING"},
	}
	for _, b := range bools {
		if !b.on {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, b.opt, 1); err != nil {
			return fail(os.NewSyscallError("setsockopt "+b.name, err))
		}
	}
	if err := setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, cfg.RecvBuffer, "SO_RCVBUF"); err != nil {
		return fail(err)
	}
	if err := setBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, cfg.SendBuffer, "SO_SNDBUF"); err != nil {
		return fail(err)
	}
	if cfg.Filter != nil {
		if err := attachBPF(fd, cfg.Filter); err != nil {
			return fail(err)
		}
	}
	sll := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sll); err != nil {
		err = os.NewSyscallError("bind", err)
		if errors.Is(err, unix.ENODEV) {
			err = hint(err, "interface %s disappeared while opening the socket", ifi.Name)
		}
		return fail(err)
	}
	if cfg.Promiscuous {
		mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
			return fail(os.NewSyscallError("setsockopt PACKET_ADD_MEMBERSHIP", err))
		}
	}

	wakeFD := -1
	if cfg.NoPoller {
		// os.NewFile registers only non-blocking descriptors with the poller. Every operation
		// of ours that must not block passes MSG_DONTWAIT itself.
		if err := unix.SetNonblock(fd, false); err != nil {
			return fail(os.NewSyscallError("fcntl", err))
		}
		if wakeFD, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
			return fail(os.NewSyscallError("eventfd", err))
		}
	}
	f := os.NewFile(uintptr(fd), "afpacket:"+ifi.Name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		if wakeFD >= 0 {
			unix.Close(wakeFD)
		}
		return nil, opError("listen", addr, err)
	}
	c := &Conn{f: f, rc: rc, addr: *addr, cfg: *cfg, wakeFD: wakeFD}
	c.cfg.Filter = append([]bpf.Instruction(nil), cfg.Filter...)
	return c, nil
}

func setBuffer(fd, force, plain, size int, name string) error {
	if size <= 0 {
		return nil
	}
	// The FORCE variant ignores net.core.[rw]mem_max but needs CAP_NET_ADMIN; without it, fall
	// back to the capped option rather than fail.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size); err == nil {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size); err != nil {
		return os.NewSyscallError("setsockopt "+name, err)
	}
	return nil
}

func attachBPF(fd int, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return hint(errors.Join(unix.EINVAL, err), "the cBPF filter does not assemble")
	}
	if len(raw) == 0 {
		return hint(unix.EINVAL, "the cBPF filter is empty; use nil for no filter")
	}
	fprog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return os.NewSyscallError("setsockopt SO_ATTACH_FILTER", err)
	}
	return nil
}

// SetBPF replaces the socket's cBPF filter atomically: every frame is checked by the old program
// or the new one, never by none. A nil or empty program removes the filter.
func (c *Conn) SetBPF(prog []bpf.Instruction) error {
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		if len(prog) == 0 {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); err != nil && err != unix.ENOENT {
				serr = os.NewSyscallError("setsockopt SO_DETACH_FILTER", err)
			}
			return
		}
		serr = attachBPF(int(fd), prog)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return c.opError("setbpf", err)
	}
	return nil
}

// Stats returns the kernel's counters for this socket, accumulated since it was opened.
func (c *Conn) Stats() (Stats, error) {
	var st *unix.TpacketStatsV3
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		// The V3 layout is a superset: for other ring versions the kernel fills only the first two
		// fields and leaves the freeze count zero.
		st, serr = unix.GetsockoptTpacketStatsV3(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
		if serr != nil {
			serr = os.NewSyscallError("getsockopt PACKET_STATISTICS", serr)
		}
	})
	if err == nil {
		err = serr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		return c.stats, c.opError("stats", err)
	}
	c.stats.Packets += uint64(st.Packets)
	c.stats.Drops += uint64(st.Drops)
	c.stats.Freezes += uint64(st.Freeze_q_cnt)
	return c.stats, nil
}

// Addr returns the interface the socket is bound to.
func (c *Conn) Addr() *Addr { a := c.addr; return &a }

// LocalAddr returns the interface the socket is bound to, as a *Addr.
func (c *Conn) LocalAddr() net.Addr { return c.Addr() }

// Config returns a copy of the options the socket was opened with.
func (c *Conn) Config() Config {
	cfg := c.cfg
	cfg.Filter = append([]bpf.Instruction(nil), c.cfg.Filter...)
	return cfg
}

// Interface looks up the bound interface's current state: name, MTU, up, carrier. It asks through
// the socket itself, so the answer comes from the socket's network namespace whichever thread
// calls it.
func (c *Conn) Interface() (Interface, error) {
	var ifi Interface
	var serr error
	err := c.rc.Control(func(fd uintptr) { ifi, serr = ifreqInterface(int(fd), c.addr.Ifindex) })
	if err == nil {
		err = serr
	}
	if err != nil {
		return Interface{}, c.opError("interface", err)
	}
	return ifi, nil
}

func ifreqInterface(fd, index int) (Interface, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return Interface{}, err
	}
	ifr.SetUint32(uint32(index))
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFNAME, ifr); err != nil {
		return Interface{}, hint(os.NewSyscallError("ioctl SIOCGIFNAME", err), "interface %d no longer exists", index)
	}
	ifi := Interface{Index: index, Name: ifr.Name()}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return Interface{}, os.NewSyscallError("ioctl SIOCGIFFLAGS", err)
	}
	flags := ifr.Uint16()
	ifi.Up = flags&unix.IFF_UP != 0
	// IFF_RUNNING is set only while the link is operationally up, i.e. has carrier.
	ifi.Carrier = ifi.Up && flags&unix.IFF_RUNNING != 0
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFMTU, ifr); err != nil {
		return Interface{}, os.NewSyscallError("ioctl SIOCGIFMTU", err)
	}
	ifi.MTU = int(ifr.Uint32())
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return Interface{}, os.NewSyscallError("ioctl SIOCGIFHWADDR", err)
	}
	// ifr_hwaddr is a struct sockaddr: family (2 bytes) then the address.
	raw := (*[unix.IFNAMSIZ + 16]byte)(unsafe.Pointer(ifr))[unix.IFNAMSIZ+2 : unix.IFNAMSIZ+2+6]
	ifi.HardwareAddr = append(net.HardwareAddr(nil), raw...)
	return ifi, nil
}

// SyscallConn returns the raw socket for ring and fanout setup. Control and Read/Write on it keep
// the descriptor alive while they run.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.f.SetDeadline(t) }

// SetReadDeadline sets the deadline for ReadFrom, ReadMsg and ring waits; a deadline in the past
// wakes a blocked reader at once.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for WriteTo when the socket's send buffer is full.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

// Close closes the socket and leaves any fanout group. Goroutines blocked on it return an error
// matching os.ErrClosed. Close a ring built on the socket before the socket itself.
func (c *Conn) Close() error {
	c.closed.Store(true)
	if c.cfg.NoPoller {
		c.wakeOnce.Do(func() {
			one := [8]byte{1}
			_, _ = unix.Write(c.wakeFD, one[:])
			c.rw.Lock() // every reader has left
			unix.Close(c.wakeFD)
			c.wakeFD = -1
			c.rw.Unlock()
		})
	}
	if err := c.f.Close(); err != nil {
		return c.opError("close", err)
	}
	return nil
}

// ReadFrom reads one frame into b and returns its length and the interface it crossed. A frame
// longer than b is cut to len(b); ReadMsg reports the full length. With Config.VnetHdr the first
// 10 bytes of b are the frame's virtio_net_hdr.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, info, err := c.ReadMsg(b)
	if err != nil {
		return n, nil, err
	}
	a := c.addr
	a.Ifindex = info.Ifindex
	return n, &a, nil
}

// ReadMsg reads one frame into b and describes it. It waits until a frame arrives, the read
// deadline passes (os.ErrDeadlineExceeded) or the socket is closed (os.ErrClosed). With
// Config.NoPoller it waits in poll(2), holding an OS thread, and has no deadline.
func (c *Conn) ReadMsg(b []byte) (int, Info, error) {
	var (
		n    int
		info Info
		serr error
		oob  [unix.SizeofCmsghdr + sizeofAuxdata + 8]byte
	)
	if c.cfg.NoPoller {
		c.rw.RLock()
		defer c.rw.RUnlock()
		if c.closed.Load() {
			return 0, info, c.opError("read", os.ErrClosed)
		}
	}
	err := c.rc.Read(func(fd uintptr) bool {
		var oobn int
		var from unix.Sockaddr
		for {
			n, oobn, _, from, serr = unix.Recvmsg(int(fd), b, oob[:], unix.MSG_TRUNC|unix.MSG_DONTWAIT)
			if serr != unix.EAGAIN || !c.cfg.NoPoller {
				break
			}
			// Outside the poller: sleep until a frame arrives or Close wakes us.
			if c.closed.Load() {
				serr = os.ErrClosed
				return true
			}
			pfd := [2]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(c.wakeFD), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd[:], -1); err != nil && err != unix.EINTR {
				serr = os.NewSyscallError("poll", err)
				return true
			}
		}
		if serr == unix.EAGAIN {
			return false
		}
		if serr == os.ErrClosed {
			return true
		}
		if serr != nil {
			serr = os.NewSyscallError("recvmsg", serr)
			return true
		}
		info.Len = n
		if n > len(b) { // MSG_TRUNC returns the real length
			n = len(b)
		}
		if sll, ok := from.(*unix.SockaddrLinklayer); ok {
			info.PktType, info.Ifindex = sll.Pkttype, sll.Ifindex
		}
		parseAuxdata(oob[:oobn], &info)
		return true
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, info, c.opError("read", err)
	}
	return n, info, nil
}

func parseAuxdata(oob []byte, info *Info) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA ||
			len(m.Data) < sizeofAuxdata {
			continue
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		info.AuxValid = true
		info.Status = aux.Status
		info.Len = int(aux.Len)
		if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
			info.VLANTCI = aux.Vlan_tci
			info.VLANTPID = unix.ETH_P_8021Q
			if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
				info.VLANTPID = aux.Vlan_tpid
			}
		}
	}
}

// WriteTo sends one frame, Ethernet header included (preceded by its virtio_net_hdr with
// Config.VnetHdr), out of the bound interface. addr may be nil or an *Addr; only its Ifindex is
// used, and 0 means the bound interface.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ifindex := c.addr.Ifindex
	if a, ok := addr.(*Addr); ok && a != nil && a.Ifindex != 0 {
		ifindex = a.Ifindex
	}
	sll := &unix.SockaddrLinklayer{Ifindex: ifindex}
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, sll)
		if serr == unix.EAGAIN {
			return false
		}
		if serr != nil {
			serr = os.NewSyscallError("sendto", serr)
		}
		return true
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, c.opError("write", sendHint(err, c.addr.Name))
	}
	return len(b), nil
}

func sendHint(err error, ifname string) error {
	switch {
	case errors.Is(err, unix.ENETDOWN):
		return hint(err, "interface %s is down; bring it up with `ip link set %s up`", ifname, ifname)
	case errors.Is(err, unix.EMSGSIZE):
		return hint(err, "frame longer than the MTU of %s plus its link header", ifname)
	}
	return err
}

// InterfaceByName looks up an interface in the network namespace of the calling OS thread.
func InterfaceByName(name string) (Interface, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return Interface{}, opError("interface", &Addr{Name: name}, hint(os.NewSyscallError("if_nametoindex", unix.ENODEV),
			"no interface named %q in this network namespace; list them with `ip link`", name))
	}
	return fromNet(ifi), nil
}

// InterfaceByIndex looks up an interface by index in the network namespace of the calling OS
// thread.
func InterfaceByIndex(index int) (Interface, error) {
	ifi, err := net.InterfaceByIndex(index)
	if err != nil {
		return Interface{}, opError("interface", &Addr{Ifindex: index}, hint(os.NewSyscallError("if_indextoname", unix.ENODEV),
			"no interface with index %d in this network namespace; list them with `ip link`", index))
	}
	return fromNet(ifi), nil
}

func fromNet(ifi *net.Interface) Interface {
	return Interface{
		Index:        ifi.Index,
		Name:         ifi.Name,
		MTU:          ifi.MTU,
		HardwareAddr: ifi.HardwareAddr,
		Up:           ifi.Flags&net.FlagUp != 0,
		// IFF_RUNNING is set only while the link is operationally up, i.e. has carrier.
		Carrier: ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagRunning != 0,
	}
}

func (c *Conn) opError(op string, err error) error {
	// The raw descriptor reports a closed file as poll.ErrFileClosing, which matches neither
	// os.ErrClosed nor net.ErrClosed; callers are promised os.ErrClosed.
	if c.closed.Load() {
		err = os.ErrClosed
	}
	return opError(op, c.Addr(), err)
}

func opError(op string, addr *Addr, err error) error {
	return &net.OpError{Op: op, Net: Network, Addr: addr, Err: err}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// sizeofAuxdata is sizeof(struct tpacket_auxdata) from linux/if_packet.h.
const sizeofAuxdata = int(unsafe.Sizeof(unix.TpacketAuxdata{}))
