//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// keptCaps are the only capabilities the bridge needs once its sockets are open: CAP_NET_RAW to
// reopen AF_PACKET sockets when an interface is re-created, CAP_NET_ADMIN for promiscuous mode
// and socket buffers on them.
const keptCaps = 1<<unix.CAP_NET_RAW | 1<<unix.CAP_NET_ADMIN

// extraCaps are kept as well as keptCaps: bypassCaps when the bypass fast path runs (bypass.go).
// serve sets it before dropPrivileges.
var extraCaps uint64

// defaultRunAs is the user the bridge runs as when neither -run-as nor run-as: names one.
const defaultRunAs = "nobody"

// credentials are the user and group the bridge runs as once its sockets are open.
type credentials struct {
	uid, gid int
	name     string // for messages: "nobody (65534:65534)"
}

// lookupRunAs resolves the -run-as flag (USER or USER:GROUP) or, when it is empty, the run-as
// section of the configuration (userName, groupName), or else defaultRunAs. A user or group is
// a name or a number; without a group, the user's primary group. "root" or 0 is refused: an
// unprivileged user is the point.
func lookupRunAs(flagValue, userName, groupName string) (credentials, error) {
	if flagValue != "" {
		userName, groupName, _ = strings.Cut(flagValue, ":")
	}
	if userName == "" {
		userName = defaultRunAs
	}
	u, err := user.Lookup(userName)
	if err != nil {
		if _, nerr := strconv.Atoi(userName); nerr == nil {
			u, err = user.LookupId(userName)
		}
	}
	if err != nil {
		return credentials{}, fmt.Errorf("run-as user %q: %w (create it, or name another with -run-as USER)", userName, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return credentials{}, fmt.Errorf("run-as user %q: uid %q is not a number", userName, u.Uid)
	}
	gidText := u.Gid
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			if _, nerr := strconv.Atoi(groupName); nerr == nil {
				g, err = user.LookupGroupId(groupName)
			}
		}
		if err != nil {
			return credentials{}, fmt.Errorf("run-as group %q: %w", groupName, err)
		}
		gidText = g.Gid
	}
	gid, err := strconv.Atoi(gidText)
	if err != nil {
		return credentials{}, fmt.Errorf("run-as group of %q: gid %q is not a number", userName, gidText)
	}
	if uid == 0 || gid == 0 {
		return credentials{}, fmt.Errorf("run-as %s: uid and gid must not be 0; the bridge drops root once its sockets are open, name an unprivileged user", userName)
	}
	return credentials{uid: uid, gid: gid, name: fmt.Sprintf("%s (%d:%d)", u.Username, uid, gid)}, nil
}

// dropPrivileges is called once the sockets are open. On every thread of the process it:
//
//  1. shrinks the bounding set to keptCaps (while it still has CAP_SETPCAP);
//  2. switches to cred with PR_SET_KEEPCAPS, so the permitted set survives setresuid: the
//     supplementary groups become cred's group alone, then gid, then uid, real, effective and
//     saved alike, so root cannot be taken back;
//  3. sets the effective and permitted sets to keptCaps, and the inheritable set empty;
//  4. sets no_new_privs, so nothing it could execute gains privileges (setuid binaries, file
//     capabilities);
//  5. installs the seccomp allow-list of seccomp.go.
//
// A process that is not root (started with the two capabilities as an unprivileged user) skips
// 2. Capabilities and no_new_privs belong to threads, so every change goes through
// syscall.AllThreadsSyscall (setresuid and friends use it too), which Go provides only in
// binaries without cgo: build with CGO_ENABLED=0. A race build needs cgo, so it returns errCgo
// and changes nothing.
//
// beforeSwitch, if not nil, runs just before the switch of step 2, while the process is still
// root: the place to hand files to cred.
func dropPrivileges(cred credentials, beforeSwitch func()) error {
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_GET_KEEPCAPS, 0, 0); e == unix.ENOTSUP {
		return errCgo
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if (keptCaps|extraCaps)&(1<<c) != 0 {
			continue
		}
		// Needs CAP_SETPCAP; a process started with only the kept capabilities has a bounding
		// set it cannot change, and nothing to drop from its permitted set anyway.
		syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0)
	}
	if os.Geteuid() == 0 {
		if beforeSwitch != nil {
			beforeSwitch()
		}
		if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); e != 0 {
			return os.NewSyscallError("prctl PR_SET_KEEPCAPS", e)
		}
		if err := syscall.Setgroups([]int{cred.gid}); err != nil {
			return os.NewSyscallError("setgroups", err)
		}
		if err := syscall.Setresgid(cred.gid, cred.gid, cred.gid); err != nil {
			return os.NewSyscallError("setresgid", err)
		}
		if err := syscall.Setresuid(cred.uid, cred.uid, cred.uid); err != nil {
			return os.NewSyscallError("setresuid", err)
		}
		syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capget", err)
	}
	// Never ask for more than the process has: keep the intersection.
	keep := uint64(keptCaps) | extraCaps
	for i := range data { // capabilities 0-31, then 32-63 (CAP_BPF is 39)
		data[i].Permitted &= uint32(keep >> (32 * i))
		data[i].Effective = data[i].Permitted
		data[i].Inheritable = 0
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return os.NewSyscallError("capset", e)
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e != 0 {
		return os.NewSyscallError("prctl PR_SET_NO_NEW_PRIVS", e)
	}
	return loadSeccomp()
}

// afterDrop, when set (by testhook_linux.go, in test builds only), runs right after the drop.
var afterDrop func(printf func(string, ...any))

var errCgo = errors.New("this build uses cgo, so credentials and capabilities cannot be changed on every thread; build with CGO_ENABLED=0 to drop them")
