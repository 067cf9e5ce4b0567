//go:build linux

package peer

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// linkCheck is how often the supervisor looks at both ports: six ioctls, no allocation.
	linkCheck = 100 * time.Millisecond
	// minCheckGap bounds how often workers' pokes can make the supervisor look.
	minCheckGap = 10 * time.Millisecond
	// rebindFirst and rebindMax bound the back-off between attempts to bind to a re-created
	// interface: 50 ms, doubling, at most 2 s.
	rebindFirst = 50 * time.Millisecond
	rebindMax   = 2 * time.Second
)

// supervise watches the ports until the bridge stops, then stops the workers.
func (b *Bridge) supervise() {
	defer close(b.done)
	defer func() {
		b.halt.Or(haltStop)
		b.wake()
		b.wg.Wait()
	}()
	tick := time.NewTicker(linkCheck)
	defer tick.Stop()
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	var last time.Time
	for {
		select {
		case <-b.quit:
			return
		case <-tick.C:
		case <-b.kick:
			if since := time.Since(last); since < minCheckGap {
				gap.Reset(minCheckGap - since)
				select {
				case <-b.quit:
					return
				case <-gap.C:
				}
			}
		}
		last = time.Now()
		b.check()
	}
}

// check looks at both ports once: link state, MTU, and whether the interface is still the one
// the sockets are bound to.
func (b *Bridge) check() {
	for d := range b.sides {
		st := b.probe(d)
		b.portMu.Lock()
		bound := b.ports[d].Index
		b.portMu.Unlock()
		if st.err != nil && !errors.Is(st.err, unix.ENODEV) {
			continue // nothing known; look again next time
		}
		if st.err != nil || st.index != bound {
			b.removed(d, bound, st.index)
			return
		}
		b.setLink(d, st.up)
		if mtu := b.sides[d].ifi.MTU; st.mtu != mtu && st.mtu != b.mtuSeen[d] {
			b.log.Warn("MTU changed; frames above the new MTU will be refused or dropped by the kernel",
				"interface", b.sides[d].cfg.Interface, "mtu", st.mtu, "bound_mtu", mtu)
		}
		b.mtuSeen[d] = st.mtu
	}
}

// linkState is what one probe saw.
type linkState struct {
	index, mtu int
	up         bool // IFF_UP and IFF_RUNNING: administratively up, with carrier
	err        error
}

// ifreq is struct ifreq: the name, then a union of which the index, flags and MTU use the
// first 4 bytes.
type ifreq struct {
	name [unix.IFNAMSIZ]byte
	data [24]byte
}

// probe looks up side d's interface by name in the bridge's namespace (the control socket's),
// without allocating.
func (b *Bridge) probe(d int) linkState {
	var q ifreq
	copy(q.name[:unix.IFNAMSIZ-1], b.sides[d].cfg.Interface)
	ioctl := func(req uintptr) error {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(b.ctlFD), req, uintptr(unsafe.Pointer(&q))); e != 0 {
			return e
		}
		return nil
	}
	var st linkState
	if st.err = ioctl(unix.SIOCGIFINDEX); st.err != nil {
		return st
	}
	st.index = int(*(*int32)(unsafe.Pointer(&q.data[0])))
	if st.err = ioctl(unix.SIOCGIFFLAGS); st.err != nil {
		return st
	}
	flags := *(*uint16)(unsafe.Pointer(&q.data[0]))
	// dev_get_flags reports IFF_RUNNING only while the link is operationally up.
	st.up = flags&unix.IFF_UP != 0 && flags&unix.IFF_RUNNING != 0
	if st.err = ioctl(unix.SIOCGIFMTU); st.err != nil {
		return st
	}
	st.mtu = int(*(*int32)(unsafe.Pointer(&q.data[0])))
	return st
}

// initLink records side d's link state without counting a transition.
func (b *Bridge) initLink(d int, up bool) {
	bit := uint32(1) << d
	if up {
		b.down.And(^bit)
	} else {
		b.down.Or(bit)
	}
	b.portMu.Lock()
	b.ports[d].Up = up
	b.portMu.Unlock()
}

// setLink records side d's link state and counts and logs a change.
func (b *Bridge) setLink(d int, up bool) {
	bit := uint32(1) << d
	wasUp := b.down.Load()&bit == 0
	if up == wasUp {
		return
	}
	b.initLink(d, up)
	b.portMu.Lock()
	p := &b.ports[d]
	if up {
		p.Ups++
	} else {
		p.Downs++
	}
	b.portMu.Unlock()
	name := b.sides[d].cfg.Interface
	if up {
		b.log.Info("link up", "interface", name, "down_for", time.Since(b.downAt[d]).Round(time.Millisecond))
		return
	}
	b.downAt[d] = time.Now()
	b.log.Warn("link down", "interface", name, "policy", b.cfg.OnLinkDown)
}

// removed handles side d's interface disappearing (or being replaced under its name): it stops
// the bridge with ExitOnRemove, and otherwise re-binds both sides.
func (b *Bridge) removed(d, old, now int) {
	name := b.sides[d].cfg.Interface
	b.down.Or(1 << d)
	b.portMu.Lock()
	b.ports[d].Up = false
	b.ports[d].Removals++
	b.portMu.Unlock()
	if b.cfg.ExitOnRemove {
		b.log.Error("interface removed; stopping (ExitOnRemove)", "interface", name, "ifindex", old)
		b.fail(fmt.Errorf("%w: %s (ifindex %d) disappeared", ErrInterfaceRemoved, name, old))
		return
	}
	if now != 0 {
		b.log.Warn("interface replaced; re-binding", "interface", name, "ifindex", old, "new_ifindex", now)
	} else {
		b.log.Warn("interface removed; waiting for it to come back", "interface", name, "ifindex", old)
	}
	b.rebind()
}

// rebind stops the workers (each flushes what it committed), closes every socket, and opens,
// maps and joins them again in index order, retrying with back-off until the interfaces are
// back and valid or the bridge stops. The workers keep their verdict handlers and counters.
func (b *Bridge) rebind() {
	start := time.Now()
	b.pauseWorkers()
	b.sockMu.Lock()
	b.releaseLocked()
	b.sockMu.Unlock()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	delay := rebindFirst
	for attempt := 1; ; attempt++ {
		if b.halt.Load()&haltStop != 0 {
			return
		}
		err := b.inNS(b.reopen)
		if err == nil {
			break
		}
		if attempt == 1 {
			b.log.Warn("cannot bind yet; retrying with back-off", "err", err, "max_delay", rebindMax)
		} else {
			b.log.Debug("cannot bind yet", "attempt", attempt, "err", err, "delay", delay)
		}
		timer.Reset(delay)
		select {
		case <-b.quit:
			return
		case <-timer.C:
		}
		delay = min(2*delay, rebindMax)
	}
	for d := range b.sides {
		idx := b.sides[d].ifi.Index
		b.portMu.Lock()
		p := &b.ports[d]
		old := p.Index
		p.Index = idx
		if idx != old {
			p.Rebinds++
		}
		b.portMu.Unlock()
		if idx != old {
			b.log.Info("interface re-bound", "interface", b.sides[d].cfg.Interface, "old_ifindex", old,
				"ifindex", idx, "after", time.Since(start).Round(time.Millisecond))
		}
		st := b.probe(d)
		b.initLink(d, st.err == nil && st.up)
		b.mtuSeen[d] = b.sides[d].ifi.MTU
	}
	b.startWorkers()
}

// reopen validates the configuration against the interfaces there now and opens every socket;
// it runs in the bridge's namespace.
func (b *Bridge) reopen() error {
	if err := Validate(b.cfg); err != nil {
		return err
	}
	sides := [2]side{{cfg: b.cfg.A}, {cfg: b.cfg.B}}
	if err := b.openSides(&sides); err != nil {
		releaseSides(&sides)
		return err
	}
	b.sockMu.Lock()
	b.sides = sides
	for _, w := range b.workers {
		w.attach()
	}
	b.sockMu.Unlock()
	return nil
}

// inNS runs fn on a locked OS thread in the bridge's network namespace. When the thread is in
// it already (the usual case: everything in the host's namespace), there is no setns(2), which
// would need CAP_SYS_ADMIN.
func (b *Bridge) inNS(fn func() error) error {
	if b.nsFD < 0 {
		return fn()
	}
	res := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var want, cur unix.Stat_t
		if unix.Fstat(b.nsFD, &want) == nil && unix.Stat("/proc/thread-self/ns/net", &cur) == nil &&
			want.Dev == cur.Dev && want.Ino == cur.Ino {
			err := fn()
			runtime.UnlockOSThread()
			res <- err
			return
		}
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			res <- fmt.Errorf("peer: %w", &os.PathError{Op: "open", Path: "/proc/thread-self/ns/net", Err: err})
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(b.nsFD, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			res <- fmt.Errorf("peer: enter the bridge's network namespace: %w", os.NewSyscallError("setns", err))
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// The thread stays locked, so the runtime ends it with this goroutine rather than
			// reuse it in the wrong namespace.
			res <- errors.Join(ferr, os.NewSyscallError("setns back", err))
			return
		}
		runtime.UnlockOSThread()
		res <- ferr
	}()
	return <-res
}
