// Package flow gives verdict authors the flow view of a frame: the canonical, direction-free
// [Key] shared with the kernel fast path, a zero-allocation header parser ([Parse] into a
// caller-owned [Packet]) and a bounded, per-worker flow table ([Table]) with idle timeouts and
// flow-level verdicts.
//
// The package imports nothing else of afbridge, so a handler, the bridge and the eBPF fast path
// can all depend on it.
//
// The parser reads headers only. It never changes the frame, copies nothing and keeps no
// reference to it after it returns, so it works on frames of any size, GSO super-frames larger
// than the MTU included.
package flow
