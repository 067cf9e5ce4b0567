//go:build linux

// Package netns creates anonymous network namespaces and runs code inside them.
//
// A namespace is created on a locked OS thread with unshare(CLONE_NEWNET) and kept alive by an open
// file descriptor, never by a bind mount, so a crashed test leaves nothing behind: the kernel frees
// the namespace when the last descriptor closes. Do runs a function on a locked OS thread switched
// into the namespace and switches the thread back before unlocking it, so no other goroutine ever
// runs in the wrong namespace. Sockets opened and interfaces looked up inside Do stay in the
// namespace after Do returns, and so do child processes started inside it, which is how the test
// fixtures drive ip(8) and ethtool(8).
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// NS is an anonymous network namespace held open by a file descriptor.
type NS struct {
	mu   sync.Mutex
	file *os.File
	name string
}

// New creates an anonymous network namespace. name is only a label used in error messages.
func New(name string) (*NS, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	// A fresh goroutine whose thread is thrown away if anything goes wrong: returning while still
	// locked makes the runtime terminate the thread instead of reusing it in the wrong namespace.
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{err: os.NewSyscallError("unshare", err)}
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			return // thread stays locked and dies
		}
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			f.Close()
			ch <- result{err: os.NewSyscallError("setns", err)}
			return // thread stays locked and dies
		}
		runtime.UnlockOSThread()
		ch <- result{f: f}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("netns: create %s: %w", name, r.err)
	}
	return &NS{file: r.f, name: name}, nil
}

// Name returns the label given to New.
func (n *NS) Name() string { return n.name }

// Fd returns the namespace's file descriptor; it stays valid until Close.
func (n *NS) Fd() int { return int(n.file.Fd()) }

// Do runs fn on a locked OS thread inside the namespace and returns fn's error.
func (n *NS) Do(fn func() error) error {
	n.mu.Lock()
	f := n.file
	n.mu.Unlock()
	if f == nil {
		return fmt.Errorf("netns %s: %w", n.name, os.ErrClosed)
	}
	type result struct{ err error }
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err}
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{fmt.Errorf("netns %s: %w", n.name, os.NewSyscallError("setns", err))}
			return
		}
		var ferr error
		func() {
			defer func() {
				if p := recover(); p != nil {
					ferr = fmt.Errorf("netns %s: panic in Do: %v", n.name, p)
				}
			}()
			ferr = fn()
		}()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime kills it when this goroutine exits.
			ch <- result{errors.Join(ferr, os.NewSyscallError("setns back", err))}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ferr}
	}()
	return (<-ch).err
}

// Run runs a command inside the namespace and returns its combined output. The child inherits the
// namespace of the thread that forks it.
func (n *NS) Run(name string, args ...string) (string, error) {
	var out []byte
	err := n.Do(func() error {
		var err error
		out, err = exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("netns %s: %s %s: %w: %s", n.name, name, strings.Join(args, " "), err,
				strings.TrimSpace(string(out)))
		}
		return nil
	})
	return string(out), err
}

// Close releases the namespace. The kernel frees it, with every interface inside, once no socket
// or process refers to it any more.
func (n *NS) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.file == nil {
		return nil
	}
	err := n.file.Close()
	n.file = nil
	return err
}
