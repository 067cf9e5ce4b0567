package verdict

import "sync/atomic"

// Switch is a Factory whose Factory can be replaced while a bridge runs, for example to load new
// rules. Each worker's Handler notices the change at its next frame and asks the new Factory for
// its replacement there, so no frame goes without a verdict and none is lost; the check costs one
// atomic load per frame and no lock.
type Switch struct {
	cur atomic.Pointer[generation]
}

type generation struct{ f Factory }

// NewSwitch returns a Switch that starts with f.
func NewSwitch(f Factory) *Switch {
	s := &Switch{}
	s.Set(f)
	return s
}

// Set replaces the Factory. Workers switch over at their next frame; a nil f means PassAll.
func (s *Switch) Set(f Factory) {
	if f == nil {
		f = Shared(PassAll)
	}
	s.cur.Store(&generation{f: f})
}

// New returns worker's Handler, which follows the Switch.
func (s *Switch) New(worker int) Handler {
	g := s.cur.Load()
	return &switched{s: s, worker: worker, gen: g, h: g.f.New(worker)}
}

type switched struct {
	s      *Switch
	worker int
	gen    *generation
	h      Handler
}

func (w *switched) Handle(p *Packet) Verdict {
	if g := w.s.cur.Load(); g != w.gen {
		w.gen, w.h = g, g.f.New(w.worker)
	}
	return w.h.Handle(p)
}
