package verdict

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Switch is a Factory whose Factory can be replaced while a bridge runs, for example to load new
// rules, without stopping the bridge and without a lock on the hot path.
//
// [Switch.Set] builds the new Handlers eagerly: it calls the new Factory's New once for every
// worker the Switch serves, on Set's own goroutine, one call at a time, and hands each Handler to
// its worker. Each worker installs its new Handler at its next frame or its next Tick, whichever
// comes first, on its own goroutine, and then retires the old one there (see [Retire]): a
// Handler's Handle, Tick and Close all run on its worker's goroutine, and an idle worker lets go
// of its old state within one tick interval. No frame goes without a verdict; the check costs one
// atomic load per frame.
//
// A Switch may serve several bridges, or a bridge several times over its restarts: it keeps track
// of the Handlers it made, not of worker numbers. The zero Switch is not usable; call [NewSwitch].
type Switch struct {
	// mu serialises every call of a held Factory's New, and guards f and live.
	mu   sync.Mutex
	f    Factory
	live []*switched
}

// NewSwitch returns a Switch that starts with f; a nil f means Shared(PassAll).
func NewSwitch(f Factory) *Switch {
	if f == nil {
		f = Shared(PassAll)
	}
	return &Switch{f: f}
}

// Set replaces the Factory (a nil f means Shared(PassAll)) and returns once every worker has its
// new Handler waiting. f.New must not call the Switch's methods. If f.New panics or returns nil
// for some worker, Set changes nothing, retires the Handlers it made, and returns an error.
func (s *Switch) Set(f Factory) error {
	if f == nil {
		f = Shared(PassAll)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	made := make([]Handler, len(s.live))
	for i, w := range s.live {
		h, err := newHandler(f, w.worker)
		if err != nil {
			for _, h := range made[:i] {
				_ = Retire(h)
			}
			return err
		}
		made[i] = h
	}
	s.f = f
	for i, w := range s.live {
		if old := w.next.Swap(&pending{h: made[i]}); old != nil {
			_ = Retire(old.h) // never installed: its worker was idle through two Sets
		}
	}
	return nil
}

// New returns worker's Handler, which follows the Switch. It panics, as a Factory may, if the
// current Factory's New panics or returns nil; a bridge turns that into an error from Start.
func (s *Switch) New(worker int) Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := newHandler(s.f, worker)
	if err != nil {
		panic(err)
	}
	w := &switched{s: s, worker: worker, h: h}
	w.ticker, _ = h.(Ticker)
	s.live = append(s.live, w)
	return w
}

// ErrNilHandler is the error, wrapped, of a Factory whose New returned nil.
var ErrNilHandler = errors.New("verdict: Factory.New returned a nil Handler")

// newHandler calls f.New(worker), turning a panic or a nil Handler into an error.
func newHandler(f Factory, worker int) (h Handler, err error) {
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, fmt.Errorf("verdict: Factory.New(%d) panicked: %v", worker, r)
		}
	}()
	if h = f.New(worker); h == nil {
		return nil, fmt.Errorf("%w (worker %d)", ErrNilHandler, worker)
	}
	return h, nil
}

type pending struct{ h Handler }

// switched is one worker's Handler of a Switch. h and ticker belong to the worker's goroutine;
// next is the hand-over from Set.
type switched struct {
	s      *Switch
	worker int
	next   atomic.Pointer[pending]
	h      Handler
	ticker Ticker
}

func (w *switched) Handle(p *Packet) Verdict {
	if w.next.Load() != nil {
		w.install()
	}
	return w.h.Handle(p)
}

// Tick installs a waiting Handler, then passes the tick on to the current one.
func (w *switched) Tick(now time.Time) {
	if w.next.Load() != nil {
		w.install()
	}
	if w.ticker != nil {
		w.ticker.Tick(now)
	}
}

func (w *switched) install() {
	p := w.next.Swap(nil)
	if p == nil {
		return
	}
	old := w.h
	w.h = p.h
	w.ticker, _ = p.h.(Ticker)
	_ = Retire(old)
}

// Close retires the current Handler and any waiting one, and stops following the Switch.
func (w *switched) Close() error {
	w.s.mu.Lock()
	w.s.live = slices.DeleteFunc(w.s.live, func(x *switched) bool { return x == w })
	w.s.mu.Unlock()
	var errs []error
	if p := w.next.Swap(nil); p != nil {
		errs = append(errs, Retire(p.h))
	}
	errs = append(errs, Retire(w.h))
	return errors.Join(errs...)
}
