//go:build linux

package main

import (
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
)

// allowedSyscalls are the system calls the bridge makes once its sockets are open: the Go
// runtime's, the packet path's, re-binding a re-created interface (socket, bind, setsockopt,
// mmap, ioctl, setns), the EVE log (openat, write, fstat), rule reloads, the metrics server,
// Prometheus' process collector (reads in /proc), and bpf(2) for eBPF maps on descriptors it
// already holds. Names this architecture lacks are skipped (epoll_wait exists on amd64, not
// arm64).
//
// Everything else fails with EPERM, and the kernel logs it (SECCOMP_FILTER_FLAG_LOG, to the
// audit log or dmesg as "audit: type=1326 ... syscall=N"): a denied call shows up as an error
// the bridge reports, not as a dead bridge in the middle of a network. Left out on purpose:
// execve and execveat (a compromised bridge cannot start a shell), ptrace and process_vm_*,
// mount and friends, unshare, chown, chmod, unlink, rename, link, symlink, mknod, the setuid
// family and capset, keyctl, module loading, kexec, perf_event_open, userfaultfd, io_uring.
var allowedSyscalls = []string{
	// memory, threads, signals, time
	"brk", "mmap", "munmap", "mprotect", "madvise", "mremap", "mlock", "mlock2", "munlock",
	"clone", "clone3", "exit", "exit_group", "futex", "futex_waitv", "set_robust_list",
	"get_robust_list", "set_tid_address", "rseq", "arch_prctl", "sched_yield",
	"sched_getaffinity", "sched_setaffinity", "getcpu", "membarrier",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "sigaltstack", "tgkill",
	"tkill", "getpid", "gettid", "getppid", "restart_syscall",
	"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
	"timer_create", "timer_settime", "timer_delete", "setitimer", "getitimer", "getrandom",
	"uname", "sysinfo", "getrusage", "getrlimit", "prlimit64", "prctl", "capget",
	"getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid",
	// descriptors and polling
	"read", "write", "readv", "writev", "pread64", "pwrite64", "close", "close_range",
	"dup", "dup2", "dup3", "fcntl", "ioctl", "pipe", "pipe2", "eventfd", "eventfd2",
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
	"poll", "ppoll", "select", "pselect6",
	// files: opening the EVE log and the rules, reading /proc
	"open", "openat", "openat2", "fstat", "newfstatat", "stat", "lstat", "statx", "lseek",
	"getdents64", "readlink", "readlinkat", "statfs", "fstatfs", "access", "faccessat", "faccessat2", "fadvise64",
	"fsync", "fdatasync",
	// sockets: packet sockets, netlink look-ups, the metrics server
	"socket", "socketpair", "bind", "connect", "listen", "accept", "accept4", "shutdown",
	"sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
	"getsockopt", "setsockopt", "getsockname", "getpeername",
	// re-binding in the bridge's network namespace; eBPF maps
	"setns", "bpf",
}

// loadSeccomp installs the allow-list on every thread (SECCOMP_FILTER_FLAG_TSYNC).
func loadSeccomp() error {
	info, err := arch.GetInfo("")
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	names := make([]string, 0, len(allowedSyscalls))
	for _, n := range allowedSyscalls {
		if _, ok := info.SyscallNames[n]; ok {
			names = append(names, n)
		}
	}
	f := seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync | seccomp.FilterFlagLog,
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionErrno, // EPERM
			Syscalls:      []seccomp.SyscallGroup{{Action: seccomp.ActionAllow, Names: names}},
		},
	}
	if err := seccomp.LoadFilter(f); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}
