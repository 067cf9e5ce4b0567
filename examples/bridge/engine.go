//go:build linux

package main

import (
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/examples/bridge/eve"
	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
)

// engine holds what every bridge of the process shares: the EVE writer and the counters of
// alerts and rejects.
type engine struct {
	eve *eve.Writer // nil without -eve

	alerts     atomic.Uint64 // alert events raised (logged or not)
	rejects    atomic.Uint64 // reject frames sent
	rejected   atomic.Uint64 // frames dropped by a reject rule in ips mode
	rejectErrs atomic.Uint64 // reject frames the kernel refused
	rejectErr  atomic.Pointer[error]
}

// bridge is one peer.Bridge with the state the binary keeps around it.
type bridge struct {
	eng     *engine
	cfg     peer.Config
	where   string // "FILE:LINE,LINE: " for a bridge from -c, else ""
	br      *peer.Bridge
	sw      *verdict.Switch
	ifname  [2]string        // side A, side B
	mode    [2]peer.CopyMode // by verdict.Direction: the ingress side's copy mode
	inject  [2]frameWriter   // side A, side B: the reject sockets
	started time.Time
}

// frameWriter sends one Ethernet frame out of its interface: an *afpacket.Conn.
type frameWriter interface {
	WriteTo(b []byte, addr net.Addr) (int, error)
	Close() error
}

// newBridge prepares a bridge for cfg with set as its first rules (nil for none). Nothing is
// opened until start.
func newBridge(eng *engine, cfg peer.Config, where string, set *rules.Set) *bridge {
	b := &bridge{
		eng:    eng,
		where:  where,
		ifname: [2]string{cfg.A.Interface, cfg.B.Interface},
		mode:   [2]peer.CopyMode{cfg.A.CopyMode, cfg.B.CopyMode},
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
	return fmt.Sprintf("bridging %s (%s, %d workers)", b.name(), b.modeText(), max(1, b.cfg.Threads))
}

// setRules swaps the rules in force; each worker picks them up at its next frame.
func (b *bridge) setRules(set *rules.Set) { b.sw.Set(b.rulesFactory(set)) }

func (b *bridge) rulesFactory(set *rules.Set) verdict.Factory {
	if set == nil || set.Len() == 0 {
		return verdict.Shared(verdict.PassAll)
	}
	return verdict.FactoryFunc(func(int) verdict.Handler {
		return &ruleHandler{b: b, set: set, res: set.NewResult(), buf: make([]byte, rules.MaxRejectLen)}
	})
}

// start opens the reject sockets and starts forwarding, in the calling goroutine's network
// namespace. On failure everything it opened is closed again.
func (b *bridge) start() error {
	for side, name := range b.ifname {
		// Send-only: a socket bound to a protocol would receive a clone of every frame the
		// bridge forwards (dev_queue_xmit_nit), only for its filter to drop it; the profile
		// showed that at 4% of the bridge's CPU.
		c, err := afpacket.Listen(name, &afpacket.Config{SendOnly: true})
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
	b   *bridge
	set *rules.Set
	res *rules.Result
	buf []byte
}

func (h *ruleHandler) Handle(p *verdict.Packet) verdict.Verdict {
	switch h.set.Match(p.Data, h.res) {
	case rules.Alert:
		h.alert(p)
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
	return verdict.Pass // NoMatch, or a pass rule
}

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
// bridge ignores frames the host sends out of its ports, so neither is bridged back. A send on a
// packet socket does not wait for the wire (a full queue drops, it does not block), so the
// worker is held up for one syscall only.
func (h *ruleHandler) reject(p *verdict.Packet) {
	for _, to := range [...]rules.Direction{rules.ToSource, rules.ToDestination} {
		n, err := rules.BuildReject(p.Data, to, h.buf)
		if err != nil || n == 0 {
			continue // not TCP or UDP, a RST, multicast...: the drop alone
		}
		side := p.Dir // the ingress side, where the sender is
		if to == rules.ToDestination {
			side = 1 - p.Dir
		}
		if _, err := h.b.inject[side].WriteTo(h.buf[:n], nil); err != nil {
			h.b.eng.rejectErrs.Add(1)
			h.b.eng.rejectErr.Store(&err)
			continue
		}
		h.b.eng.rejects.Add(1)
	}
}

// lastRejectErr returns the last error sending a reject frame, or nil.
func (e *engine) lastRejectErr() error {
	if p := e.rejectErr.Load(); p != nil {
		return *p
	}
	return nil
}
