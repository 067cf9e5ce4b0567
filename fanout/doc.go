// Package fanout joins AF_PACKET sockets to PACKET_FANOUT groups, so that the kernel spreads the
// frames of one interface over several sockets instead of copying every frame to each of them.
//
// A group is named by a 16-bit ID within a network namespace (Suricata's cluster-id). The first
// socket to join an ID creates the group with its Mode and Flags; every later member must bring
// the same mode, flags, bound interface and protocol, or the kernel refuses it with EINVAL. Join
// explains such a refusal, naming the existing group's settings when the kernel lets it see them.
//
// Modes and flags are different things and have different types: a Mode (Hash, LB, CPU,
// Rollover, Random, QM, CBPF, EBPF) picks the member of each frame, and Flags (FlagDefrag,
// FlagRollover, FlagUniqueID, FlagIgnoreOutgoing) change how the group behaves whatever its mode.
//
// Package [github.com/afbridge/afbridge/fanout/ippair] provides an EBPF program that keeps every
// fragment of a datagram, and both directions of a flow, on one member without FlagDefrag.
//
// # Member order
//
// The kernel keeps a group's members in an array, in the order they joined, and every mode picks
// an index into it: Hash takes the symmetric flow hash scaled onto the member count
// (reciprocal_scale(__skb_get_hash_symmetric(skb), n)), LB counts round robin, CBPF and EBPF take
// the program's return value modulo n. Because the hash is symmetric, both directions of a flow
// get the same index in two groups of equal size, which is what lets a bridge pair socket i of
// one interface with socket i of the other. Join sockets one at a time, in index order.
//
// The order does not survive everything. When a member is closed, the kernel moves the last
// member into its slot. When the interface goes down, every member is unhooked; when it comes back
// up, the kernel hooks them in again in the order of the namespace's socket list (the order in
// which the sockets were created), not the order in which they joined. Create the sockets in
// index order as well, and the order is the same after a link flap.
//
// # Leaving
//
// There is no leave operation: a socket belongs to one group until it is closed, and closing it
// is how it leaves. Rejoining (another group, or the same one after a change of settings) needs a
// new socket.
package fanout
