// Package peer builds an inline layer-2 bridge out of AF_PACKET sockets: every frame received on
// interface A leaves through interface B and back, unless the program's verdict drops it. It is
// Suricata's AF_PACKET IPS mode (copy-mode ips|tap, copy-iface, equal threads, one cluster-id per
// side) as a Go package.
//
// A [Config] names the two sides ([Side]: interface, copy mode, fanout group id, ring sizes) and,
// once, what both sides must share: the number of workers ([Config.Threads]), the fanout mode and
// defragmentation. Each side opens Threads sockets that join one fanout group, in index order.
// Worker i owns socket A[i] and socket B[i] and serves both directions: it copies each frame from
// one socket's RX ring into the other socket's TX ring slot (restoring the VLAN tag the kernel
// stripped), asks the worker's [verdict.Handler] about the frame in place, and commits or
// discards the slot; one send flushes the whole batch. The kernel's fanout hash is symmetric, so
// both directions of a flow meet on the same worker, in order: a stateful verdict sees whole
// flows without a lock. No frame is ever forwarded truncated or corrupt: with PACKET_VNET_HDR on
// both sides the kernel finishes offloaded checksums and segments GSO super-frames on transmit;
// frames that cannot be sent intact are counted, never mangled.
//
// The verdict's [verdict.Factory] is asked for one Handler per worker by [Bridge.Start], on the
// caller's goroutine, before any socket opens and with no lock held. A Handler that implements
// [verdict.Ticker] is ticked on its worker's goroutine every [Config.TickInterval], traffic or
// not, to expire state; one that implements [verdict.Closer] is closed when the bridge closes or
// a [verdict.Switch] replaces it. A frame judged [verdict.Bypass] is forwarded as on Pass and
// counted in [Counters.Bypassed]; with [Config.Bypass] on, the kernel fast path then forwards the
// rest of its flow.
//
// While it runs, a supervisor watches both ports. Link state (up, with carrier) is tracked and
// counted in [Stats.A] and [Stats.B], and [Config.OnLinkDown] decides what a port going down means:
// fail-open keeps forwarding what can still be forwarded, fail-closed forwards nothing either
// way. Frames committed to the TX ring of a port that goes down are taken back and counted as TX
// errors, never sent late. An interface that disappears is waited for and bound again by name,
// with bounded back-off, or, with [Config.ExitOnRemove], ends Run with [ErrInterfaceRemoved]. The
// kernel keeps every socket in its fanout group across a flap, in creation order, so flows keep
// their worker. Whatever happens, the counters add up: per direction, Received = Forwarded +
// Dropped + Truncated + Malformed + Oversize + TXErrors once the bridge is idle.
//
// Workers are goroutines that sleep in poll(2) when idle and, under load, make only non-blocking
// raw syscalls, so a busy worker keeps its P and its thread: run with GOMAXPROCS at least the
// number of workers (plus one for the rest of the program) for each to get a CPU. Workers that
// share a P take turns every 1024 frames (or idle rounds, when busy-polling), at best.
// [Config.CPUs] pins each worker's thread to a CPU.
//
// Everything happens in the network namespace of the OS thread that calls Start (Validate and
// Preflight look there too); see [Config].
//
// [Validate] refuses configurations that cannot work, each problem a [*ConfigError]; [Preflight]
// reports what makes an IPS silently ineffective (a port enslaved to a kernel bridge, IP addresses
// or forwarding on the ports, a port without carrier, offloads that produce frames above the MTU).
package peer
