//go:build linux

package peer

import (
	"errors"
	"fmt"
	"time"

	"github.com/afbridge/afbridge/bypass"
	"github.com/afbridge/afbridge/flow"
)

// openBypass opens the fast path's maps and programs for Config.Bypass, with the socket filter
// of every worker on both sides: built once, and attached again to the new sockets of a re-bind,
// which then loads no program. When the kernel refuses and Require is not set, it logs why once
// and leaves the bridge without a fast path.
func (b *Bridge) openBypass() error {
	bc := b.cfg.Bypass
	if !bc.Enable {
		return nil
	}
	p, err := bypass.Open(&bypass.Config{Members: b.cfg.Workers(), MaxFlows: bc.MaxFlows, IdleTimeout: bc.IdleTimeout,
		HandoverLimit: bc.HandoverLimit})
	if err != nil {
		return b.bypassUnavailable(err)
	}
	b.bp = p
	for d, s := range [2]Side{b.cfg.A, b.cfg.B} {
		for i := range b.cfg.Workers() {
			f, err := p.Filter(bypass.Side(d), i, s.Filter)
			if err != nil {
				return b.bypassUnavailable(err)
			}
			b.bpFilters[d] = append(b.bpFilters[d], f)
		}
	}
	return nil
}

// bypassUnavailable decides what a fast path the kernel refused means: an error with Require (or
// for a failure that is not the kernel's refusal), otherwise a warning, once, and Bypass meaning
// Pass from now on. Either way it releases what was opened.
func (b *Bridge) bypassUnavailable(err error) error {
	b.closeBypass()
	if b.cfg.Bypass.Require || !errors.Is(err, bypass.ErrUnavailable) {
		return fmt.Errorf("peer: bypass: %w", err)
	}
	b.log.Warn("kernel fast path unavailable: Bypass verdicts forward as Pass", "err", err)
	return nil
}

// closeBypass detaches and releases the fast path. Sockets keep their filters until they close.
func (b *Bridge) closeBypass() {
	for d := range b.bpFilters {
		for _, f := range b.bpFilters[d] {
			f.Close()
		}
		b.bpFilters[d] = nil
	}
	if b.bp != nil {
		b.bp.Close()
		b.bp = nil
	}
}

// attachBypass attaches the tc programs to both ports and gives every socket its bypass socket
// filter, which carries the side's own cBPF filter; it replaces the drop-all filter the sockets
// were opened with. Without a fast path it sets the side's filter alone.
func (b *Bridge) attachBypass(sides *[2]side) error {
	if b.bp != nil {
		if err := b.bp.Attach(sides[0].ifi.Index, sides[1].ifi.Index); err != nil {
			if err := b.bypassUnavailable(err); err != nil {
				return err
			}
		}
	}
	for d := range sides {
		s := &sides[d]
		for i, c := range s.conns {
			if b.bp == nil {
				if err := c.SetBPF(s.cfg.Filter); err != nil {
					return err
				}
				continue
			}
			if err := b.bpFilters[d][i].Attach(c); err != nil {
				return fmt.Errorf("peer: %s socket %d: %w", s.cfg.Interface, i, err)
			}
		}
		if b.bp != nil {
			s.filters = b.bpFilters[d]
		}
	}
	return nil
}

// bypassFlow hands the flow of a frame the verdict bypassed to the fast path. data is the frame
// as the verdict saw it. Frames that are not bypass-eligible (fragments, non-IP) stay with the
// bridge. A flow already in the map is left as it is (one map update that fails with EEXIST).
//
// While a flow waits for its handover every frame of it still reaches the verdict, which says
// Bypass again; under a flood that was one bpf(2) map update per frame, and the bridge fell to a
// fifth of its plain rate (bench harness, -bypass-after 0, 64-byte UDP). So a flow this worker
// added within addedTTL is not added again: a flow that came back meanwhile (expired, withdrawn)
// is re-added at most addedTTL later, and its frames are forwarded by the bridge until then.
func (w *worker) bypassFlow(data []byte) {
	if w.b.bp == nil {
		return
	}
	_ = flow.Parse(data, &w.fp) // an error still leaves the key and the decision set
	if !w.fp.Bypassable() {
		return
	}
	now := time.Now().UnixNano()
	if w.added.recent(w.fp.Key, now) {
		return
	}
	_ = w.b.bp.Add(w.fp.Key) // a refusal is counted in bypass.Stats.AddErrors
}

// addedTTL is how long a worker remembers a flow it added to the fast path.
const addedTTL = int64(100 * time.Millisecond)

// addedSets and addedWays shape addedCache: 2,048 flows in 96 KiB per worker. Four ways per set
// keep a few hundred flows from evicting each other, and the hash is seeded per worker, so
// flows crafted to share a set cannot make every frame of theirs cost a map update.
const (
	addedSets = 512
	addedWays = 4
)

// addedCache is a set-associative set of the flows a worker added lately: bounded, no
// allocation. A full set forgets its oldest entry.
type addedCache struct {
	seed uint64
	sets [addedSets][addedWays]struct {
		key flow.Key
		at  int64 // when it was added, Unix ns; 0: empty
	}
}

// recent reports whether k was added within addedTTL before now, and records it as added now
// when it was not.
func (c *addedCache) recent(k flow.Key, now int64) bool {
	set := &c.sets[k.HashSeed(c.seed)%addedSets]
	old := 0
	for i := range set {
		e := &set[i]
		if e.at != 0 && e.key == k {
			if now-e.at < addedTTL {
				return true
			}
			e.at = now
			return false
		}
		if e.at < set[old].at {
			old = i
		}
	}
	set[old].key, set[old].at = k, now
	return false
}

// observe looks for a handover point of the flows handing over on this direction's ingress
// socket, after the worker took a batch and before it sends the rest of it (see
// bypass.Filter.Observe): one getsockopt per batch, only while a flow waits. It reports whether
// settle must follow the send.
func (w *worker) observe(d *direction) bool {
	if d.bf == nil || !d.bf.Wants() {
		return false
	}
	if st, err := d.conn.Stats(); err == nil {
		d.bf.Observe(st.Packets, st.Drops)
	}
	return true
}

// settle publishes the handover point observe found once the worker has flushed every frame it
// took (see bypass.Filter.Settle).
func (w *worker) settle(d *direction) {
	if d.tx.Pending() == 0 {
		d.bf.Settle(d.taken)
	}
}

// Withdraw takes one flow off the kernel fast path: its next frame, either way, is judged by the
// verdict again. It reports whether the flow was bypassed; without a fast path it does nothing.
func (b *Bridge) Withdraw(k flow.Key) (bool, error) {
	if p := b.fastPath(); p != nil {
		return p.Withdraw(k)
	}
	return false, nil
}

// WithdrawAll takes every flow off the kernel fast path, as after a rule reload that may drop
// flows bypassed before, and returns how many there were.
func (b *Bridge) WithdrawAll() (int, error) {
	if p := b.fastPath(); p != nil {
		return p.WithdrawAll()
	}
	return 0, nil
}

func (b *Bridge) fastPath() *bypass.Path {
	b.sockMu.Lock()
	defer b.sockMu.Unlock()
	return b.bp
}
