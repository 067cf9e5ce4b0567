package rules

import "strconv"

// Action is what a rule asks for, and what [Set.Match] decides for a frame.
//
// The zero value is NoMatch: no rule matched. It is deliberately distinct from
// Pass, which means a pass rule matched and overrode every other rule. Both
// forward the frame.
type Action uint8

// Actions, in the order of their numeric values. The precedence used by
// [Set.Match] is Suricata's default action order instead: pass, drop, reject,
// alert.
const (
	// NoMatch means no rule matched the frame: forward it.
	NoMatch Action = iota
	// Pass means a pass rule matched: forward the frame and ignore every
	// other rule, as Suricata does.
	Pass
	// Alert means only alert rules matched: forward the frame and log them.
	Alert
	// Drop means a drop rule matched: discard the frame.
	Drop
	// Reject means a reject rule matched and no drop rule did: discard the
	// frame and send the frames built by [BuildReject].
	Reject
)

// String returns the rule keyword for the action, or "nomatch".
func (a Action) String() string {
	switch a {
	case NoMatch:
		return "nomatch"
	case Pass:
		return "pass"
	case Alert:
		return "alert"
	case Drop:
		return "drop"
	case Reject:
		return "reject"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Blocks reports whether the action discards the frame. An EVE alert for a
// rule whose action blocks is logged with action "blocked", the others with
// "allowed".
func (a Action) Blocks() bool { return a == Drop || a == Reject }

// Proto is the protocol field of a rule.
type Proto uint8

// Rule protocols. The zero value is invalid: every parsed rule has one of
// these.
const (
	// ProtoIP matches every IPv4 and IPv6 packet.
	ProtoIP Proto = iota + 1
	// ProtoTCP matches TCP (IP protocol 6).
	ProtoTCP
	// ProtoUDP matches UDP (IP protocol 17).
	ProtoUDP
	// ProtoICMP matches ICMPv4 and ICMPv6 (IP protocols 1 and 58), as
	// Suricata's icmp keyword does.
	ProtoICMP
	// ProtoICMPv6 matches ICMPv6 only (IP protocol 58).
	ProtoICMPv6
)

// String returns the rule keyword for the protocol.
func (p Proto) String() string {
	switch p {
	case ProtoIP:
		return "ip"
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmpv6"
	}
	return "Proto(" + strconv.Itoa(int(p)) + ")"
}
