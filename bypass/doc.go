// Package bypass is the kernel fast path for flows a verdict is done with: a tcx ingress program
// on each bridged port forwards their frames to the other port at kernel speed, and an eBPF socket
// filter on every fanout member keeps those frames out of the bridge's rings. Both programs are
// written in Go with cilium/ebpf's asm package: no clang, no object files, no cgo.
//
// # Pieces
//
//   - The flow map, an LRU hash keyed by the canonical flow key ([flow.Key]),
//     bounded by [Config].MaxFlows. The value holds last-seen time, frames and bytes per direction
//     and the handover state.
//   - The port map, ingress ifindex to peer ifindex, so one tc program serves both ports and a
//     re-created port only needs [Path.Attach] again.
//   - Per-CPU counters, summed by [Path.Stats].
//   - The tc program, attached by [Path.Attach], and one socket filter per fanout member, built by
//     [Path.Filter], which carries the user's classic BPF filter translated to eBPF in front.
//
// # What the kernel does with a frame
//
// AF_PACKET taps see a received frame before tc ingress, on the same CPU, in the same softirq.
// The socket filter of the fanout member the frame goes to decides; it leaves its decision in the
// skb's control block, which survives to tc ingress, and tc follows it. A frame the filter let into
// the ring is never redirected, and a frame it kept out is always redirected, so no frame is sent
// twice or lost, whatever the map says by the time tc runs.
//
// # Handover
//
// [Path.Add] puts a flow in the map in the handing-over state. Frames of it may still sit in the
// member's ring (or, after the worker took them, in its TX ring), so the next frame must not take
// the fast path yet or it would overtake them. The filter numbers the frames it lets into each
// member's ring (the admitted count), and records in the flow, per direction, the number of its
// last such frame. The first frame after Add always goes to the ring, so that number covers every
// frame of the flow admitted before Add as well.
//
// While [Filter.Wants] says a flow is waiting, the worker calls [Filter.Observe] after taking a
// batch, before sending it, and [Filter.Settle] once it is sent. Observe compares the admitted
// count with the socket's PACKET_STATISTICS: when the kernel has queued (or dropped) exactly as
// many frames as the filter admitted, no frame is between the filter and the ring, so once the
// worker has taken and flushed the frames queued until then, every frame admitted before is dealt
// with, and Settle publishes the admitted count.
// A frame of a handing-over flow takes the fast path, and makes its direction live, only when the
// published count has reached the flow's last frame; otherwise it goes to the ring and becomes
// the last frame. A flow therefore hands over at the first pause in its traffic long enough for
// the bridge to catch up with it. While the ring overflows, frames of flows handing over are shed
// rather than queued (see [ShedHold]), so that a flood leaves the bridge too.
//
// Expiry, eviction and withdrawal need no such care: they only send frames back to the ring,
// behind the ones tc already forwarded.
//
// # Limits
//
// The order guarantee holds for the frames of one flow and direction that the kernel delivers on
// one CPU after another, which RSS and veth do, and it is the order in which frames leave the
// bridge's egress port. Beyond the port, frames sent from two CPUs can still swap: veth queues a
// frame on the backlog of the CPU that sent it, and a NIC with several TX queues may put the
// redirected frames on another queue than the bridge's. Another eBPF socket filter on the same port
// that reads skb->cb clears the mark between our filter and tc; a frame so affected is redirected
// only if its flow is live.
package bypass
