//go:build linux

package main

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// keptCaps are the only capabilities the bridge needs once its sockets are open: CAP_NET_RAW to
// reopen AF_PACKET sockets when an interface is re-created, CAP_NET_ADMIN for promiscuous mode
// and socket buffers on them.
const keptCaps = 1<<unix.CAP_NET_RAW | 1<<unix.CAP_NET_ADMIN

// dropCapabilities reduces every thread's capabilities to keptCaps: the bounding set (where the
// process may still change it), then the permitted, effective and inheritable sets. A bridge
// that is compromised through a parsed frame can then do no more than a packet socket can.
//
// Capabilities belong to threads, so the change goes through syscall.AllThreadsSyscall, which
// Go provides only in binaries without cgo: build with CGO_ENABLED=0 (the race detector needs
// cgo, so race builds keep their capabilities and say so).
func dropCapabilities() error {
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if keptCaps&(1<<c) != 0 {
			continue
		}
		// Needs CAP_SETPCAP; a process started with only the kept capabilities has a bounding
		// set it cannot change, and nothing to drop from its permitted set anyway.
		if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); e == unix.ENOTSUP {
			return errCgo
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	data[0].Effective, data[0].Permitted = keptCaps, keptCaps
	if err := unix.Capget(&hdr, &data[0]); err == nil {
		// Never ask for more than the process has: keep the intersection.
		data[0].Effective &= keptCaps
		data[0].Permitted &= keptCaps
		data[0].Inheritable = 0
		data[1] = unix.CapUserData{}
	}
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	switch e {
	case 0:
		return nil
	case unix.ENOTSUP:
		return errCgo
	}
	return fmt.Errorf("capset: %w", e)
}

var errCgo = errors.New("this build uses cgo, so capabilities cannot be changed on every thread; build with CGO_ENABLED=0 to drop them")
