//go:build linux

package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/ring"
	"github.com/afbridge/afbridge/verdict"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// defaultTXFrames is the number of TX slots per socket when the side's ring config names none:
// several batches, so a flush in flight never stalls the next batch.
const defaultTXFrames = 512

// dropAll is attached to every socket until the whole fanout group has joined: a socket that is
// bound but not yet a member would otherwise receive every frame on its own, and the bridge would
// forward those twice.
var dropAll = []bpf.Instruction{bpf.RetConstant{Val: 0}}

// Bridge is an inline bridge between two interfaces. Start it, let it run, Close it. Its methods
// are safe for concurrent use.
type Bridge struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex // serialises Start and Close
	started bool
	closed  bool
	stop    atomic.Bool
	wakeFD  int
	sides   [2]side
	workers []*worker
	wg      sync.WaitGroup
	done    chan struct{} // closed when every worker has stopped
	errOnce sync.Once
	err     error  // first fatal worker error
	final   *Stats // the counters at Close
}

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
}

// New returns an unstarted bridge for cfg; nothing is opened until Start.
func New(cfg Config) (*Bridge, error) {
	b := &Bridge{cfg: cfg, log: cfg.Logger, wakeFD: -1, done: make(chan struct{})}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if b.cfg.Batch == 0 {
		b.cfg.Batch = defaultBatch
	}
	if b.cfg.Verdict == nil {
		b.cfg.Verdict = verdict.Shared(verdict.PassAll)
	}
	b.sides[verdict.AToB].cfg, b.sides[verdict.BToA].cfg = cfg.A, cfg.B
	return b, nil
}

// Start validates the configuration, opens every socket (in the calling goroutine's network
// namespace), joins each side's sockets to its fanout group one at a time in index order, and
// starts the workers. Frames are forwarded only once every member of both groups has joined.
func (b *Bridge) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("peer: Start after Close")
	}
	if b.started {
		return errors.New("peer: already started")
	}
	if err := Validate(b.cfg); err != nil {
		return err
	}
	if err := b.open(); err != nil {
		b.release()
		return err
	}
	b.started = true
	n := b.cfg.A.threads()
	b.workers = make([]*worker, n)
	for i := range n {
		b.workers[i] = newWorker(b, i)
	}
	b.wg.Add(n)
	for _, w := range b.workers {
		go w.run()
	}
	go func() { b.wg.Wait(); close(b.done) }()
	b.log.Info("bridging", "a", b.cfg.A.Interface, "b", b.cfg.B.Interface, "workers", n,
		"a_mode", b.cfg.A.CopyMode, "b_mode", b.cfg.B.CopyMode)
	return nil
}

func (b *Bridge) open() error {
	vnet := !b.cfg.NoVnetHdr
	for d := range b.sides {
		s := &b.sides[d]
		ifi, err := afpacket.InterfaceByName(s.cfg.Interface)
		if err != nil {
			return err
		}
		s.ifi = ifi
	}
	mtu := b.sides[0].ifi.MTU
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("peer: eventfd: %w", err)
	}
	b.wakeFD = fd

	for d := range b.sides {
		s := &b.sides[d]
		flags := fanout.Flags(0)
		if s.cfg.Defrag {
			flags |= fanout.FlagDefrag
		}
		if fanout.Supported(fanout.FlagIgnoreOutgoing) {
			flags |= fanout.FlagIgnoreOutgoing
		}
		s.group = fanout.Group{ID: s.cfg.ClusterID, Mode: s.cfg.ClusterType, Flags: flags}
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
		for i := range s.cfg.threads() {
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
	// Every member has joined: let frames in.
	for d := range b.sides {
		s := &b.sides[d]
		for _, c := range s.conns {
			if err := c.SetBPF(s.cfg.Filter); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyBuffer is the receive buffer of sockets whose rings copy large frames to the socket: room
// for dozens of 64 KiB GSO super-frames waiting for the worker.
const copyBuffer = 8 << 20

// ringConfig completes a side's ring configuration. By default the RX ring is TPACKET_V2 with
// MTU-sized slots and CopyLarge, and the TX ring has MTU-sized slots: frames larger than a slot
// (GSO super-frames, reassembled datagrams) take the socket path, one syscall each, and every
// small frame gets a slot without the 64 KiB slots that would otherwise be needed for them.
func ringConfig(rc ring.Config, mtu int, vnet bool) ring.Config {
	rc.MTU, rc.VnetHdr = mtu, vnet
	if rc.Version != ring.V3 && rc.FrameSize == 0 {
		rc.CopyLarge = true
	}
	if rc.TXFrameCount == 0 {
		rc.TXFrameCount = defaultTXFrames
	}
	if rc.TXFrameSize == 0 {
		rc.TXFrameSize = (32 + vnetHdrLen + mtu + ethHdrLen + 2*vlanLen + 15) &^ 15
	}
	return rc
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

// release closes rings before their sockets, then the wake descriptor.
func (b *Bridge) release() {
	for d := range b.sides {
		s := &b.sides[d]
		for _, m := range s.maps {
			m.Close()
		}
		for _, c := range s.conns {
			c.Close()
		}
		for _, c := range s.send {
			c.Close()
		}
		s.maps, s.conns, s.fds, s.send, s.sendFDs = nil, nil, nil, nil, nil
	}
	if b.wakeFD >= 0 {
		unix.Close(b.wakeFD)
		b.wakeFD = -1
	}
}

// Run starts the bridge unless it is running, and forwards until ctx is done or a worker fails;
// then it closes the bridge. It returns nil after a clean stop.
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
	if b.err != nil {
		return b.err
	}
	return cerr
}

// Close stops the workers (each flushes what it has already committed to its TX rings), then
// closes rings and sockets. It is idempotent and safe from any goroutine.
func (b *Bridge) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.started {
		b.stop.Store(true)
		b.wake()
		<-b.done
		// The sockets' kernel counters die with them: keep the final figures.
		st := b.statsLocked()
		b.final = &st
	}
	b.release()
	b.log.Info("stopped", "a", b.cfg.A.Interface, "b", b.cfg.B.Interface)
	return nil
}

func (b *Bridge) wake() {
	one := [8]byte{1}
	_, _ = unix.Write(b.wakeFD, one[:])
}

func (b *Bridge) fail(err error) {
	b.errOnce.Do(func() { b.err = err })
	b.stop.Store(true)
	b.wake()
}

// Stats returns the bridge's counters: per worker and direction, and their sums. Kernel drop
// counters come from the ingress sockets.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.final != nil {
		st := *b.final
		st.Workers = append([][2]Counters(nil), b.final.Workers...)
		return st
	}
	return b.statsLocked()
}

func (b *Bridge) statsLocked() Stats {
	var st Stats
	st.Workers = make([][2]Counters, len(b.workers))
	for i, w := range b.workers {
		for d := range w.dirs {
			c := w.dirs[d].pub.load()
			if i < len(b.sides[d].conns) {
				if ks, err := b.sides[d].conns[i].Stats(); err == nil {
					c.KernelPackets, c.KernelDrops, c.Freezes = ks.Packets, ks.Drops, ks.Freezes
				}
			}
			st.Workers[i][d] = c
			st.Total[d].add(&c)
		}
	}
	return st
}

// Interfaces returns the two interfaces as the bridge found them at Start.
func (b *Bridge) Interfaces() (a, bi afpacket.Interface) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sides[0].ifi, b.sides[1].ifi
}
