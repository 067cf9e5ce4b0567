//go:build linux

package peer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Preflight inspects the two interfaces of cfg, in the network namespace of the calling OS
// thread, for what makes an inline IPS silently ineffective, the "drop is logged but the traffic
// passes" class of problems Suricata's AF_PACKET IPS users meet:
//   - a port enslaved to a kernel bridge (or bond): the kernel forwards the traffic itself,
//     around the IPS;
//   - IP addresses on a port, or IP forwarding on: the host takes part in or routes the traffic;
//   - a port that is down or has no carrier: nothing flows (a port that is up waits up to
//     2 s for its carrier first, since a link just brought up takes a moment to report
//     it; the wait ends as soon as both ports have it);
//   - without the vnet header, GRO or LRO on a port: frames above the MTU arrive and cannot be
//     forwarded;
//   - fewer Ps (GOMAXPROCS) than this bridge's workers: workers stall each other and their rings
//     overflow (a program running several bridges needs a P for every worker of all of them).
//
// Findings are advice: Start does not refuse to run because of them.
func Preflight(cfg Config) []Finding {
	var out []Finding
	// One deadline for both ports: a link just brought up takes a moment to report its carrier.
	carrierDeadline := time.Now().Add(carrierWait)
	links := linkTable()
	for _, s := range []Side{cfg.A, cfg.B} {
		ifi, err := net.InterfaceByName(s.Interface)
		if err != nil {
			out = append(out, Finding{Critical, s.Interface, "interface not found", "check the name with `ip link`"})
			continue
		}
		name := ifi.Name
		if l, ok := links[ifi.Index]; ok && l.master != 0 {
			m := links[l.master]
			kind := m.kind
			if kind == "" {
				kind = "master device"
			}
			out = append(out, Finding{Critical, name,
				fmt.Sprintf("enslaved to %s %s: the kernel forwards its traffic around the IPS", kind, m.name),
				fmt.Sprintf("ip link set %s nomaster", name)})
		}
		if ifi.Flags&net.FlagUp == 0 {
			out = append(out, Finding{Critical, name, "interface is down", fmt.Sprintf("ip link set %s up", name)})
		} else if ifi.Flags&net.FlagRunning == 0 && !waitCarrier(ifi.Index, carrierDeadline) {
			out = append(out, Finding{Critical, name,
				fmt.Sprintf("no carrier: the link is down (waited %v for it)", carrierWait),
				"check the cable or the peer interface"})
		}
		if addrs, err := ifi.Addrs(); err == nil {
			for _, a := range addrs {
				ipn, ok := a.(*net.IPNet)
				if !ok || ipn.IP.IsLinkLocalUnicast() {
					continue
				}
				out = append(out, Finding{Critical, name,
					fmt.Sprintf("has IP address %s: the host itself answers and sends on a bridged port", ipn),
					fmt.Sprintf("ip addr del %s dev %s", ipn, name)})
			}
		}
		if cfg.NoVnetHdr {
			for _, o := range []struct {
				name string
				on   bool
			}{{"gro", ethtoolFlag(name, unix.ETHTOOL_GGRO, 1)}, {"lro", ethtoolFlag(name, unix.ETHTOOL_GFLAGS, 1<<15)}} {
				if o.on {
					out = append(out, Finding{Warning, name,
						fmt.Sprintf("%s is on: merged frames above the MTU cannot be forwarded without the vnet header", o.name),
						fmt.Sprintf("ethtool -K %s %s off, or leave the vnet header on", name, o.name)})
				}
			}
		}
	}
	for _, p := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if b, err := os.ReadFile(p); err == nil && bytes.Equal(bytes.TrimSpace(b), []byte("1")) {
			key := strings.ReplaceAll(strings.TrimPrefix(p, "/proc/sys/"), "/", ".")
			out = append(out, Finding{Warning, "",
				key + " is 1: the host routes packets, and may route bridged traffic around the IPS if a port has an address",
				"sysctl -w " + key + "=0, unless this host must also route"})
		}
	}
	if w, p := cfg.Workers(), runtime.GOMAXPROCS(0); p < w {
		out = append(out, Finding{Warning, "",
			fmt.Sprintf("GOMAXPROCS is %d for %d workers: a worker sleeping in poll(2) keeps its P until the runtime takes it back (up to ~10 ms), so workers sharing Ps stall each other and their rings overflow (13%% of 1518-byte frames lost with 2 workers on GOMAXPROCS 1 in the bench)", p, w),
			fmt.Sprintf("run with GOMAXPROCS=%d or more (runtime.GOMAXPROCS(%d)): one per worker and one for the rest of the program; more Ps than CPUs only lets the kernel share the CPUs among them", w+1, w+1)})
	}
	return out
}

// carrierWait is how long Preflight waits, at most, for the carrier of a port that is up but
// has none yet, before reporting it.
const carrierWait = 2 * time.Second

// waitCarrier polls the link with ifindex index until it is up with a carrier (IFF_RUNNING),
// and reports whether it got there before deadline.
func waitCarrier(index int, deadline time.Time) bool {
	for {
		ifi, err := net.InterfaceByIndex(index)
		if err != nil {
			return false
		}
		if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagRunning != 0 {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(min(20*time.Millisecond, time.Until(deadline)))
	}
}

type link struct {
	name   string
	master int
	kind   string
}

// linkTable reads every link's master and kind over rtnetlink; net.Interface does not carry them.
func linkTable() map[int]link {
	links := map[int]link{}
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return links
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return links
	}
	for _, m := range msgs {
		if m.Header.Type != syscall.RTM_NEWLINK || len(m.Data) < syscall.SizeofIfInfomsg {
			continue
		}
		info := (*syscall.IfInfomsg)(unsafe.Pointer(&m.Data[0]))
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			continue
		}
		var l link
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.IFLA_IFNAME:
				l.name = string(bytes.TrimRight(a.Value, "\x00"))
			case unix.IFLA_MASTER:
				if len(a.Value) >= 4 {
					l.master = int(binary.NativeEndian.Uint32(a.Value))
				}
			case unix.IFLA_LINKINFO:
				l.kind = linkKind(a.Value)
			}
		}
		links[int(info.Index)] = l
	}
	return links
}

// linkKind finds IFLA_INFO_KIND inside a nested IFLA_LINKINFO attribute.
func linkKind(b []byte) string {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		t := binary.NativeEndian.Uint16(b[2:])
		if l < 4 || l > len(b) {
			return ""
		}
		if t == unix.IFLA_INFO_KIND {
			return string(bytes.TrimRight(b[4:l], "\x00"))
		}
		b = b[(l+3)&^3:]
	}
	return ""
}

// ethtoolFlag reads an ETHTOOL_G* value through SIOCETHTOOL and reports whether mask is set.
func ethtoolFlag(ifname string, cmd uint32, mask uint32) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	val := struct{ cmd, data uint32 }{cmd: cmd}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&val)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	return errno == 0 && val.data&mask != 0
}
