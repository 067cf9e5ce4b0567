// Package rules is the drop logic of the example IPS bridge: a small subset of
// Suricata's rule language, parsed from text and matched against raw Ethernet
// frames.
//
// A rule reads
//
//	action proto src sport dir dst dport (options)
//
// with one rule per line; blank lines and lines starting with # are ignored.
//
//   - action is drop, alert, pass or reject. A reject rule drops the packet and
//     asks the caller to tell the endpoints (see [BuildReject]).
//   - proto is ip (any IPv4 or IPv6 packet), tcp, udp, icmp or icmpv6. As in
//     Suricata, icmp matches both ICMPv4 and ICMPv6.
//   - src and dst are any, an IPv4 or IPv6 address or CIDR prefix, a list in
//     [...] (comma separated, may nest), or any of these negated with !.
//   - sport and dport are any, a port, a range a:b (also a: and :b), a list
//     such as [80,443,1000:2000], or any of these negated with !.
//   - dir is -> or <>; <> also matches with source and destination swapped.
//   - options are msg:"..."; sid:N; rev:N; content:"..."; nocase;
//     flow:... (to_server, from_client, to_client, from_server, established,
//     not_established, stateless, comma separated; see [Flow]); and bypass
//     (pass rules only, [Rule].Bypass: the flow goes to the kernel fast path);
//     sid is required and unique within a [Set]. Content strings may hold hex
//     sections such as |0d 0a| and the escapes \" \; and \\. Every content of
//     a rule must occur somewhere in the payload, in any order. nocase applies
//     to the content just before it. Any other option is a parse error: a rule
//     file meant for Suricata fails loudly here instead of matching less than
//     its author believes.
//
// Content is searched in the TCP or UDP payload for tcp and udp rules, and in
// the whole IP payload (everything after the IPv4 header or the IPv6
// extension headers) for ip, icmp and icmpv6 rules. Non-first fragments carry
// no L4 header, so rules with ports never match them, and their content is
// searched in the fragment's IP payload.
//
// [Set.Match] decodes a frame (Ethernet, up to two 802.1Q/802.1ad tags, IPv4
// or IPv6 with extension headers, TCP, UDP, ICMP, ICMPv6), finds every
// content pattern of every rule in the payload in one pass, and resolves the verdict in Suricata's default action order: pass, drop,
// reject, alert. It allocates nothing once its [Result] has been used, and a
// Set is safe for concurrent use with one Result per goroutine.
//
// # Scale
//
// Rule sets the size of ET Open (about 50,000 rules) are the design point.
// Compile memory and time are linear in the rules and their content bytes:
// the Aho-Corasick automaton keeps dense transition rows only for its
// shallowest states (4 MiB at most) and sorted edges plus a failure link for
// the others, about 25 bytes per distinct content byte. Rules without content
// are indexed by the destination or source port they name (TCP and UDP) and
// else by the /16s of the IPv4 networks they name, so a frame checks only
// the rules that can match its ports and addresses, plus those that name
// neither. A rule set over [MaxRules], [MaxContentLen], [MaxPatternBytes] or
// [MaxAutomatonBytes] is refused with a [*LimitError] naming the first rule
// over the limit.
//
// The content pass is an Aho-Corasick automaton. In front of it, when it
// pays, goes a Wu-Manber skip table: over 2-byte blocks (64 KiB), or for
// thousands of binary contents over 3-byte blocks hashed to 1 MiB. It is
// built from the rules' fast patterns (their longest contents), which must
// be at least 4 bytes long, but for at most two shorter ones without nocase
// letters, searched on their own; a scan then reads about one byte in m-1 of
// random data, m the shortest fast pattern's length (up to 32), and walks
// the automaton's trie only where a block could end the first m bytes of a
// pattern. The results are the same either way: when a fast pattern occurs
// whose rule has a content the table leaves out, the payload is scanned
// again with the automaton, and a payload on which the skip finds too many
// candidate places (text made of the patterns' bytes) falls back to the
// automaton after a bounded amount of work.
//
// Replacing a Set (a reload) needs no call here: parse the new one while the
// old is in force, swap the pointer, and drop every reference to the old Set
// and the Results sized for it; nothing in the package keeps a Set alive.
//
// The package works on byte slices only and imports nothing from afbridge, so
// it can be used with any capture or bridging mechanism.
package rules
