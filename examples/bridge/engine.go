//go:build linux

package main

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/afbridge/afbridge/examples/bridge/eve"
	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
)

// engine holds what every bridge of the process shares: the EVE writer and the counters of
// alerts and rejects.
type engine struct {
	eve *eve.Writer // nil without -eve

	alerts         atomic.Uint64 // alert events raised (logged or not)
	rejects        atomic.Uint64 // reject frames sent
	rejected       atomic.Uint64 // frames dropped by a reject rule in ips mode
	rejectErrs     atomic.Uint64 // reject frames the kernel refused
	rejectsFull    atomic.Uint64 // reject frames dropped because the port's queue was full
	rejectsLimited atomic.Uint64 // reject frames not sent because of the rate limit
	rejectRebinds  atomic.Uint64 // reject sockets re-opened on a re-created interface
	rejectErr      atomic.Pointer[error]
	inspect        inspectStats
}

// bridge is one peer.Bridge with the state the binary keeps around it.
type bridge struct {
	eng    *engine
	cfg    peer.Config
	where  string // "FILE:LINE,LINE: " for a bridge from -c, else ""
	br     *peer.Bridge
	sw     *verdict.Switch
	ifname [2]string        // side A, side B
	mode   [2]peer.CopyMode // by verdict.Direction: the ingress side's copy mode
	inject [2]frameSender   // side A, side B: the reject sockets
	// injectErr is the last error re-opening a reject socket, reported once; main loop only.
	injectErr string
	started   time.Time
	// bypassAfter is -bypass-after: a flow that has passed this many bytes is bypassed;
	// negative: off.
	bypassAfter int64
	// ins holds each worker's inspector, kept across rule reloads so that flows (and flow
	// drops) survive them. Factories fill it (one call at a time); worker i alone uses slot i's.
	ins []*inspector
}

// newBridge prepares a bridge for cfg with set as its first rules (nil for none). Nothing is
// opened until start.
func newBridge(eng *engine, cfg peer.Config, where string, set *rules.Set) *bridge {
	b := &bridge{
		eng:         eng,
		bypassAfter: -1,
		where:       where,
		ifname:      [2]string{cfg.A.Interface, cfg.B.Interface},
		mode:        [2]peer.CopyMode{cfg.A.CopyMode, cfg.B.CopyMode},
		ins:         make([]*inspector, max(1, cfg.Threads)),
	}
	b.sw = verdict.NewSwitch(b.rulesFactory(set))
	cfg.Verdict = b.sw // bytes are counted by peer (Counters.Bytes)
	b.cfg = cfg
	return b
}

// name is "A <-> B".
func (b *bridge) name() string { return b.ifname[0] + " <-> " + b.ifname[1] }

// dirName is "A->B" or "B->A".
func (b *bridge) dirName(d verdict.Direction) string {
	return b.ifname[d] + "->" + b.ifname[1-d]
}

// modeText is "ips", or both modes with their directions when they differ.
func (b *bridge) modeText() string {
	if b.mode[0] == b.mode[1] {
		return b.mode[0].String()
	}
	return fmt.Sprintf("%s %s, %s %s", b.mode[0], b.dirName(verdict.AToB), b.mode[1], b.dirName(verdict.BToA))
}

// banner is the line printed once the bridge forwards. Its form is fixed, "N workers" even for
// one, because scripts match it.
func (b *bridge) banner() string {
	return fmt.Sprintf("bridging %s (%s, %d workers)", b.name(), b.modeText(), b.cfg.Workers())
}

// setRules swaps the rules in force; each worker picks them up at its next frame.
// setRules swaps set in on every worker. Set fails only when a factory panics or returns nil,
// which rulesFactory never does; the old rules then stay in force and the error says why.
func (b *bridge) setRules(set *rules.Set) error { return b.sw.Set(b.rulesFactory(set)) }

func (b *bridge) rulesFactory(set *rules.Set) verdict.Factory {
	if set == nil || set.Len() == 0 {
		if b.bypassAfter < 0 {
			return verdict.Shared(verdict.PassAll)
		}
		set = noRules // -bypass-after needs the flows tracked
	}
	return verdict.FactoryFunc(func(worker int) verdict.Handler {
		return &ruleHandler{b: b, set: set, res: set.NewResult(), buf: make([]byte, rules.MaxRejectLen),
			tx: newRejectTx(), limit: newLimiter(rejectRate, rejectBurst),
			ins: b.inspector(worker, set.LongestContent()-1)}
	})
}

// inspector returns worker's inspector, made anew when there is none yet or the rules need more
// stream context than it keeps (its flows are then forgotten). Nil if it cannot be made: the
// worker then matches frame by frame.
func (b *bridge) inspector(worker, tail int) *inspector {
	if worker < 0 || worker >= len(b.ins) {
		in, _ := newInspector(tail, &b.eng.inspect)
		return in
	}
	if in := b.ins[worker]; in != nil && in.tail >= tail {
		return in
	}
	in, err := newInspector(tail, &b.eng.inspect)
	if err != nil {
		return nil
	}
	b.ins[worker] = in
	return in
}

// start opens the reject sockets and starts forwarding, in the calling goroutine's network
// namespace. On failure everything it opened is closed again.
func (b *bridge) start() error {
	for side, name := range b.ifname {
		c, err := openInjector(name)
		if err != nil {
			b.closeInject()
			return err
		}
		b.inject[side] = c
	}
	br, err := peer.New(b.cfg)
	if err == nil {
		err = br.Start()
	}
	if err != nil {
		b.closeInject()
		return err
	}
	b.br, b.started = br, time.Now()
	return nil
}

// refreshInject re-opens the reject socket of a side whose interface was re-created, so that
// rejects keep working after peer.Bridge re-binds; the main loop calls it every second.
func (b *bridge) refreshInject() error {
	var errs []error
	for _, s := range b.inject {
		in, ok := s.(*injector)
		if !ok {
			continue
		}
		did, err := in.refresh()
		if did {
			b.eng.rejectRebinds.Add(1)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeInject closes the reject sockets; call it once no worker runs.
func (b *bridge) closeInject() {
	for i, c := range b.inject {
		if c != nil {
			c.Close()
			b.inject[i] = nil
		}
	}
}

// ruleHandler is one worker's matcher: it owns its Result and reject buffer, so matching a frame
// that no rule concerns allocates nothing and takes no lock.
type ruleHandler struct {
	b     *bridge
	set   *rules.Set
	res   *rules.Result
	buf   []byte
	tx    *rejectTx
	limit limiter
	ins   *inspector // nil: match frame by frame
}

// Tick expires the worker's idle flows and fragments (verdict.Ticker).
func (h *ruleHandler) Tick(now time.Time) {
	if h.ins != nil {
		h.ins.tick(now)
	}
}

func (h *ruleHandler) Handle(p *verdict.Packet) verdict.Verdict {
	act, drop := rules.NoMatch, false
	if h.ins != nil {
		act, drop = h.ins.inspect(p, h.set, h.res)
		if h.ins.why != nil {
			h.anomaly(p, h.ins.why, &h.ins.whyPkt)
		}
	} else {
		act = h.set.Match(p.Data, h.res)
	}
	switch act {
	case rules.Alert:
		h.alert(p)
		if drop {
			return verdict.Drop
		}
		return verdict.Pass
	case rules.Drop:
		h.alert(p)
		return verdict.Drop
	case rules.Reject:
		h.alert(p)
		if h.b.mode[p.Dir] == peer.IPS {
			h.b.eng.rejected.Add(1)
			h.reject(p)
		}
		return verdict.Drop
	}
	if drop {
		return verdict.Drop // a dropped flow, or an evasion attempt
	}
	// NoMatch, or a pass rule: maybe the flow is done with.
	rule := act == rules.Pass && h.res.Rule != nil && h.res.Rule.Bypass
	if h.ins == nil {
		if rule {
			return verdict.Bypass
		}
		return verdict.Pass
	}
	if h.ins.bypass(p.Len, rule, h.b.bypassAfter) {
		return verdict.Bypass
	}
	return verdict.Pass
}

// noRules is the empty rule set, for a bridge that bypasses without rules.
var noRules = func() *rules.Set {
	s, err := rules.Parse(strings.NewReader(""), "none")
	if err != nil {
		panic(err)
	}
	return s
}()

// alert counts the frame's alerts and queues their EVE events. A blocking rule logs "blocked"
// only where the frame really is dropped: in tap mode it went on, so it logs "allowed".
func (h *ruleHandler) alert(p *verdict.Packet) {
	eng := h.b.eng
	eng.alerts.Add(uint64(len(h.res.Alerts) + h.res.Overflow))
	if eng.eve == nil {
		return
	}
	ips := h.b.mode[p.Dir] == peer.IPS
	for _, r := range h.res.Alerts {
		action := eve.Allowed
		if ips && r.Action.Blocks() {
			action = eve.Blocked
		}
		eng.eve.Write(event(p, &h.res.Packet, r, action))
	}
}

// anomaly counts and logs the built-in signature sig that names an inspection drop of the
// frame d (decoded).
func (h *ruleHandler) anomaly(p *verdict.Packet, sig *rules.Rule, d *rules.Packet) {
	eng := h.b.eng
	eng.alerts.Add(1)
	if eng.eve == nil {
		return
	}
	action := eve.Allowed
	if h.b.mode[p.Dir] == peer.IPS {
		action = eve.Blocked
	}
	eng.eve.Write(event(p, d, sig, action))
}

// event builds the EVE record of rule r matching the decoded frame d.
func event(p *verdict.Packet, d *rules.Packet, r *rules.Rule, action string) eve.Event {
	ts := p.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	ev := eve.Event{
		Timestamp: eve.Time(ts),
		InIface:   p.In.Name,
		EventType: "alert",
		SrcIP:     d.SrcIP.String(),
		DestIP:    d.DstIP.String(),
		Proto:     d.ProtoName,
		Alert: &eve.Alert{
			Action:      action,
			GID:         1,
			SignatureID: r.SID,
			Rev:         r.Rev,
			Signature:   r.Msg,
			Severity:    3, // Suricata's default without a classtype
		},
	}
	switch {
	case d.HasPorts():
		sp, dp := d.SrcPort, d.DstPort
		ev.SrcPort, ev.DestPort = &sp, &dp
	case d.HasL4 && (d.Proto == 1 || d.Proto == 58): // ICMP, ICMPv6
		t, c := d.ICMPType, d.ICMPCode
		ev.ICMPType, ev.ICMPCode = &t, &c
	}
	return ev
}

// reject tells both ends: the frame towards the sender leaves through the port the offending
// frame came in on, the one towards its destination through the port it was going out of. The
// bridge ignores frames the host sends out of its ports, so neither is bridged back.
//
// The sender's addresses may be spoofed, so rejects are rate-limited per worker (rejectRate,
// rejectBurst) and sent with MSG_DONTWAIT: a full socket or queue drops the reject and counts
// it, and the worker goes on forwarding.
func (h *ruleHandler) reject(p *verdict.Packet) {
	eng := h.b.eng
	var now int64
	for _, to := range [...]rules.Direction{rules.ToSource, rules.ToDestination} {
		n, err := rules.BuildReject(p.Data, to, h.buf)
		if err != nil || n == 0 {
			continue // not TCP or UDP, a RST, multicast...: the drop alone
		}
		if now == 0 {
			now = monoNow()
		}
		if !h.limit.allow(now) {
			eng.rejectsLimited.Add(1)
			continue
		}
		side := p.Dir // the ingress side, where the sender is
		if to == rules.ToDestination {
			side = 1 - p.Dir
		}
		switch err := h.b.inject[side].send(h.tx, h.buf[:n]); {
		case err == nil:
			eng.rejects.Add(1)
		case errors.Is(err, errFull):
			eng.rejectsFull.Add(1)
		default:
			eng.rejectErrs.Add(1)
			eng.rejectErr.Store(&err)
		}
	}
}

// lastRejectErr returns the last error sending a reject frame, or nil.
func (e *engine) lastRejectErr() error {
	if p := e.rejectErr.Load(); p != nil {
		return *p
	}
	return nil
}
