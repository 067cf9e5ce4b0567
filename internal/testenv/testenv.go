//go:build linux

// Package testenv builds the kernel fixtures of afbridge's tests: anonymous network namespaces
// joined by veth pairs, torn down by t.Cleanup even when the test fails.
//
// Privileged tests call RequirePriv first. Without root they skip with the reason, unless the
// environment sets AFBRIDGE_REQUIRE_PRIV=1 (CI does), where a skip would hide untested code and is
// a failure instead.
package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/netns"
	"golang.org/x/sys/unix"
)

// RequirePrivEnv is the environment variable that turns privileged skips into failures.
const RequirePrivEnv = "AFBRIDGE_REQUIRE_PRIV"

// Required reports whether privileged tests must run rather than skip.
func Required() bool { return os.Getenv(RequirePrivEnv) == "1" }

// RequirePriv skips the test unless the process may create namespaces and AF_PACKET sockets and
// ip(8) is installed; with AFBRIDGE_REQUIRE_PRIV=1 it fails instead of skipping.
func RequirePriv(tb testing.TB) {
	tb.Helper()
	if reason := privMissing(); reason != "" {
		if Required() {
			tb.Fatalf("%s, and %s=1 forbids skipping", reason, RequirePrivEnv)
		}
		tb.Skip(reason)
	}
}

// RequireTool skips (or fails, as RequirePriv does) when a command the test shells out to is
// missing.
func RequireTool(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		msg := fmt.Sprintf("test needs %s in PATH (Debian: apt-get install %s)", name, debianPackage(name))
		if Required() {
			tb.Fatalf("%s, and %s=1 forbids skipping", msg, RequirePrivEnv)
		}
		tb.Skip(msg)
	}
}

func debianPackage(tool string) string {
	switch tool {
	case "ip":
		return "iproute2"
	case "trafgen":
		return "netsniff-ng"
	}
	return tool
}

func privMissing() string {
	var hdr unix.CapUserHeader
	var data [2]unix.CapUserData
	hdr.Version = unix.LINUX_CAPABILITY_VERSION_3
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return "cannot read capabilities: " + err.Error()
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if !has(unix.CAP_NET_ADMIN) || !has(unix.CAP_NET_RAW) || !has(unix.CAP_SYS_ADMIN) {
		return "test needs root (CAP_NET_ADMIN and CAP_NET_RAW for AF_PACKET and veth, CAP_SYS_ADMIN for network namespaces); run as root or in CI"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "test needs ip(8) (Debian: apt-get install iproute2)"
	}
	return ""
}

var seq atomic.Uint64

// NS creates an anonymous network namespace that is deleted at cleanup. IPv6 is disabled inside so
// that router solicitations and MLD reports never show up as stray frames in a test's counts, and
// loopback is up.
func NS(tb testing.TB, label string) *netns.NS {
	tb.Helper()
	RequirePriv(tb)
	ns, err := netns.New(fmt.Sprintf("afbt-%d-%s-%d", os.Getpid(), label, seq.Add(1)))
	if err != nil {
		tb.Fatalf("create namespace: %v", err)
	}
	tb.Cleanup(func() { ns.Close() })
	if err := ns.Do(func() error {
		for _, p := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
			if err := os.WriteFile(p, []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
		return nil
	}); err != nil {
		tb.Fatalf("namespace %s: disable IPv6: %v", ns.Name(), err)
	}
	MustRun(tb, ns, "ip", "link", "set", "lo", "up")
	return ns
}

// MustRun runs a command inside ns and fails the test if it fails.
func MustRun(tb testing.TB, ns *netns.NS, name string, args ...string) string {
	tb.Helper()
	out, err := ns.Run(name, args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// Link is one end of a veth pair.
type Link struct {
	NS   *netns.NS
	Name string
}

// Interface looks the link up inside its namespace.
func (l Link) Interface(tb testing.TB) *net.Interface {
	tb.Helper()
	var ifi *net.Interface
	if err := l.NS.Do(func() error {
		var err error
		ifi, err = net.InterfaceByName(l.Name)
		return err
	}); err != nil {
		tb.Fatalf("lookup %s: %v", l.Name, err)
	}
	return ifi
}

// Run runs a command in the link's namespace, failing the test on error.
func (l Link) Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	return MustRun(tb, l.NS, name, args...)
}

// VethConfig describes a veth pair; the zero value is an MTU-1500 pair with the kernel's default
// offloads (checksum, TSO and GSO on), both ends up.
type VethConfig struct {
	MTU         int  // 0 means 1500
	OffloadsOff bool // ethtool -K rx off tx off tso off gso off gro off on both ends
	Down        bool // leave both ends down
	// MACA and MACB set fixed addresses; empty means kernel-chosen.
	MACA, MACB string
}

// Veth creates a veth pair with end nameA in a and nameB in b. The pair disappears with the
// namespaces at cleanup.
func Veth(tb testing.TB, a *netns.NS, nameA string, b *netns.NS, nameB string, cfg *VethConfig) (Link, Link) {
	tb.Helper()
	if cfg == nil {
		cfg = &VethConfig{}
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = 1500
	}
	// ip(8) opens a netns argument that contains a slash as a path: fd 3 is b's namespace.
	// A duplicate, closed here: wrapping b's own descriptor in a second *os.File would let that
	// file's finalizer close the namespace (or whatever reuses the number) later.
	dup, err := unix.FcntlInt(uintptr(b.Fd()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("dup netns fd: %v", err)
	}
	nsFile := os.NewFile(uintptr(dup), "netns")
	defer nsFile.Close()
	err = a.Do(func() error {
		cmd := exec.Command("ip", "link", "add", nameA, "mtu", strconv.Itoa(mtu), "type", "veth",
			"peer", "name", nameB, "mtu", strconv.Itoa(mtu), "netns", "/proc/self/fd/3")
		cmd.ExtraFiles = []*os.File{nsFile}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ip link add %s type veth peer %s: %w: %s", nameA, nameB, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	la, lb := Link{a, nameA}, Link{b, nameB}
	tb.Cleanup(func() { a.Run("ip", "link", "del", nameA) })
	if cfg.MACA != "" {
		la.Run(tb, "ip", "link", "set", nameA, "address", cfg.MACA)
	}
	if cfg.MACB != "" {
		lb.Run(tb, "ip", "link", "set", nameB, "address", cfg.MACB)
	}
	if cfg.OffloadsOff {
		RequireTool(tb, "ethtool")
		for _, l := range []Link{la, lb} {
			l.Run(tb, "ethtool", "-K", l.Name, "rx", "off", "tx", "off", "tso", "off", "gso", "off", "gro", "off")
		}
	}
	if !cfg.Down {
		la.Run(tb, "ip", "link", "set", nameA, "up")
		lb.Run(tb, "ip", "link", "set", nameB, "up")
		WaitLinkUp(tb, la)
		WaitLinkUp(tb, lb)
	}
	return la, lb
}

// WaitLinkUp waits (at most 5 s) until the kernel's link watcher has finished bringing l up:
// operational state UP and a real qdisc attached. Until then the device's qdisc is noop and drops
// every frame sent, which would make a test's first frames vanish at random.
func WaitLinkUp(tb testing.TB, l Link) {
	tb.Helper()
	var out string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		out = MustRun(tb, l.NS, "ip", "-o", "link", "show", "dev", l.Name)
		if strings.Contains(out, "state UP") && !strings.Contains(out, "qdisc noop") {
			return
		}
	}
	tb.Fatalf("%s did not come up within 5s: %s", l.Name, out)
}

// Pair is the two-namespace fixture of socket tests: the socket under test opens Local inside
// Local.NS, and the test injects or captures frames on Remote.
type Pair struct {
	Local, Remote Link
}

// NewPair creates two namespaces joined by one veth pair named afb0 (local) and afb1 (remote).
func NewPair(tb testing.TB, cfg *VethConfig) Pair {
	tb.Helper()
	local := NS(tb, "local")
	remote := NS(tb, "remote")
	l, r := Veth(tb, local, "afb0", remote, "afb1", cfg)
	return Pair{Local: l, Remote: r}
}

// OneCPU runs f on a thread bound to a single CPU and then gives the thread its CPUs back.
// A frame sent to a veth enters the receive backlog of the CPU that sent it; a sender that
// migrates between CPUs mid-burst spreads its frames over two backlogs, and when one CPU's
// softirq work is delayed (a loaded machine) its frames reach the receiving socket after later
// ones. Sent from one CPU, they arrive in the order sent. If f ends its goroutine
// (t.FailNow), the thread still gets its CPUs back. OneCPU fails only if the thread's CPUs
// cannot be read or set.
func OneCPU(f func()) error {
	runtime.LockOSThread()
	var all, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		runtime.UnlockOSThread()
		return os.NewSyscallError("sched_getaffinity", err)
	}
	for c := 0; c < len(all)*64 && one.Count() == 0; c++ {
		if all.IsSet(c) {
			one.Set(c)
		}
	}
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		runtime.UnlockOSThread()
		return os.NewSyscallError("sched_setaffinity", err)
	}
	defer func() {
		// A thread whose CPUs could not be given back stays locked: the runtime ends it with
		// the goroutine rather than reuse it.
		if unix.SchedSetaffinity(0, &all) == nil {
			runtime.UnlockOSThread()
		}
	}()
	f()
	return nil
}
