//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/afbridge/afbridge/defrag"
	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/flow"
	"github.com/afbridge/afbridge/stream"
	"github.com/afbridge/afbridge/verdict"
)

// The built-in signatures that name what inspection drops on its own, logged in EVE like a
// rule's alert. Their sids are outside the range rule files use (Suricata's own events start at
// 2200000; these at 2900000).
var (
	sigFragOverlap = builtinRule(`drop ip any any -> any any (msg:"afbridge FRAG overlap with different data"; sid:2900001;)`)
	sigFragInvalid = builtinRule(`drop ip any any -> any any (msg:"afbridge FRAG invalid, tiny first fragment or over a reassembly limit"; sid:2900002;)`)
	sigStreamDiff  = builtinRule(`drop tcp any any -> any any (msg:"afbridge STREAM segment overlaps inspected data with different data"; sid:2900003;)`)
	sigStreamOther = builtinRule(`drop tcp any any -> any any (msg:"afbridge STREAM segment cannot be inspected (out of order beyond the hold, urgent data, unverifiable retransmission)"; sid:2900004;)`)
	sigExtHeaders  = builtinRule(`drop ip any any -> any any (msg:"afbridge IPv6 extension header chain over the limit"; sid:2900005;)`)
)

func builtinRule(text string) *rules.Rule {
	s, err := rules.Parse(strings.NewReader(text), "builtin")
	if err != nil {
		panic(err) // a typo in the text above
	}
	return s.Rules()[0]
}

// inspectStats are the process-wide counters of what inspection dropped on its own (no rule).
type inspectStats struct {
	flowDrops    atomic.Uint64 // frames of flows dropped earlier
	fragDrops    atomic.Uint64 // fragments dropped for an anomaly (overlap, tiny, limits)
	segDrops     atomic.Uint64 // TCP segments dropped for an anomaly (overlap, out of order...)
	extHdrDrops  atomic.Uint64 // IPv6 packets past flow.MaxExtHeaders
	reassembled  atomic.Uint64 // datagrams reassembled and inspected whole
	flowsEvicted atomic.Uint64 // flows forgotten to make room
}

// Sizes of one worker's inspection state.
const (
	inspectFlows = 16384 // flows tracked per worker
	tailStep     = 16    // stream context is rounded up to this, so a reload rarely needs more
)

// inspector is one worker's view of flows: it reassembles IP fragments and TCP streams for
// inspection (the frames themselves leave unchanged) and matches the rules against what the
// receiver will see, so that content split over fragments or segments is found in the frame
// that completes it. A flow a rule dropped stays dropped, both ways. It is used by one worker
// goroutine only.
type inspector struct {
	tail    int // stream context: the longest content of the rules it was made for, minus one
	stats   *inspectStats
	pkt     flow.Packet
	frags   *defrag.Reassembler
	streams *stream.Reassembler
	flows   *flow.Table[flowEntry]
	dgram   []byte       // a reassembled datagram as a frame
	synth   []byte       // the frame the rules see: headers and the stream's view
	head    []byte       // the headers alone, for streams.Frame
	why     *rules.Rule  // the built-in signature of the last inspection drop, or nil
	whyPkt  rules.Packet // the frame it concerns, decoded
	res2    rules.Result // a further part of a frame too long for one IP length (matchAll)
	part    []byte       // that part's frame
	// cur is the flow of the frame inspect judged last, nil when it has none (not IP, a held
	// fragment, a full table); valid until the next inspect or tick.
	cur *flow.Flow[flowEntry]
}

func newInspector(tail int, stats *inspectStats) (*inspector, error) {
	tail = max(1, (tail+tailStep-1)/tailStep*tailStep)
	frags, err := defrag.New(&defrag.Config{
		// Tiny fragments are legal; their content is found once reassembled, so they only count.
		DropOn: defrag.DefaultDropOn &^ defrag.TinyFragment,
	})
	if err != nil {
		return nil, err
	}
	// A segment lost before the bridge (a full ring) leaves a gap that TCP fills a round trip
	// later; what arrives meanwhile must be held, or it is dropped and the loss cascades through
	// the whole window. With offloads on, one super-frame past the gap is already 64 KiB, and
	// a fast sender has megabytes in flight: hold up to 1 MiB past a gap, in at most 32 directions
	// at once (32 MiB a worker at worst; buffers are made when first needed), and keep up to
	// 4 MiB a direction to check retransmissions against.
	streams, err := stream.New(&stream.Config{Tail: tail, Retain: max(tail, 4<<20), Hold: 1 << 20, HoldBuffers: 32})
	if err != nil {
		return nil, err
	}
	in := &inspector{
		tail:    tail,
		stats:   stats,
		frags:   frags,
		streams: streams,
		dgram:   make([]byte, 64+defrag.MaxHeader+65535),
		synth:   make([]byte, 0, 256+tail+2*65536),
		part:    make([]byte, 0, 256+65536),
		head:    make([]byte, 0, 256),
	}
	in.flows, err = flow.NewTable(flow.Config[flowEntry]{
		Capacity: inspectFlows,
		OnRemove: func(f *flow.Flow[flowEntry], why flow.Reason) {
			streams.Release(&f.State.tcp)
			if why == flow.Evicted {
				stats.flowsEvicted.Add(1)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}

// inspect judges frame p: it returns the rules' action for what the frame makes visible (res
// holds the match, as after [rules.Set.Match]) and whether the frame must be dropped whatever
// the rules say (its flow was dropped, or it is an evasion attempt). For an evasion attempt,
// in.why names it (a built-in signature) and in.whyPkt is the frame decoded; else in.why is nil.
func (in *inspector) inspect(p *verdict.Packet, set *rules.Set, res *rules.Result) (rules.Action, bool) {
	in.why, in.cur = nil, nil
	now := p.Time
	if now.IsZero() {
		now = time.Now()
	}
	frame := p.Data
	pk := &in.pkt
	err := flow.Parse(frame, pk)
	switch {
	case errors.Is(err, flow.ErrExtHeaderLimit):
		// The upper layer was never reached: nothing could be inspected.
		in.stats.extHdrDrops.Add(1)
		in.blame(sigExtHeaders, frame)
		return rules.NoMatch, true
	case err != nil:
		res.Flow = 0
		return set.Match(frame, res), false
	}
	drop := false
	if pk.Fragment {
		fr := in.frags.Frame(frame, now)
		switch fr.Status {
		case defrag.Held, defrag.Unusable:
			if fr.Drop {
				// Judge what it carries anyway, in case a rule names the attempt too.
				in.stats.fragDrops.Add(1)
				in.blameFrag(fr.Anomalies, frame)
				res.Flow = 0
				return set.Match(frame, res), true
			}
			// Forwarded: the fragment that completes the datagram is judged with all of it.
			return rules.NoMatch, false
		case defrag.Complete:
			if fr.Drop {
				in.stats.fragDrops.Add(1)
				in.blameFrag(fr.Anomalies, frame)
				drop = true
			}
			in.stats.reassembled.Add(1)
			n := copy(in.dgram, frame[:pk.L3])
			n += copy(in.dgram[n:], fr.Datagram)
			frame = in.dgram[:n]
			if err := flow.Parse(frame, pk); err != nil {
				res.Flow = 0
				return set.Match(frame, res), drop
			}
		}
	}
	f, _ := in.flows.Lookup(pk, now)
	if f == nil {
		res.Flow = 0 // no flow tracked: judged alone
		return set.Match(frame, res), drop
	}
	if f.Dropped() {
		in.stats.flowDrops.Add(1)
		return rules.NoMatch, true
	}
	in.cur = f
	e := &f.State
	var fl rules.Flow
	match, built := frame, false // built: match is a frame synthesize or viewFrame made
	tailLen := 0                 // bytes of view that were inspected before
	var view []byte
	if pk.Key.Proto == flow.ProtoTCP && pk.Payload > pk.L4 && !e.bypassed {
		end := min(pk.End, len(frame))
		sr := in.streams.Segment(&e.tcp, stream.Dir(p.Dir), frame[pk.L4:end], 0)
		fl = flowBits(sr.ToServer, e.tcp.Established())
		if sr.View != nil || pk.ExtHeaders > 0 || min(pk.Payload, end) < end {
			match, built = in.viewFrame(frame, pk, sr.View), true
		} // else no payload (an ACK): the frame is its own view, nothing to build
		view, tailLen = sr.View, len(sr.View)-sr.New
		if sr.Drop {
			in.stats.segDrops.Add(1)
			drop = true
			if sr.Anomalies&stream.OverlapDiffers != 0 {
				in.blame(sigStreamDiff, frame)
			} else {
				in.blame(sigStreamOther, frame)
			}
			if sr.Anomalies&(stream.OverlapDiffers|stream.Unverifiable) != 0 {
				// Bytes other than the ones inspected: an evasion attempt. The flow goes, and
				// the rules judge the bytes as a receiver taking them would read them, so that
				// an alert names the attempt.
				f.Drop()
				match, built = frame, false
				if sr.Alt != nil {
					match, built = in.synthesize(frame, pk, sr.Alt), true
				}
			}
		}
	} else {
		fl = flowBits(pk.Src() == f.Client(), f.Established())
		if pk.ExtHeaders > 0 {
			match, built = in.synthesize(frame, pk, frame[min(pk.Payload, pk.End, len(frame)):min(pk.End, len(frame))]), true
		}
	}
	res.Flow = fl
	var act rules.Action
	if built {
		act = in.matchAll(set, frame, pk, match, res)
	} else {
		act = set.Match(match, res)
	}
	if act == rules.Alert && tailLen > 0 {
		act = in.dedupe(view, tailLen, res)
	}
	if act == rules.Drop || act == rules.Reject {
		f.Drop() // Suricata's flow drop: the rest of the flow, both ways
	}
	if drop || (act != rules.NoMatch && act != rules.Pass) {
		e.judged = true // an alert, a drop or an anomaly: the flow stays inspected
	}
	return act, drop
}

// bypass decides whether the flow of the frame inspect just passed goes to the kernel fast
// path: when the rule that passed it has the bypass option, or when the flow has now passed
// after bytes through the verdict (-bypass-after; negative: never), counting frame bytes. A
// flow that raised an alert, had a frame dropped or an anomaly is never bypassed. Once
// bypassed, its TCP stream is no longer reassembled (a returning flow, after an idle
// expiry or a withdrawal, has a gap the reassembler would take for an evasion): its frames are
// matched one by one.
func (in *inspector) bypass(frameLen int, rule bool, after int64) bool {
	f := in.cur
	if f == nil || f.Dropped() {
		return false
	}
	e := &f.State
	if e.judged {
		return false
	}
	e.passed += uint64(frameLen)
	if !rule && (after < 0 || e.passed < uint64(after)) {
		return false
	}
	if !e.bypassed {
		e.bypassed = true
		in.streams.Release(&e.tcp)
	}
	return true
}

func flowBits(toServer, established bool) rules.Flow {
	f := rules.FlowToClient
	if toServer {
		f = rules.FlowToServer
	}
	if established {
		return f | rules.FlowEstablished
	}
	return f | rules.FlowNotEstablished
}

// dedupe drops from res the alerts of TCP content rules whose contents all lie in the already
// inspected part of the view (its first tailLen bytes): they were reported with an earlier
// segment. Only alert-only results are trimmed: a drop or reject there has dropped the flow
// already. It returns the action left.
func (in *inspector) dedupe(view []byte, tailLen int, res *rules.Result) rules.Action {
	kept := res.Alerts[:0]
	for _, r := range res.Alerts {
		if r.Proto != rules.ProtoTCP || r.NewIn(view, tailLen) {
			kept = append(kept, r)
		}
	}
	res.Alerts = kept
	if len(kept) == 0 && res.Overflow == 0 {
		res.Action, res.Rule = rules.NoMatch, nil
		return rules.NoMatch
	}
	if len(kept) > 0 {
		res.Rule = kept[0]
	}
	return rules.Alert
}

// blame records the built-in signature that names a drop, with frame decoded for its event.
func (in *inspector) blame(sig *rules.Rule, frame []byte) {
	in.why = sig
	in.whyPkt.Decode(frame)
}

func (in *inspector) blameFrag(a defrag.Anomaly, frame []byte) {
	if a&defrag.OverlapDiffers != 0 {
		in.blame(sigFragOverlap, frame)
	} else {
		in.blame(sigFragInvalid, frame)
	}
}

// tick expires idle flows and datagrams; the worker calls it between frames.
func (in *inspector) tick(now time.Time) {
	in.flows.Expire(now)
	in.frags.Expire(now)
}

// synthesize builds the frame the rules see: frame's link and IP headers (IPv6 without its
// extension headers, which the rules' decoder need not walk again), its transport header, and
// payload, with the IP length fixed to match.
func (in *inspector) synthesize(frame []byte, pk *flow.Packet, payload []byte) []byte {
	b := append(appendHeaders(in.synth[:0], frame, pk), payload...)
	setIPLength(b, pk)
	in.synth = b[:0]
	return b
}

// viewFrame is synthesize for view, the stream's view of the last segment: the headers go in
// front of the view where the reassembler built it, so that a 64 KiB view is not copied again.
func (in *inspector) viewFrame(frame []byte, pk *flow.Packet, view []byte) []byte {
	in.head = appendHeaders(in.head[:0], frame, pk)
	b := in.streams.Frame(in.head)
	if b == nil {
		return in.synthesize(frame, pk, view) // headers longer than the headroom
	}
	setIPLength(b, pk)
	return b
}

// matchAll matches b, a frame synthesize or viewFrame built from frame, as [rules.Set.Match]
// does. When b's payload is longer than its IP length can state (a segment of nearly 64 KiB
// behind the stream's tail, or a gap filled in front of held out-of-order data, up to the
// stream's Hold), the rules' decoder stops at 65,535 bytes; the rest is matched in further
// frames, each as long as an IP length allows and repeating in.tail bytes before it, so that a
// content across a cut is found, and the results are merged. Every byte of b is matched.
func (in *inspector) matchAll(set *rules.Set, frame []byte, pk *flow.Packet, b []byte, res *rules.Result) rules.Action {
	act := set.Match(b, res)
	pay := min(pk.Payload, pk.End, len(frame))
	hdr, ipHdr := pay, pay-pk.L3 // the headers' length in b, and the part an IP length counts
	if pk.Key.Family != 4 {
		hdr = pk.L3 + 40 + pay - min(pk.L4, pay)
		ipHdr = hdr - pk.L3 - 40
	}
	fits := 65535 - ipHdr // payload bytes the IP length can cover
	payload := b[hdr:]
	step := fits - min(in.tail, fits-1) // each further frame starts in.tail bytes before the cut
	for start := step; start+in.tail < len(payload) && len(payload) > fits; start += step {
		if act == rules.Pass || act == rules.Drop || act == rules.Reject {
			break
		}
		// Built in its own buffer: b (in.synth, or the stream's view) stays as it is.
		part := append(appendHeaders(in.part[:0], frame, pk), payload[start:min(start+fits, len(payload))]...)
		setIPLength(part, pk)
		in.part = part[:0]
		r2 := &in.res2
		r2.Flow = res.Flow
		switch act2 := set.Match(part, r2); {
		case act2 == rules.NoMatch:
		case act == rules.NoMatch || act2 == rules.Pass:
			res.Action, res.Rule, res.Overflow = r2.Action, r2.Rule, r2.Overflow
			res.Alerts = append(res.Alerts[:0], r2.Alerts...)
			act = act2
		default: // alerts before; alerts, a drop or a reject in this part
			for _, r := range r2.Alerts {
				switch {
				case slices.Contains(res.Alerts, r): // found in the repeated bytes again
				case len(res.Alerts) < rules.MaxAlerts:
					res.Alerts = append(res.Alerts, r)
				default:
					res.Overflow++
				}
			}
			res.Overflow += r2.Overflow
			if act2 != rules.Alert {
				res.Action, res.Rule, act = act2, r2.Rule, act2
			}
		}
	}
	return act
}

// appendHeaders appends to b the headers synthesize puts in front of the payload.
func appendHeaders(b, frame []byte, pk *flow.Packet) []byte {
	b = append(b, frame[:pk.L3]...)
	pay := min(pk.Payload, pk.End, len(frame))
	if pk.Key.Family == 4 {
		return append(b, frame[pk.L3:pay]...)
	}
	ip := len(b)
	b = append(b, frame[pk.L3:pk.L3+40]...)
	b[ip+6] = pk.Key.Proto
	return append(b, frame[min(pk.L4, pay):pay]...)
}

// setIPLength sets the IP length of b, a frame appendHeaders began, to cover the rest of b.
func setIPLength(b []byte, pk *flow.Packet) {
	ip := pk.L3
	if pk.Key.Family == 4 {
		binary.BigEndian.PutUint16(b[ip+2:], uint16(min(len(b)-ip, 65535)))
	} else {
		binary.BigEndian.PutUint16(b[ip+4:], uint16(min(len(b)-ip-40, 65535)))
	}
}

// flowEntry is what a worker remembers of one flow beyond what the flow table tracks.
type flowEntry struct {
	tcp    stream.Stream
	passed uint64 // frame bytes the verdict passed, both directions (-bypass-after)
	// judged is set by an alert, a drop or an anomaly: the flow is never bypassed.
	judged bool
	// bypassed is set once the verdict said Bypass: the stream is no longer reassembled.
	bypassed bool
}
