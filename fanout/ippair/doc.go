// Package ippair is a fanout load balancer that keeps every fragment of a datagram, and both
// directions of a flow, on one member of a PACKET_FANOUT group without reassembling anything.
//
// The kernel's own flow hash ([fanout.Hash]) reads ports, so the first fragment of a datagram
// (which has them) and the later ones (which do not) can land on different members; the defrag
// flag ([fanout.FlagDefrag]) fixes that by reassembling the datagram, which changes the traffic an
// inline bridge forwards. This package's program hashes only the unordered pair {source,
// destination} of the IPv4 or IPv6 header, which every fragment carries, optionally mixed with the
// outer VLAN id. It is what Suricata's cluster_ebpf load balancer (ebpf/lb.c) does for IPS mode,
// written in Go with cilium/ebpf's asm package: no clang, no object file to ship.
//
// The program is a BPF_PROG_TYPE_SOCKET_FILTER for a [fanout.EBPF] group: [Load] it once, pass
// [Program.Group] (or [Program.FD] as [fanout.Group.ProgramFD]) to [fanout.Join] for every
// member, and [Program.Close] it when the group is set up or torn down; the kernel keeps its own
// reference for as long as the group exists.
//
// What is hashed, by EtherType after up to two VLAN tags in the frame's bytes (the outer tag is
// never in the bytes a fanout program sees, only in the skb's metadata):
//
//	IPv4 (0x0800)  source and destination address
//	IPv6 (0x86dd)  source and destination address
//	anything else  source and destination MAC address
//
// Each address is hashed on its own and the two hashes are added, so swapping source and
// destination gives the same value. With [Options.VLAN] the outer VLAN id (0 for untagged frames)
// is mixed in as well. A frame too short for the fields it needs gets 0, that is member 0.
//
// Because it never looks at ports, all flows between two hosts share a member; spread is by host
// pair, as in Suricata. Choose [fanout.Hash] when per-flow spread matters more than fragments.
package ippair
