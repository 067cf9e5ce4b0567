package rules

import "net/netip"

// MaxAlerts is the capacity of Result.Alerts: how many matching alert, drop
// and reject rules one frame reports. Further matches are counted in
// Result.Overflow. Suricata's default (packet-alert-max) is 15.
const MaxAlerts = 16

// Set is a compiled rule set. It is immutable, and Match is safe for
// concurrent use as long as each goroutine has its own Result.
type Set struct {
	rules []*Rule
	// groups[g] lists, in file order, the indexes of the rules that can
	// match a packet of protocol group g: the cheap protocol pre-filter.
	groups   [numGroups][]int32
	maxGroup int
	ac       *automaton // nil when no rule has content
	words    int        // uint64 words in a pattern bitset
}

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

// compile builds the pre-filter groups and the content automaton.
func compile(rules []*Rule) *Set {
	s := &Set{rules: rules}
	type key struct {
		pat    string
		nocase bool
	}
	ids := make(map[key]int32)
	var pats [][]byte
	var nocase []bool
	for i, r := range rules {
		var gs []int
		switch r.Proto {
		case ProtoIP:
			gs = []int{groupTCP, groupUDP, groupICMP, groupICMPv6, groupOther}
		case ProtoTCP:
			gs = []int{groupTCP}
		case ProtoUDP:
			gs = []int{groupUDP}
		case ProtoICMP:
			gs = []int{groupICMP, groupICMPv6}
		case ProtoICMPv6:
			gs = []int{groupICMPv6}
		}
		for _, g := range gs {
			s.groups[g] = append(s.groups[g], int32(i))
		}
		r.patterns = r.patterns[:0]
		for _, c := range r.contents {
			k := key{string(c.pattern), c.nocase}
			id, ok := ids[k]
			if !ok {
				id = int32(len(pats))
				ids[k] = id
				pats = append(pats, c.pattern)
				nocase = append(nocase, c.nocase)
			}
			r.patterns = append(r.patterns, id)
		}
	}
	for _, g := range s.groups {
		s.maxGroup = max(s.maxGroup, len(g))
	}
	if len(pats) > 0 {
		s.ac = newAutomaton(pats, nocase)
		s.words = (len(pats) + 63) / 64
	}
	return s
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

	// Scratch space sized for one Set, kept across calls.
	hits []uint64 // two bitsets: whole IP payload, then L4 payload
	cand []int32  // rules whose header matched
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
	if len(r.hits) < 2*s.words {
		r.hits = make([]uint64, 2*s.words)
	}
	if cap(r.cand) < s.maxGroup {
		r.cand = make([]int32, 0, s.maxGroup)
	}
}

// Match decodes frame, an Ethernet frame without FCS, matches it against the
// rules and returns the verdict, also stored in r.Action. r is overwritten.
// A frame that is not IPv4 or IPv6 matches nothing. Match does not keep
// frame and allocates nothing once r has been used with s.
func (s *Set) Match(frame []byte, r *Result) Action {
	r.grow(s)
	r.Action, r.Rule, r.Alerts, r.Overflow = NoMatch, nil, r.Alerts[:0], 0
	if !r.Decode(frame) || len(s.rules) == 0 {
		return NoMatch
	}
	p := &r.Packet

	// Header pass: protocol group, then ports, then addresses.
	cand := r.cand[:0]
	scanFrom, needScan := p.end, false
	for _, i := range s.groups[groupOf(p.Proto)] {
		rule := s.rules[i]
		if !rule.matchHeader(p) {
			continue
		}
		cand = append(cand, i)
		if len(rule.patterns) > 0 {
			needScan = true
			if rule.usesIPPayload() {
				scanFrom = p.l4Off
			} else {
				scanFrom = min(scanFrom, p.payOff)
			}
		}
	}
	r.cand = cand
	if len(cand) == 0 {
		return NoMatch
	}

	// Content pass: one automaton run over the bytes any candidate needs.
	ipHits, l4Hits := r.hits[:s.words], r.hits[s.words:2*s.words]
	if needScan {
		clear(r.hits[:2*s.words])
		s.ac.scan(frame[scanFrom:p.end], p.payOff-scanFrom, ipHits, l4Hits)
	}

	var first [Reject + 1]*Rule
	for _, i := range cand {
		rule := s.rules[i]
		hits := l4Hits
		if rule.usesIPPayload() {
			hits = ipHits
		}
		if !hasAll(hits, rule.patterns) {
			continue
		}
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
