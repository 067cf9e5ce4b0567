//go:build linux

package peer

import (
	"context"
	"fmt"
	"github.com/afbridge/afbridge/bypass"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/fanout/ippair"
	"github.com/afbridge/afbridge/ring"
	"github.com/afbridge/afbridge/verdict"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// dropAll is attached to every socket until the whole fanout group has joined: a socket that is
// bound but not yet a member would otherwise receive every frame on its own, and the bridge would
// forward those twice.
var dropAll = []bpf.Instruction{bpf.RetConstant{Val: 0}}

// Bridge is an inline bridge between two interfaces. Start it, let it run, Close it. Its methods
// are safe for concurrent use.
//
// While it runs, a supervisor goroutine watches both ports (every linkCheck, and at once when a
// worker sees a socket error): it tracks link state for the OnLinkDown policy, and when an
// interface disappears it stops the workers, closes every socket, and binds again, with
// bounded back-off, to the interface that next carries the same name (or, with ExitOnRemove,
// stops the bridge with ErrInterfaceRemoved).
type Bridge struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex // guards starting, started, closed and final; held while Start opens sockets
	starting  bool       // Start is making the handlers
	started   bool
	closed    bool
	final     *Stats // the counters at Close
	closeOnce sync.Once

	halt     atomic.Uint32 // haltStop, haltPause: workers read it once a round
	down     atomic.Uint32 // bit d is set while side d's port is down or missing: read once a frame
	quit     chan struct{} // closed when the bridge stops (Close or a fatal error)
	quitOnce sync.Once
	kick     chan struct{} // a worker saw a port fail: check the links now
	done     chan struct{} // closed when the supervisor and every worker have stopped
	wg       sync.WaitGroup

	wakeFD int             // eventfd that wakes every worker out of poll(2)
	ctlFD  int             // a socket in the bridge's network namespace, for interface ioctls
	nsFD   int             // the bridge's network namespace, to re-bind in; -1 if unknown
	lb     *ippair.Program // the fanout program of EBPF groups; nil for other modes

	sockMu  sync.Mutex // guards sides, workers, bp and the workers' kernel counter bases
	sides   [2]side
	workers []*worker
	bp      *bypass.Path // the kernel fast path; nil when off or unavailable
	// bpFilters holds the fast path's socket filter of each worker, per side.
	bpFilters [2][]*bypass.Filter

	portMu sync.Mutex // guards ports
	ports  [2]Port

	// The supervisor's own: when each port went down, and the MTU it last reported.
	downAt  [2]time.Time
	mtuSeen [2]int

	errMu sync.Mutex
	err   error // first fatal error
}

const (
	haltStop  = 1 << iota // the bridge is stopping
	haltPause             // the supervisor is re-binding
)

type side struct {
	cfg   Side
	ifi   afpacket.Interface
	group fanout.Group
	conns []*afpacket.Conn
	maps  []*ring.Map
	fds   []int
	// send holds one send-only socket per worker for frames too large for a TX slot: sendmsg on
	// a socket with a TX ring only flushes the ring, so large frames need a socket without one.
	send    []*afpacket.Conn
	sendFDs []int
	// filters holds the bypass socket filter of each socket, when the fast path runs (owned by
	// Bridge.bpFilters).
	filters []*bypass.Filter
}

// New returns an unstarted bridge for cfg; nothing is opened until Start.
func New(cfg Config) (*Bridge, error) {
	b := &Bridge{cfg: cfg, log: cfg.Logger, wakeFD: -1, ctlFD: -1, nsFD: -1,
		quit: make(chan struct{}), kick: make(chan struct{}, 1), done: make(chan struct{})}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if b.cfg.Batch == 0 {
		b.cfg.Batch = defaultBatch
	}
	if b.cfg.Verdict == nil {
		b.cfg.Verdict = verdict.Shared(verdict.PassAll)
	}
	if b.cfg.TickInterval == 0 {
		b.cfg.TickInterval = defaultTick
	}
	b.cfg.CPUs = append([]int(nil), cfg.CPUs...)
	b.sides[verdict.AToB].cfg, b.sides[verdict.BToA].cfg = cfg.A, cfg.B
	b.ports[0].Name, b.ports[1].Name = cfg.A.Interface, cfg.B.Interface
	return b, nil
}

// Start validates the configuration, asks Config.Verdict for each worker's Handler, opens every
// socket (in the network namespace of the calling OS thread), joins each side's sockets to its
// fanout group one at a time in index order, and starts the workers and their supervisor. Frames
// are forwarded only once every member of both groups has joined.
//
// The Factory's New runs on the calling goroutine, once per worker, before any socket is opened
// and with no lock of the bridge held (see verdict.Factory). A New that panics or returns nil
// makes Start return a [*FactoryError]; the Handlers already made are retired and nothing is left
// open. Start returns [ErrStarted] if the bridge was started before, [ErrClosed] after Close, and
// errors from Validate as they are.
func (b *Bridge) Start() error {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return ErrClosed
	case b.started || b.starting:
		b.mu.Unlock()
		return ErrStarted
	}
	b.starting = true
	b.mu.Unlock()
	err := b.start()
	b.mu.Lock()
	b.starting = false
	b.mu.Unlock()
	return err
}

func (b *Bridge) start() error {
	if err := Validate(b.cfg); err != nil {
		return err
	}
	n := b.cfg.Workers()
	hs, err := b.newHandlers(n)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		b.retire(hs)
		return ErrClosed
	}
	if err := b.openControl(); err != nil {
		b.closeControl()
		b.retire(hs)
		return err
	}
	if err := b.openBypass(); err != nil {
		b.closeControl()
		b.retire(hs)
		return err
	}
	sides := [2]side{{cfg: b.cfg.A}, {cfg: b.cfg.B}}
	if err := b.openSides(&sides); err != nil {
		releaseSides(&sides)
		b.closeBypass()
		b.closeControl()
		b.retire(hs)
		return err
	}
	b.sockMu.Lock()
	b.sides = sides
	b.workers = make([]*worker, n)
	for i := range n {
		b.workers[i] = newWorker(b, i, hs[i])
		b.workers[i].attach()
	}
	b.sockMu.Unlock()
	for d := range b.sides {
		b.portMu.Lock()
		b.ports[d].Index = b.sides[d].ifi.Index
		b.portMu.Unlock()
		b.mtuSeen[d] = b.sides[d].ifi.MTU
		if st := b.probe(d); st.err == nil {
			b.initLink(d, st.up)
		}
	}
	b.started = true
	b.startWorkers()
	go b.supervise()
	b.log.Info("bridging", "a", b.cfg.A.Interface, "b", b.cfg.B.Interface, "workers", n,
		"a_mode", b.cfg.A.CopyMode, "b_mode", b.cfg.B.CopyMode)
	return nil
}

// newHandlers asks the Factory for every worker's Handler, on the calling goroutine, holding no
// lock; on failure it retires the Handlers already made.
func (b *Bridge) newHandlers(n int) ([]verdict.Handler, error) {
	hs := make([]verdict.Handler, 0, n)
	for i := range n {
		h, err := newHandler(b.cfg.Verdict, i)
		if err != nil {
			b.retire(hs)
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

func newHandler(f verdict.Factory, worker int) (h verdict.Handler, err error) {
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, &FactoryError{Worker: worker, Panic: r}
		}
	}()
	if h = f.New(worker); h == nil {
		return nil, &FactoryError{Worker: worker, Err: verdict.ErrNilHandler}
	}
	return h, nil
}

// retire closes handlers that implement verdict.Closer, logging their errors.
func (b *Bridge) retire(hs []verdict.Handler) {
	for i, h := range hs {
		if err := verdict.Retire(h); err != nil {
			b.log.Warn("verdict handler Close failed", "worker", i, "err", err)
		}
	}
}

// openControl opens what the bridge keeps for its whole life: the wake descriptor, a socket for
// interface ioctls and a handle on the network namespace, both in the calling OS thread's
// namespace.
func (b *Bridge) openControl() error {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("peer: eventfd: %w", os.NewSyscallError("eventfd", err))
	}
	b.wakeFD = fd
	// Interface ioctls work on any socket and answer from the socket's namespace; AF_UNIX needs
	// no privilege.
	if b.ctlFD, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		b.ctlFD = -1
		return fmt.Errorf("peer: control socket: %w", os.NewSyscallError("socket", err))
	}
	// Without the namespace handle a re-bind happens in whichever namespace the supervisor's
	// thread is in: the right one unless the caller switched namespaces to call Start.
	if b.nsFD, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		b.nsFD = -1
		b.log.Warn("cannot open the network namespace; re-binding will use the supervisor's", "err", err)
	}
	return b.loadBalancer()
}

func (b *Bridge) closeControl() {
	for _, fd := range []*int{&b.wakeFD, &b.ctlFD, &b.nsFD} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	b.closeBalancer()
}

// openSides opens, maps and joins every socket of both sides in the calling OS thread's network
// namespace; on failure the caller releases what was opened.
func (b *Bridge) openSides(sides *[2]side) error {
	vnet := !b.cfg.NoVnetHdr
	for d := range sides {
		s := &sides[d]
		ifi, err := afpacket.InterfaceByName(s.cfg.Interface)
		if err != nil {
			return err
		}
		s.ifi = ifi
	}
	mtu := sides[0].ifi.MTU
	for d := range sides {
		s := &sides[d]
		flags := fanout.Flags(0)
		if b.cfg.Defrag {
			flags |= fanout.FlagDefrag
		}
		if fanout.Supported(fanout.FlagIgnoreOutgoing) {
			flags |= fanout.FlagIgnoreOutgoing
		}
		s.group = fanout.Group{ID: s.cfg.ClusterID, Mode: b.cfg.ClusterType, Flags: flags}
		b.balance(&s.group)
		if s.group.ID == 0 {
			s.group.Flags |= fanout.FlagUniqueID
		}
		rc := ringConfig(s.cfg.Ring, mtu, vnet)
		buf := s.cfg.BufferSize
		if buf == 0 && rc.CopyLarge {
			buf = copyBuffer
		}
		// Sockets are created and joined strictly in index order: the kernel picks hash members
		// in join order, and after a link flap re-adds them in creation order, so both orders
		// must agree for worker i to keep owning the same flows on both sides.
		for i := range b.cfg.Workers() {
			c, err := afpacket.Listen(s.cfg.Interface, &afpacket.Config{
				Promiscuous: !s.cfg.DisablePromisc,
				VnetHdr:     vnet,
				QdiscBypass: s.cfg.QdiscBypass,
				RecvBuffer:  buf,
				SendBuffer:  s.cfg.BufferSize,
				Filter:      dropAll,
				NoPoller:    true, // workers wait in poll(2); see afpacket.Config.NoPoller
			})
			if err != nil {
				return err
			}
			s.conns = append(s.conns, c)
			m, err := ring.New(c, &rc)
			if err != nil {
				return fmt.Errorf("peer: %s socket %d: %w", s.cfg.Interface, i, err)
			}
			s.maps = append(s.maps, m)
			g, err := fanout.Join(c, s.group)
			if err != nil {
				return fmt.Errorf("peer: %s socket %d: %w", s.cfg.Interface, i, err)
			}
			if i == 0 {
				s.group = g // the kernel-chosen id, for the other members
				s.group.Flags &^= fanout.FlagUniqueID
			}
			s.fds = append(s.fds, rawFD(c))
			sc, err := afpacket.Listen(s.cfg.Interface, &afpacket.Config{
				SendOnly:    true,
				NoPoller:    true,
				VnetHdr:     vnet,
				QdiscBypass: s.cfg.QdiscBypass,
				SendBuffer:  s.cfg.BufferSize,
			})
			if err != nil {
				return err
			}
			s.send = append(s.send, sc)
			s.sendFDs = append(s.sendFDs, rawFD(sc))
		}
	}
	// Every member has joined: let frames in, through the bypass filters when the fast path runs.
	return b.attachBypass(sides)
}

// rawFD returns a socket's descriptor number; it stays valid until the socket is closed, which
// happens only after every worker has stopped.
func rawFD(c *afpacket.Conn) int {
	fd := -1
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(u uintptr) { fd = int(u) })
	}
	return fd
}

// releaseSides closes rings before their sockets. It keeps each side's configuration and
// interface.
func releaseSides(sides *[2]side) {
	for d := range sides {
		s := &sides[d]
		for _, m := range s.maps {
			m.Close()
		}
		for _, c := range s.conns {
			c.Close()
		}
		for _, c := range s.send {
			c.Close()
		}
		s.maps, s.conns, s.fds, s.send, s.sendFDs, s.filters = nil, nil, nil, nil, nil, nil
	}
}

// releaseLocked closes the bridge's sockets once the workers have stopped, keeping the kernel's
// counters, which die with the sockets, in the workers' bases. b.sockMu is held.
func (b *Bridge) releaseLocked() {
	for i, w := range b.workers {
		for d := range b.sides {
			if i < len(b.sides[d].conns) {
				if ks, err := b.sides[d].conns[i].Stats(); err == nil {
					w.kbase[d].Packets += ks.Packets
					w.kbase[d].Drops += ks.Drops
					w.kbase[d].Freezes += ks.Freezes
				}
			}
		}
	}
	releaseSides(&b.sides)
}

// Run starts the bridge unless it is running, and forwards until ctx is done or the bridge
// fails; then it closes the bridge. It returns nil after a clean stop, and the failure otherwise
// (for example ErrInterfaceRemoved with Config.ExitOnRemove).
func (b *Bridge) Run(ctx context.Context) error {
	b.mu.Lock()
	started := b.started
	b.mu.Unlock()
	if !started {
		if err := b.Start(); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
	case <-b.done:
	}
	cerr := b.Close()
	if err := b.fatal(); err != nil {
		return err
	}
	return cerr
}

// Close stops the supervisor and the workers (each flushes what it has already committed to its
// TX rings, and what it has counted as forwarded leaves), retires every worker's Handler (see
// verdict.Closer), then closes rings and sockets; frames still waiting in the RX rings are not
// forwarded. It is idempotent and safe from any goroutine; every call returns once the bridge is
// closed. A Start after Close returns [ErrClosed].
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		started := b.started
		b.mu.Unlock()
		if started {
			b.shutdown()
			<-b.done
			st := b.snapshot()
			b.mu.Lock()
			b.final = &st
			b.mu.Unlock()
			hs := make([]verdict.Handler, len(b.workers))
			for i, w := range b.workers {
				hs[i] = w.h
			}
			b.retire(hs)
			b.sockMu.Lock()
			b.releaseLocked()
			b.closeBypass()
			b.sockMu.Unlock()
		}
		b.closeControl()
		b.log.Info("stopped", "a", b.cfg.A.Interface, "b", b.cfg.B.Interface)
	})
	return nil
}

// shutdown tells the workers and the supervisor to stop.
func (b *Bridge) shutdown() {
	b.halt.Or(haltStop)
	b.quitOnce.Do(func() { close(b.quit) })
	b.wake()
}

func (b *Bridge) wake() {
	one := [8]byte{1}
	_, _ = unix.Write(b.wakeFD, one[:])
}

// drainWake resets the wake descriptor after a pause, so restarted workers sleep again.
func (b *Bridge) drainWake() {
	var buf [8]byte
	_, _ = unix.Read(b.wakeFD, buf[:])
}

// poke asks the supervisor to check the links now; it never blocks.
func (b *Bridge) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

func (b *Bridge) fail(err error) {
	b.errMu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.errMu.Unlock()
	b.shutdown()
}

func (b *Bridge) fatal() error {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	return b.err
}

// startWorkers starts every worker unless the bridge is stopping.
func (b *Bridge) startWorkers() {
	b.halt.And(^uint32(haltPause))
	if b.halt.Load() != 0 {
		return
	}
	b.wg.Add(len(b.workers))
	for _, w := range b.workers {
		go w.run()
	}
}

// pauseWorkers stops every worker and waits for them; each flushes its TX rings on the way out.
func (b *Bridge) pauseWorkers() {
	b.halt.Or(haltPause)
	b.wake()
	b.wg.Wait()
	b.drainWake()
	if b.halt.Load()&haltStop != 0 {
		b.wake() // a stop that raced the drain
	}
}

// Stats returns a snapshot of the bridge's counters: per worker and direction, and their sums,
// and the state of both ports. Kernel drop counters come from the ingress sockets. After Close
// it returns the counters as they were when the bridge closed. It takes locks only briefly and
// may be called from anywhere, a Factory's New included.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	if b.final != nil {
		st := *b.final
		st.Workers = append([][2]Counters(nil), b.final.Workers...)
		b.mu.Unlock()
		return st
	}
	b.mu.Unlock()
	return b.snapshot()
}

func (b *Bridge) snapshot() Stats {
	st := Stats{Time: time.Now()}
	b.sockMu.Lock()
	st.Workers = make([][2]Counters, b.cfg.Workers())
	for i, w := range b.workers {
		for d := range w.dirs {
			c := w.dirs[d].pub.load()
			ks := w.kbase[d]
			if i < len(b.sides[d].conns) {
				if now, err := b.sides[d].conns[i].Stats(); err == nil {
					ks.Packets += now.Packets
					ks.Drops += now.Drops
					ks.Freezes += now.Freezes
				}
			}
			c.KernelPackets, c.KernelDrops, c.Freezes = ks.Packets, ks.Drops, ks.Freezes
			st.Workers[i][d] = c
			st.Total[d].add(&c)
		}
	}
	bp := b.bp
	b.sockMu.Unlock()
	if bp != nil {
		if bs, err := bp.Stats(); err == nil {
			st.BypassActive, st.Bypass = true, bs
		}
	}
	b.portMu.Lock()
	st.A, st.B = b.ports[0], b.ports[1]
	b.portMu.Unlock()
	return st
}

// Interfaces returns the two interfaces as the bridge last bound them.
func (b *Bridge) Interfaces() (a, bi afpacket.Interface) {
	b.sockMu.Lock()
	defer b.sockMu.Unlock()
	return b.sides[0].ifi, b.sides[1].ifi
}
