package rules

import (
	"fmt"
	"strings"
)

// Flow is what the caller's flow tracking knows of a packet ([Result.Flow]), and what a rule's
// flow option requires of it. A rule matches only when the packet's Flow has every bit the
// rule requires, so a rule with a flow option never matches a packet whose caller tracks no
// flows (Flow 0), as in Suricata.
type Flow uint8

// Flow bits. A packet goes either to the server or to the client, and its flow is either
// established or not.
const (
	// FlowToServer: the packet goes from the client (the side that spoke first, or sent the
	// SYN) to the server. Suricata's to_server and from_client.
	FlowToServer Flow = 1 << iota
	// FlowToClient: the packet goes from the server to the client (to_client, from_server).
	FlowToClient
	// FlowEstablished: a TCP flow whose handshake completed, or a flow of another protocol
	// that has seen packets both ways (established).
	FlowEstablished
	// FlowNotEstablished: not yet established (not_established).
	FlowNotEstablished
)

// flowWords are the flow option's words, as Suricata names them.
var flowWords = []struct {
	word string
	bit  Flow
}{
	{"to_server", FlowToServer}, {"from_client", FlowToServer},
	{"to_client", FlowToClient}, {"from_server", FlowToClient},
	{"established", FlowEstablished}, {"not_established", FlowNotEstablished},
	{"stateless", 0},
}

// parseFlow parses the value of flow:, such as "established,to_server".
func parseFlow(v string) (Flow, error) {
	var f Flow
	for w := range strings.SplitSeq(v, ",") {
		w = strings.ToLower(strings.TrimSpace(w))
		found := false
		for _, fw := range flowWords {
			if fw.word == w {
				f |= fw.bit
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown flow option %q (supported: to_server, from_client, to_client, from_server, established, not_established, stateless)", w)
		}
	}
	if f&FlowToServer != 0 && f&FlowToClient != 0 {
		return 0, fmt.Errorf("flow options to_server and to_client exclude each other")
	}
	if f&FlowEstablished != 0 && f&FlowNotEstablished != 0 {
		return 0, fmt.Errorf("flow options established and not_established exclude each other")
	}
	return f, nil
}

// String is the flow option's value in canonical form ("established,to_server"), or "" for 0.
func (f Flow) String() string {
	var w []string
	for _, b := range []struct {
		bit  Flow
		word string
	}{{FlowEstablished, "established"}, {FlowNotEstablished, "not_established"},
		{FlowToServer, "to_server"}, {FlowToClient, "to_client"}} {
		if f&b.bit != 0 {
			w = append(w, b.word)
		}
	}
	return strings.Join(w, ",")
}

// matchFlow reports whether a packet whose flow state is f meets the rule's flow option.
func (r *Rule) matchFlow(f Flow) bool { return f&r.flow == r.flow }
