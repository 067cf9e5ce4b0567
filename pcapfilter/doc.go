// Package pcapfilter compiles pcap-filter(7) expressions, the language of tcpdump and of
// Suricata's bpf-filter setting, into classic BPF programs for Ethernet frames, in pure Go:
// no cgo, no libpcap. The result is a []bpf.Instruction (golang.org/x/net/bpf) that can be
// attached as a socket filter, for instance as afbridge's peer.Side.Filter.
//
// It compiles host, net (CIDR, partial and mask), port and portrange with src, dst, src or
// dst, and src and dst; the protocols ip, ip6, arp, rarp, tcp, udp, sctp, icmp, icmp6, igmp
// and ether (ether host/src/dst, ether proto); proto N, ip proto, ip6 proto; vlan [id];
// broadcast and multicast (ether, ip, ip6); less, greater and arithmetic comparisons on len
// and packet bytes (tcp[13] & 2 != 0, ip[2:2] > 576, tcp[tcpflags] & tcp-syn != 0, with
// the named constants of pcap-filter(7)); and, or, not (&&, ||, !), parentheses and the
// inherited qualifiers of "host 198.18.0.1 or 198.18.0.2". And and or have the same
// precedence and associate to the left, as in pcap-filter(7).
//
// # Same answer as tcpdump
//
// A program gives every frame the verdict of libpcap's code for the same expression (tcpdump
// 4.99 with libpcap 1.10 is the tests' reference), including libpcap's rules that are easy to
// get wrong: port primitives look at IPv4 first fragments only and at IPv6 packets whose next
// header is the transport (no extension headers); tcp, udp and sctp also match an IPv6 packet
// with one fragment header; tcp[…] and the other transport loads are IPv4 only; a number as a
// host is an IPv4 address ("src 53" is 0.0.0.53); and a vlan primitive shifts the offsets of
// everything after it in the expression, on either side of an "or".
//
// A cBPF program rejects a frame as soon as it reads past the frame's end. pcapfilter's
// programs read what libpcap's code reads, in the same order, so they give the verdict of
// "tcpdump -O" (libpcap without its optimizer) on every frame, and that of tcpdump's default
// optimized program on every frame that does not end inside a header the filter reads.
// libpcap's optimizer reorders tests as if reads could not fail, so on such short frames it
// can disagree with its own unoptimized code ("ip host A or B" on a frame cut inside the
// destination address); pcapfilter then follows the unoptimized code. pcapfilter's own
// optimizer only drops reloads of values already loaded and tests whose outcome is known, so
// it changes no verdict.
//
// # VLAN tags on a socket
//
// On an AF_PACKET socket the kernel strips the outer 802.1Q or 802.1ad tag before the socket
// filter runs and keeps it in the socket buffer. By default Compile compiles vlan as libpcap
// does for a live Linux capture: the first vlan primitive matches a frame whose tag was
// stripped (and whose VLAN id matches, for vlan N), read with the SKF_AD_VLAN_TAG_PRESENT and
// SKF_AD_VLAN_TAG ancillary loads; only a frame without a stripped tag is looked at for a tag
// in its bytes, in which case the offsets of later primitives move by 4 bytes at run time.
// Later vlan primitives match inner tags in the frame bytes. pcapfilter keeps the run-time
// shift in a scratch slot of its own. libpcap 1.10 has two bugs here that pcapfilter does not
// copy: its optimizer moves the shift ahead of the SKF_AD_VLAN_TAG_PRESENT test in some
// expressions ("ip or vlan and udp") and then misjudges tagged frames, and a comparison
// written before the first vlan can leave its temporary in the register the shift later uses
// ("(len > 100 or vlan) and tcp" looks for the IPv4 protocol at byte 123).
// [Config.TagsInFrame] compiles vlan for frames whose tags are all in their bytes instead
// (pcap files, frames in a TX slot), which golang.org/x/net/bpf's VM can run: it does not
// implement ancillary loads.
//
// # In an inline bridge
//
// With Suricata's behaviour, which afbridge follows, the filter sits on the capture socket: a
// frame it rejects is never captured, so in IPS (and TAP) copy mode it is never forwarded
// either. A bpf-filter on an inline pair is a drop rule for everything it does not match:
// "not port 22" drops SSH, and "tcp" drops ARP, which stops IPv4 on the link. Write the filter
// to accept what must cross the bridge.
//
// # What is refused
//
// Host and network names ([ErrHostname]: no DNS in a packet path), port and service names,
// gateway, and primitives of other link types or protocols (mpls, pppoes, geneve, protochain,
// decnet, …) are refused with an [*Error] naming the column; nothing is silently dropped from
// the expression. An expression that Compile can prove matches no frame ("ip and arp") is
// refused with [ErrRejectsAll], as tcpdump refuses it: on an inline bridge it would drop all
// traffic.
package pcapfilter
