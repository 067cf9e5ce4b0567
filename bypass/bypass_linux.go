//go:build linux

package bypass

import (
	"errors"
	"fmt"
	"github.com/afbridge/afbridge/flow"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// flowValue is the flow map's value. LastSeen, Frames and Bytes are written by the socket filter
// for the frames it sends to the fast path, and by the tc program for those no filter of ours saw;
// Last, Live, Member and Waits by the socket filter during the handover; user space writes the whole
// value once, when it adds the flow.
type flowValue struct {
	LastSeen uint64    // CLOCK_MONOTONIC ns
	Frames   [2]uint64 // forwarded by tc, per ingress side
	Bytes    [2]uint64
	Last     [2]uint64 // per side: sequence number of the last frame the filter let into a ring while handing over
	Live     [2]uint32 // per side: 1 once the direction is handed over
	Member   [2]uint32 // per side: the fanout member whose ring holds frame Last
	Waits    [2]uint32 // per side: frames that found earlier ones still in the ring (Config.HandoverLimit)
}

type portValue struct {
	Peer uint32 // ifindex frames are redirected to
	Side uint32
}

type counterValue struct {
	Frames, Bytes [2]uint64
	Expired       uint64
	NoPort        uint64
	Closed        uint64
	Forced        uint64
	Shed          uint64
}

var (
	_ [valSize]byte     = [unsafe.Sizeof(flowValue{})]byte{}
	_ [counterSize]byte = [unsafe.Sizeof(counterValue{})]byte{}
	_ [40]byte          = [unsafe.Sizeof(flow.Key{})]byte{}
)

// Path is the kernel fast path for one bridged pair of ports: the maps, a tcx ingress program on
// each port, and the socket filters of the bridge's fanout members. It is safe for concurrent use.
//
// Nothing of it is pinned: the programs and maps go away on [Path.Close] and when the process
// dies. A socket filter built by [Path.Filter] holds the maps until its socket is closed.
type Path struct {
	cfg Config

	flows    *ebpf.Map // LRU hash flow.Key -> flowValue
	ports    *ebpf.Map // hash ingress ifindex -> portValue
	peers    *ebpf.Map // array Side -> the other port's ifindex, for the socket filters
	counters *ebpf.Map // per-CPU array, one counterValue
	seq      *ebpf.Map // one-element mmapable array: admitted, done and pending sequence numbers and the shed deadline, per member and side
	seqMem   []byte
	tc       *ebpf.Program

	mu      sync.Mutex
	closed  bool
	links   [2]link.Link
	ifindex [2]int

	total, withdrawn, addErrors atomic.Uint64
}

// Open creates the maps and loads the tc program. It attaches nothing; see [Path.Attach] and
// [Path.Filter]. When the kernel or the process's privileges do not allow it, the error matches
// [ErrUnavailable].
func Open(cfg *Config) (*Path, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Path{cfg: c}
	ok := false
	defer func() {
		if !ok {
			p.release()
		}
	}()
	mk := func(spec *ebpf.MapSpec) (*ebpf.Map, error) {
		m, err := ebpf.NewMap(spec)
		if err != nil {
			return nil, unavailable("load maps", err)
		}
		return m, nil
	}
	if p.flows, err = mk(&ebpf.MapSpec{Name: "afb_flows", Type: ebpf.LRUHash, KeySize: 40, ValueSize: valSize, MaxEntries: uint32(c.MaxFlows)}); err != nil {
		return nil, err
	}
	if p.ports, err = mk(&ebpf.MapSpec{Name: "afb_ports", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 8}); err != nil {
		return nil, err
	}
	if p.peers, err = mk(&ebpf.MapSpec{Name: "afb_peers", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 2}); err != nil {
		return nil, err
	}
	if p.counters, err = mk(&ebpf.MapSpec{Name: "afb_counters", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: counterSize, MaxEntries: 1}); err != nil {
		return nil, err
	}
	if p.seq, err = mk(&ebpf.MapSpec{Name: "afb_seq", Type: ebpf.Array, KeySize: 4, ValueSize: uint32(8 * seqWords * c.Members), MaxEntries: 1, Flags: unix.BPF_F_MMAPABLE}); err != nil {
		return nil, err
	}
	size := (8*seqWords*c.Members + os.Getpagesize() - 1) &^ (os.Getpagesize() - 1)
	if p.seqMem, err = unix.Mmap(p.seq.FD(), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return nil, unavailable("load maps", os.NewSyscallError("mmap", err))
	}
	insns := p.tcProgram()
	if p.tc, err = p.load("afb_tc", ebpf.SchedCLS, insns); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

func (p *Path) load(name string, typ ebpf.ProgramType, insns asm.Instructions) (*ebpf.Program, error) {
	for sym, m := range map[string]*ebpf.Map{"flows": p.flows, "ports": p.ports, "peers": p.peers, "counters": p.counters, "seq": p.seq} {
		if err := insns.AssociateMap(sym, m); err != nil && !errors.Is(err, asm.ErrUnreferencedSymbol) {
			return nil, fmt.Errorf("bypass: %s: %w", name, err)
		}
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: typ, Instructions: insns, License: "MIT"})
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, ebpf.ErrNotSupported) {
			return nil, unavailable("load programs", err)
		}
		return nil, fmt.Errorf("bypass: load %s: %w", name, err)
	}
	return prog, nil
}

func unavailable(op string, err error) error {
	fix := "the fast path needs Linux 6.6 or later with BPF enabled"
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		fix = "run as root or grant CAP_BPF and CAP_NET_ADMIN (CAP_SYS_ADMIN before Linux 5.8); check kernel.unprivileged_bpf_disabled and, before Linux 5.11, raise RLIMIT_MEMLOCK"
	case op == "attach tcx":
		fix = "tcx attachment needs Linux 6.6 or later; this kernel is " + kernelRelease()
	case errors.Is(err, ebpf.ErrNotSupported):
		fix += "; this kernel is " + kernelRelease()
	}
	return &UnavailableError{Op: op, Fix: fix, Err: err}
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Attach puts the tc program on the ingress of both ports, given by interface index in the
// network namespace of the calling goroutine's OS thread (as afpacket.Listen resolves names), and
// points each port's redirect at the other. Call it before the sockets' filters go in, and again
// when a port comes back with a new index: the new attachment is made before the old one is
// removed, so the redirect follows the port without a gap.
func (p *Path) Attach(a, b int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if a <= 0 || b <= 0 || a == b {
		return fmt.Errorf("bypass: attach: interface indexes %d and %d must be two distinct positive numbers", a, b)
	}
	idx := [2]int{a, b}
	for s := range 2 {
		if err := p.ports.Put(uint32(idx[s]), portValue{Peer: uint32(idx[1-s]), Side: uint32(s)}); err != nil {
			return fmt.Errorf("bypass: attach: port map: %w", err)
		}
	}
	for s := range 2 {
		if err := p.peers.Put(uint32(s), uint32(idx[1-s])); err != nil {
			return fmt.Errorf("bypass: attach: peer map: %w", err)
		}
	}
	var fresh [2]link.Link
	for s := range 2 {
		l, err := link.AttachTCX(link.TCXOptions{Interface: idx[s], Program: p.tc, Attach: ebpf.AttachTCXIngress})
		if errors.Is(err, unix.EEXIST) && p.ifindex[s] == idx[s] && p.links[s] != nil {
			// Still attached from last time: the port did not change.
			continue
		}
		if err != nil {
			for _, f := range fresh {
				if f != nil {
					f.Close()
				}
			}
			if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
				return unavailable("attach tcx", err)
			}
			if errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("bypass: attach tcx to interface %d: %w (the interface is gone)", idx[s], err)
			}
			return fmt.Errorf("bypass: attach tcx to interface %d: %w", idx[s], err)
		}
		fresh[s] = l
	}
	for s := range 2 {
		if fresh[s] == nil {
			fresh[s] = p.links[s]
			continue
		}
		if p.links[s] != nil {
			p.links[s].Close()
		}
		old := p.ifindex[s]
		if old != 0 && old != a && old != b {
			_ = p.ports.Delete(uint32(old))
		}
	}
	p.links, p.ifindex = fresh, idx
	return nil
}

// Filter builds the socket filter for fanout member index on side: the user's classic BPF program
// (nil for none) runs first and keeps its meaning, then frames of live bypassed flows are kept out
// of the ring and handed to the tc program, and the handover bookkeeping is done. Attach it to the
// member's socket with [Filter.Attach] once every member of the fanout group has joined, in place
// of the drop-all filter the socket was opened with: a socket holds one filter, and replacing it is
// atomic.
func (p *Path) Filter(side Side, index int, user []bpf.Instruction) (*Filter, error) {
	if side > B {
		return nil, fmt.Errorf("bypass: filter: side %v is neither A nor B", side)
	}
	if index < 0 || index >= p.cfg.Members {
		return nil, fmt.Errorf("bypass: filter: member %d out of range 0 to %d (Config.Members)", index, p.cfg.Members-1)
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	insns, err := p.tapProgram(side, index, user)
	if err != nil {
		return nil, err
	}
	prog, err := p.load(fmt.Sprintf("afb_tap%v%d", side, index), ebpf.SocketFilter, insns)
	if err != nil {
		return nil, err
	}
	return &Filter{p: p, prog: prog, side: side, index: index}, nil
}

// Filter is the socket filter of one fanout member, built by [Path.Filter]. Its methods must not
// be called after the Path is closed; close or stop using the worker's sockets first.
type Filter struct {
	p     *Path
	prog  *ebpf.Program
	side  Side
	index int

	base     uint64   // the member's admitted count when this filter was built
	done     uint64   // the sequence number Settle published last
	points   [2]point // handover points waiting to be published, oldest first
	drops    uint64   // the socket's drops Observe saw last
	observed uint64   // when Observe ran last, monoNow; 0: not since Attach
}

// seqWords is the number of 8-byte words per member in the seq map: per side, the admitted,
// done and pending sequence numbers and the shed deadline.
const seqWords = 8

// Attach sets the filter on a socket (SO_ATTACH_BPF), replacing whatever filter it had in one
// step. c is an AF_PACKET socket such as *afpacket.Conn. One Filter serves one socket at a time:
// attaching it to the member's next socket (after a re-bind closed the previous one) starts
// [Filter.Settle]'s counts afresh; it loads no program.
func (f *Filter) Attach(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("bypass: attach socket filter: %w", err)
	}
	// A member's sequence numbers run on across sockets, so that flows handing over keep
	// comparable numbers; the new socket's counts start from here, read before it can admit any.
	m := f.p.cfg.Members
	f.base = f.Admitted()
	f.done = atomic.LoadUint64(f.p.word(2*m + int(f.side)*m + f.index))
	f.points = [2]point{}
	f.drops, f.observed = 0, 0
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_BPF, f.prog.FD())
	}); err != nil {
		return fmt.Errorf("bypass: attach socket filter: %w", err)
	}
	if serr != nil {
		err := os.NewSyscallError("setsockopt SO_ATTACH_BPF", serr)
		if errors.Is(serr, unix.EPERM) {
			return unavailable("attach socket filter", err)
		}
		return fmt.Errorf("bypass: attach socket filter: %w", err)
	}
	return nil
}

// Wants reports whether frames of flows handing over sit in the member's ring, waiting for
// [Filter.Observe] and [Filter.Settle]. It reads shared memory: no system call, no allocation.
func (f *Filter) Wants() bool {
	m := f.p.cfg.Members
	return atomic.LoadUint64(f.p.word(4*m+int(f.side)*m+f.index)) > f.done
}

// Observe looks for a handover point: call it from the worker that owns the member's ring, while
// [Filter.Wants] says so, with the socket's cumulative PACKET_STATISTICS (afpacket.Stats.Packets,
// which includes the drops, and afpacket.Stats.Drops) read just before the call, after taking a
// batch of frames and before sending them. [Filter.Settle], once they are sent, publishes it.
//
// When packets equals the number of frames the filter has let in, no frame is between the filter
// and the ring: every frame let in so far is among the first packets-drops the ring queued, and
// once the worker has taken and flushed that many, a flow whose last bridged frame is among them
// can take the fast path without overtaking any. Observing before the send and publishing right
// after it wins the race with a flow whose next frame answers the one being sent (a ping, a UDP
// request): publishing only after reading the statistics again would usually come too late.
//
// The counts are the socket's, from when it was opened; the filter must be the only one the socket
// had that let frames in (peer opens sockets with a drop-all filter and replaces it with this one).
// A growing drop count means the ring overflows: the filter then sheds frames of flows handing over
// for [ShedHold]. Observe makes no system call and does not allocate; it is not safe for
// concurrent use.
func (f *Filter) Observe(packets, drops uint64) {
	m := f.p.cfg.Members
	// Drops since an Observe long ago (the socket is read only while a flow waits) are old
	// news: they only resynchronise the count. Drops between two Observes close together mean
	// the ring overflows now.
	now := monoNow()
	if drops > f.drops {
		if f.observed != 0 && now-f.observed <= uint64(ShedHold) {
			atomic.StoreUint64(f.p.word(6*m+int(f.side)*m+f.index), now+uint64(ShedHold))
		}
		f.drops = drops
	}
	f.observed = now
	adm := atomic.LoadUint64(f.p.word(int(f.side)*m + f.index))
	if f.base+packets != adm || packets < drops || adm <= f.done {
		return
	}
	pt := point{n: adm, queued: packets - drops}
	switch {
	case !f.points[0].set():
		f.points[0] = pt
	case adm > f.points[0].n:
		f.points[1] = pt // the newest; points[0] may be reached sooner
	}
}

// Settle publishes the newest handover point [Filter.Observe] found whose frames the worker has
// all taken and flushed: received is the number of frames it has taken from the ring since the
// socket was opened, every one of them sent or dropped. The next frame of a flow whose last
// bridged frame the point covers takes the fast path. Settle reports whether everything the
// filter let in so far has been published. It makes no system call and does not allocate; it is
// not safe for concurrent use.
func (f *Filter) Settle(received uint64) bool {
	switch {
	case f.points[1].set() && received >= f.points[1].queued:
		f.publish(f.points[1].n)
		f.points = [2]point{}
	case f.points[0].set() && received >= f.points[0].queued:
		f.publish(f.points[0].n)
		f.points = [2]point{f.points[1]}
	}
	return !f.points[0].set() && f.done == f.Admitted()
}

// point is a handover point: once the worker has taken queued frames from the ring and sent
// them, every frame the filter let in up to admitted count n is dealt with.
type point struct{ n, queued uint64 }

func (p point) set() bool { return p.n != 0 }

func (f *Filter) publish(n uint64) {
	if n > f.done {
		m := f.p.cfg.Members
		atomic.StoreUint64(f.p.word(2*m+int(f.side)*m+f.index), n)
		f.done = n
	}
}

// Admitted returns how many frames the filter has let into the member's ring.
func (f *Filter) Admitted() uint64 {
	return atomic.LoadUint64(f.p.word(int(f.side)*f.p.cfg.Members + f.index))
}

// Close releases the program; a socket it is attached to keeps it until the socket closes.
func (f *Filter) Close() error { return f.prog.Close() }

func (p *Path) word(i int) *uint64 { return (*uint64)(unsafe.Pointer(&p.seqMem[8*i])) }

// Add puts a flow on the fast path. Its frames keep going through the bridge until every frame of
// it already in a ring has been forwarded (see [Filter.Settle]); then each direction switches to
// the kernel. Adding a flow that is already there changes nothing. When the map is full the least
// recently used flow is evicted.
func (p *Path) Add(k flow.Key) error {
	v := flowValue{LastSeen: monoNow()}
	err := p.flows.Update(&k, &v, ebpf.UpdateNoExist)
	switch {
	case err == nil:
		p.total.Add(1)
		return nil
	case errors.Is(err, ebpf.ErrKeyExist):
		return nil
	case errors.Is(err, os.ErrClosed):
		return ErrClosed
	}
	p.addErrors.Add(1)
	return fmt.Errorf("bypass: add flow: %w", err)
}

// Withdraw takes a flow off the fast path: its next frame, in either direction, goes to the bridge
// again. A frame the socket filter already kept out of the ring is still forwarded by tc, and it
// precedes that next frame, so nothing is lost, duplicated or reordered. It reports whether the
// flow was there.
func (p *Path) Withdraw(k flow.Key) (bool, error) {
	err := p.flows.Delete(&k)
	switch {
	case err == nil:
		p.withdrawn.Add(1)
		return true, nil
	case errors.Is(err, ebpf.ErrKeyNotExist):
		return false, nil
	}
	return false, fmt.Errorf("bypass: withdraw flow: %w", err)
}

// WithdrawAll takes every flow off the fast path, as [Path.Withdraw] does one, and returns how
// many there were. Flows added while it runs may stay.
func (p *Path) WithdrawAll() (int, error) {
	keys := make([]flow.Key, 1024)
	vals := make([]flowValue, 1024)
	n := 0
	var cursor ebpf.MapBatchCursor
	for {
		c, err := p.flows.BatchLookupAndDelete(&cursor, keys, vals, nil)
		n += c
		p.withdrawn.Add(uint64(c))
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("bypass: withdraw all: %w", err)
		}
	}
}

// Lookup returns a flow's fast-path state, and false when the flow is not in the map.
func (p *Path) Lookup(k flow.Key) (FlowStats, bool, error) {
	var v flowValue
	if err := p.flows.Lookup(&k, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return FlowStats{}, false, nil
		}
		return FlowStats{}, false, fmt.Errorf("bypass: lookup flow: %w", err)
	}
	return FlowStats{
		LastSeen: time.Duration(v.LastSeen),
		Frames:   v.Frames,
		Bytes:    v.Bytes,
		Live:     [2]bool{v.Live[0] != 0, v.Live[1] != 0},
	}, true, nil
}

// Stats returns the fast path's counters. It walks the flow map to count the current flows, which
// takes a few system calls per thousand flows.
func (p *Path) Stats() (Stats, error) {
	var st Stats
	var per []counterValue
	if err := p.counters.Lookup(uint32(0), &per); err != nil {
		return st, fmt.Errorf("bypass: stats: %w", err)
	}
	for _, c := range per {
		for s := range 2 {
			st.Frames[s] += c.Frames[s]
			st.Bytes[s] += c.Bytes[s]
		}
		st.Expired += c.Expired
		st.Closed += c.Closed
		st.Forced += c.Forced
		st.Shed += c.Shed
		st.NoPort += c.NoPort
	}
	// Read the user-space counters before the walk: a flow added during it is then at worst
	// counted as current but not yet as total, which the clamp below absorbs.
	st.Total = p.total.Load()
	st.Withdrawn = p.withdrawn.Load()
	st.AddErrors = p.addErrors.Load()
	keys := make([]flow.Key, 1024)
	vals := make([]flowValue, 1024)
	var cursor ebpf.MapBatchCursor
	for {
		c, err := p.flows.BatchLookup(&cursor, keys, vals, nil)
		st.Current += uint64(c)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("bypass: stats: %w", err)
		}
	}
	gone := st.Current + st.Expired + st.Closed + st.Withdrawn
	if gone < st.Total {
		st.Evicted = st.Total - gone
	} else {
		st.Total = gone
	}
	return st, nil
}

// Close detaches the tc programs and releases the maps and programs. Socket filters built by
// [Path.Filter] stay on their sockets until those close; without tc behind them they keep no
// frame out of a ring whose flow is not in the map, and the map is empty once Close returns.
func (p *Path) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	// Empty the map first, so filters that outlive the Path let every frame into their rings.
	if p.flows != nil {
		_, _ = p.WithdrawAll()
	}
	return p.release()
}

func (p *Path) release() error {
	var errs []error
	for s, l := range p.links {
		if l != nil {
			errs = append(errs, l.Close())
			p.links[s] = nil
		}
	}
	if p.tc != nil {
		errs = append(errs, p.tc.Close())
	}
	if p.seqMem != nil {
		errs = append(errs, unix.Munmap(p.seqMem))
		p.seqMem = nil
	}
	for _, m := range []*ebpf.Map{p.flows, p.ports, p.peers, p.counters, p.seq} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// monoBase is CLOCK_MONOTONIC, as the programs read it, at the instant of monoStart.
var monoBase, monoStart = func() (uint64, time.Time) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano()), time.Now()
}()

// monoNow is CLOCK_MONOTONIC in nanoseconds, the clock of bpf_ktime_get_ns. It reads Go's
// monotonic clock (the same clock, through the vDSO) instead of making a system call per flow
// added.
func monoNow() uint64 { return monoBase + uint64(time.Since(monoStart)) }
