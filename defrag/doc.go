// Package defrag reassembles IPv4 and IPv6 fragments for inspection, never for forwarding.
//
// An inline IPS forwards fragments as they arrive: the wire must stay as it was. What it must not
// do is judge a fragment alone, because after the first fragment there are no ports and a
// pattern can straddle two fragments. A [Reassembler] copies each fragment into buffers it owns
// and, when a fragment completes its datagram, hands the caller the whole datagram to inspect
// together with that completing fragment. Dropping the completing fragment makes the datagram
// undeliverable: the receiver already holds the others but never gets this one.
//
// Overlapping fragments are resolved by a target-based [Policy] (the default is [BSD], as in
// Suricata), and an overlap whose bytes differ from what is already held is reported as
// [OverlapDiffers] whatever the policy: some receiver will see other bytes than the IPS. That,
// tiny fragments and every exhausted limit are [Anomaly] bits, counted in [Counters], and the
// ones in [Config.DropOn] set [Result.Drop].
//
// One Reassembler serves one worker: it takes no lock and allocates nothing per fragment once its
// buffers exist. Time is the caller's clock, passed to every call, so expiry needs no goroutine.
package defrag
