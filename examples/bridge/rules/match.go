package rules

import (
	"net/netip"
	"slices"
)

// MaxAlerts is the capacity of Result.Alerts: how many matching alert, drop
// and reject rules one frame reports. Further matches are counted in
// Result.Overflow. Suricata's default (packet-alert-max) is 15.
const MaxAlerts = 16

// Set is a compiled rule set. It is immutable, and Match is safe for
// concurrent use as long as each goroutine has its own Result.
type Set struct {
	rules []*Rule
	// plain[g] lists, in file order, the rules without content that can
	// match a packet of protocol group g and are not in ports[g]: the cheap
	// protocol pre-filter.
	plain [numGroups][]int32
	// ports[g][0] and [1] index the rules of the port groups (TCP, UDP) by
	// destination and by source port (see prefilter.go); nil when empty.
	ports [numGroups][2]*portTable
	// nets[g][0] and [1] index the rules without content not in ports[g]
	// by the /16 of the source and of the destination IPv4 address.
	nets [numGroups][2]*portTable
	// byPattern[id] lists the rules with content whose fast pattern (their
	// longest content) is pattern id. Such a rule is looked at only when
	// its fast pattern occurred in the frame, as in Suricata's prefilter.
	byPattern [][]int32
	// scan[g] says which bytes the automaton must read for group g:
	// none, the L4 payload, or the whole IP payload. ports[g] may widen it
	// for a frame's ports.
	scan  [numGroups]scanRegion
	ac    *automaton // nil when no rule has content
	words int        // uint64 words in a pattern bitset
	// rescan has the bit of every fast pattern with a rule that has a
	// content the skip table leaves out (another rule's fast pattern
	// shorter than the window, or a content that is no rule's fast
	// pattern): when such a pattern occurs, a skip scan did not find
	// everything the rule needs, and Match scans again with the automaton
	// alone. nil when there is no such rule.
	rescan []uint64
}

type scanRegion uint8

const (
	scanNone scanRegion = iota
	scanL4Payload
	scanIPPayload
)

// Protocol groups for the pre-filter.
const (
	groupTCP = iota
	groupUDP
	groupICMP
	groupICMPv6
	groupOther
	numGroups
)

func groupOf(proto uint8) int {
	switch proto {
	case protoTCP:
		return groupTCP
	case protoUDP:
		return groupUDP
	case protoICMP:
		return groupICMP
	case protoICMPv6:
		return groupICMPv6
	}
	return groupOther
}

// groupMask returns the protocol groups a rule's protocol covers.
func groupMask(p Proto) uint8 {
	switch p {
	case ProtoTCP:
		return 1 << groupTCP
	case ProtoUDP:
		return 1 << groupUDP
	case ProtoICMP:
		return 1<<groupICMP | 1<<groupICMPv6
	case ProtoICMPv6:
		return 1 << groupICMPv6
	}
	return 1<<numGroups - 1
}

// compile builds the pre-filter tables and the content automaton, within
// the default limits.
func compile(rules []*Rule) (*Set, error) { return compileLimits(rules, defaultLimits) }

func compileLimits(rules []*Rule, lim limits) (*Set, error) {
	s := &Set{rules: rules}
	if len(rules) > lim.rules {
		return nil, limitError(rules[lim.rules], "MaxRules", len(rules), lim.rules)
	}
	type key struct {
		pat    string
		nocase bool
	}
	ids := make(map[key]int32)
	size := 0
	for _, r := range rules {
		for _, c := range r.contents {
			size += len(c.pattern)
		}
	}
	tr := newTrie(min(size, lim.patternBytes))
	var ports [2][2]portTableBuilder         // [TCP, UDP][destination, source]
	var addrs [numGroups][2]portTableBuilder // [group][source, destination]
	for i, r := range rules {
		r.groups = groupMask(r.Proto)
		r.patterns = r.patterns[:0]
		fast, fastLen := int32(-1), 0
		for _, c := range r.contents {
			if len(c.pattern) > lim.contentLen {
				return nil, limitError(r, "MaxContentLen", len(c.pattern), lim.contentLen)
			}
			k := key{string(c.pattern), c.nocase}
			id, ok := ids[k]
			if !ok {
				if tr.bytes+len(c.pattern) > lim.patternBytes {
					return nil, limitError(r, "MaxPatternBytes", tr.bytes+len(c.pattern), lim.patternBytes)
				}
				id = tr.add(c.pattern, c.nocase)
				ids[k] = id
				s.byPattern = append(s.byPattern, nil)
			}
			r.patterns = append(r.patterns, id)
			if len(c.pattern) > fastLen {
				fast, fastLen = id, len(c.pattern)
			}
		}
		if m := tr.memEstimate(); m > lim.automatonBytes {
			return nil, limitError(r, "MaxAutomatonBytes", m, lim.automatonBytes)
		}
		region := scanL4Payload
		if r.usesIPPayload() {
			region = scanIPPayload
		}
		// The port pre-filter: index by destination port, else by source
		// port; a <> rule matches either way round, so it is shared.
		var idx []uint16
		dir := 0
		if !r.bidir {
			if idx = dedupPorts(indexPorts(&r.dport)); idx == nil {
				idx, dir = dedupPorts(indexPorts(&r.sport)), 1
			}
		}
		for g := range numGroups {
			if r.groups&(1<<g) == 0 {
				continue
			}
			if pg := portGroups[g]; pg != 0 && idx != nil {
				ports[pg-1][dir].add(idx, int32(i), fast >= 0, region)
				continue
			}
			if fast < 0 {
				if nets, d := plainNets(r); nets != nil {
					addrs[g][d].add(nets, int32(i), false, scanNone)
					continue
				}
				s.plain[g] = append(s.plain[g], int32(i))
			} else {
				s.scan[g] = max(s.scan[g], region)
			}
		}
		if fast >= 0 {
			s.byPattern[fast] = append(s.byPattern[fast], int32(i))
		}
	}
	for g, pg := range portGroups {
		if pg != 0 {
			s.ports[g][0] = ports[pg-1][0].build()
			s.ports[g][1] = ports[pg-1][1].build()
		}
		s.nets[g][0] = addrs[g][0].build()
		s.nets[g][1] = addrs[g][1].build()
	}
	if len(tr.pats) > 0 {
		s.ac = tr.compile()
		s.words = (len(tr.pats) + 63) / 64
		s.addSkip()
	}
	return s, nil
}

// addSkip puts a skip filter in front of the automaton when one pays, with
// the contents that are no rule's fast pattern optional, and marks in rescan
// the fast patterns whose rules have a content the filter leaves out.
func (s *Set) addSkip() {
	if len(s.byPattern) > maxSkipPatterns {
		return
	}
	optional := make([]bool, len(s.byPattern))
	for id, rules := range s.byPattern {
		optional[id] = len(rules) == 0
	}
	f := newSkipFilter(s.ac, optional)
	s.ac.skip = f
	if f == nil || !f.partial {
		return
	}
	s.rescan = make([]uint64, s.words)
	for id, rules := range s.byPattern {
		for _, i := range rules {
			for _, p := range s.rules[i].patterns {
				if !f.exactFor(p, s.ac.pats[p]) {
					s.rescan[id>>6] |= 1 << (uint(id) & 63)
				}
			}
		}
	}
}

// plainNets returns the address index keys of a rule without content, and
// 0 for its source or 1 for its destination address, or nil when the rule
// goes in the shared list: a <> rule matches either way round.
func plainNets(r *Rule) ([]uint16, int) {
	if r.bidir {
		return nil, 0
	}
	if nets := indexNets(&r.src); nets != nil {
		return nets, 0
	}
	return indexNets(&r.dst), 1
}

// Rules returns the rules in file order. The slice and the rules belong to
// the Set and must not be modified.
func (s *Set) Rules() []*Rule { return s.rules }

// Len returns the number of rules.
func (s *Set) Len() int { return len(s.rules) }

// Result is what Match found for one frame. It is owned by the caller and
// meant to be reused for every frame, so that Match allocates nothing: a
// zero Result works and allocates its scratch space once, on first use with a
// Set; [Set.NewResult] allocates it up front.
type Result struct {
	// Packet is the decoded frame.
	Packet
	// Action is the verdict, also returned by Match.
	Action Action
	// Rule is the rule that decided the verdict: the first matching pass
	// rule, else the first drop rule, else the first reject rule, else the
	// first alert rule, in file order. It is nil for NoMatch.
	Rule *Rule
	// Alerts lists every matching alert, drop and reject rule in file
	// order, which is what an EVE log records: with action "blocked" for
	// drop and reject rules (see Action.Blocks) and "allowed" for alert
	// rules. It is empty when a pass rule matched, because pass overrides
	// everything. Its capacity is MaxAlerts and its backing array is reused
	// by the next Match; copy what must outlive it.
	Alerts []*Rule
	// Overflow counts matching rules that did not fit in Alerts.
	Overflow int
	// Flow is the packet's flow state, set by the caller before Match (which never changes
	// it); rules with a flow option match only what it allows. 0: no flow tracking.
	Flow Flow

	// Scratch space sized for one Set, kept across calls.
	hits    []uint64 // three bitsets: whole IP payload, L4 payload, scan memo
	found   []int32  // pattern ids in the order they first occurred
	matched []int32  // indexes of the rules that matched
}

// NewResult returns a Result with its scratch space sized for s, so that even
// the first Match allocates nothing.
func (s *Set) NewResult() *Result {
	r := &Result{}
	r.grow(s)
	return r
}

func (r *Result) grow(s *Set) {
	if cap(r.Alerts) < MaxAlerts {
		r.Alerts = make([]*Rule, 0, MaxAlerts)
	}
	if len(r.hits) < 3*s.words {
		r.hits = make([]uint64, 3*s.words)
	}
	if cap(r.found) < len(s.byPattern) {
		r.found = make([]int32, 0, len(s.byPattern))
	}
	if cap(r.matched) < len(s.rules) {
		r.matched = make([]int32, 0, len(s.rules))
	}
}

// Match decodes frame, an Ethernet frame without FCS, matches it against the
// rules and returns the verdict, also stored in r.Action. r is overwritten.
// A frame that is not IPv4 or IPv6 matches nothing. Match does not keep
// frame and allocates nothing once r has been used with s.
//
// Rules without content are checked by header. For rules with content, one
// pass over the payload (Aho-Corasick, behind a skip table when the contents
// allow one) finds every pattern that occurs, and only the rules whose
// longest content is among them are checked further.
func (s *Set) Match(frame []byte, r *Result) Action {
	r.grow(s)
	r.Action, r.Rule, r.Alerts, r.Overflow = NoMatch, nil, r.Alerts[:0], 0
	if !r.Decode(frame) || len(s.rules) == 0 {
		return NoMatch
	}
	p := &r.Packet
	g := groupOf(p.Proto)

	// Rules without content: those of the frame's protocol group that name
	// neither a few ports nor IPv4 networks, and those indexed under the
	// frame's ports and /16s (see prefilter.go).
	matched := s.matchPlain(s.plain[g], p, r.Flow, r.matched[:0])
	if p.SrcIP.Is4() {
		matched = s.matchPlain(s.nets[g][0].lookup(netKey(p.SrcIP.As4())), p, r.Flow, matched)
		matched = s.matchPlain(s.nets[g][1].lookup(netKey(p.DstIP.As4())), p, r.Flow, matched)
	}
	region := s.scan[g]
	if p.HasPorts() {
		byDst, bySrc := s.ports[g][0], s.ports[g][1]
		matched = s.matchPlain(byDst.lookup(p.DstPort), p, r.Flow, matched)
		matched = s.matchPlain(bySrc.lookup(p.SrcPort), p, r.Flow, matched)
		region = max(region, byDst.scanOf(p.DstPort), bySrc.scanOf(p.SrcPort))
	}

	from := p.end
	switch region {
	case scanIPPayload:
		from = p.l4Off
	case scanL4Payload:
		from = p.payOff
	}
	if from < p.end {
		// The bitsets are all zero between calls: they are cleared word by
		// word for the patterns found, which with tens of thousands of
		// patterns is much less than all of them.
		ipHits, l4Hits, memo := r.hits[:s.words], r.hits[s.words:2*s.words], r.hits[2*s.words:3*s.words]
		data, tailFrom := frame[from:p.end], p.payOff-from
		found, exact := s.ac.find(data, tailFrom, ipHits, l4Hits, memo, r.found[:0])
		if !exact && hasAny(s.rescan, found) {
			// A rule to check has a content the skip table leaves
			// out, which the skip scan may have missed.
			clearHits(ipHits, l4Hits, memo, found)
			found = s.ac.scanMemo(data, tailFrom, ipHits, l4Hits, memo, found[:0])
		}
		r.found = found
		for _, id := range r.found {
			for _, i := range s.byPattern[id] {
				rule := s.rules[i]
				if rule.groups&(1<<g) == 0 {
					continue
				}
				hits := l4Hits
				if rule.usesIPPayload() {
					hits = ipHits
				}
				if hasAll(hits, rule.patterns) && rule.matchHeader(p) && rule.matchFlow(r.Flow) {
					matched = append(matched, i)
				}
			}
		}
		clearHits(ipHits, l4Hits, memo, r.found)
	}
	// Content rules were found in pattern order, and the pre-filter's lists
	// follow each other; report in file order.
	slices.Sort(matched)
	r.matched = matched

	var first [Reject + 1]*Rule
	for _, i := range matched {
		rule := s.rules[i]
		if first[rule.Action] == nil {
			first[rule.Action] = rule
		}
		if rule.Action == Pass {
			r.Alerts = r.Alerts[:0]
			r.Overflow = 0
			break
		}
		if len(r.Alerts) < MaxAlerts {
			r.Alerts = append(r.Alerts, rule)
		} else {
			r.Overflow++
		}
	}
	for _, a := range [...]Action{Pass, Drop, Reject, Alert} {
		if first[a] != nil {
			r.Action, r.Rule = a, first[a]
			break
		}
	}
	return r.Action
}

// matchPlain appends to matched the rules of ids, which have no content,
// that match p's header and flow.
func (s *Set) matchPlain(ids []int32, p *Packet, flow Flow, matched []int32) []int32 {
	for _, i := range ids {
		if s.rules[i].matchHeader(p) && s.rules[i].matchFlow(flow) {
			matched = append(matched, i)
		}
	}
	return matched
}

func clearHits(ipHits, l4Hits, memo []uint64, found []int32) {
	for _, id := range found {
		ipHits[id>>6], l4Hits[id>>6], memo[id>>6] = 0, 0, 0
	}
}

// hasAny reports whether one of ids has its bit set in bits (nil: none).
func hasAny(bits []uint64, ids []int32) bool {
	if bits == nil {
		return false
	}
	for _, id := range ids {
		if bits[id>>6]&(1<<(uint(id)&63)) != 0 {
			return true
		}
	}
	return false
}

func hasAll(bits []uint64, ids []int32) bool {
	for _, id := range ids {
		if bits[id>>6]&(1<<(uint(id)&63)) == 0 {
			return false
		}
	}
	return true
}

// matchHeader reports whether the rule's addresses and ports match p, in
// either direction for a <> rule. Ports are checked first because they are
// integer compares; a rule with ports never matches a packet without them.
func (r *Rule) matchHeader(p *Packet) bool {
	if r.matchDir(p, p.SrcIP, p.DstIP, p.SrcPort, p.DstPort) {
		return true
	}
	return r.bidir && r.matchDir(p, p.DstIP, p.SrcIP, p.DstPort, p.SrcPort)
}

func (r *Rule) matchDir(p *Packet, src, dst netip.Addr, sport, dport uint16) bool {
	if !r.sport.any || !r.dport.any {
		if !p.HasPorts() || !r.sport.containsPort(sport) || !r.dport.containsPort(dport) {
			return false
		}
	}
	return r.src.containsAddr(src) && r.dst.containsAddr(dst)
}
