// Command bridge is an inline IPS bridge built on afbridge: it forwards every frame between two
// interfaces, through AF_PACKET rings, and drops, rejects or logs frames by Suricata-style rules.
//
// Usage:
//
//	bridge -i IFACE_A:IFACE_B [-threads N] [-mode ips|tap] [-rules FILE] [-eve FILE] [-stats DURATION] [-metrics ADDR] [-bypass-after BYTES]
//	bridge -c FILE [-i IFACE_A:IFACE_B] [-rules FILE] [-eve FILE] [-stats DURATION] [-metrics ADDR] [-bypass-after BYTES]
//	bridge --demo
//
// -i names the two interfaces to bridge; -threads sets the number of workers (default 1), each
// owning one socket on each side; -mode ips (the default) drops what the rules drop, -mode tap
// forwards everything and counts would-drops.
//
// -c reads a Suricata-style YAML file, for example an existing suricata.yaml (see package
// config): every pair of af-packet entries whose copy-iface name each other, with copy-mode ips
// or tap, becomes a bridge, and all of them run. With -i as well, only the bridge between those
// two interfaces runs. Suricata's keys keep their meaning: interface, threads, cluster-id,
// cluster-type, defrag, copy-mode, copy-iface, use-mmap, mmap-locked, tpacket-v3, ring-size
// (frames per socket; with tpacket-v3 it sizes the block count as Suricata does), block-size,
// block-timeout, buffer-size, disable-promisc and bpf-filter. use-mmap: no is refused: the
// bridge forwards through mmap'd rings only. The other keys Suricata reads are accepted, and
// each value the bridge does not honour as written is noted once, saying what it does instead:
//
//   - checksum-checks (any of Suricata's values) only matters to an IDS: the bridge forwards
//     frames as they are and the kernel finishes offloaded checksums;
//   - bpf-filter is compiled in pure Go (package pcapfilter) and attached to the capture
//     sockets, as in Suricata's IPS mode: a frame the filter rejects is never captured, so it
//     is neither inspected nor forwarded (a note says so for inline entries); an expression
//     that does not compile exits 2 with the file, the line and the column;
//   - cluster-type cluster_ebpf runs the bridge's built-in IP-pair fanout program (package
//     fanout/ippair; ebpf-lb-file is not loaded), the symmetric address-pair hash of Suricata's
//     IPS load balancer; cluster_rollover is cluster_flow, as in Suricata;
//   - v2-block-size, use-emergency-flush, rollover, the hardware timestamp keys, xdp-mode,
//     xdp-filter-file, xdp-cpu-redirect, ebpf-filter-file, pinned-maps,
//     pinned-maps-name and use-percpu-hash have no counterpart in the bridge;
//   - bypass: yes turns on the kernel fast path (see flow bypass below).
//
// defrag is off by default for inline pairs (Suricata's IPS example sets defrag: no too): with
// it, the kernel reassembles IPv4 fragments before the bridge sees them and they would leave
// reassembled. Without it, cluster_flow hashes IPv4 fragments by their addresses alone (the
// kernel reads no ports from them) and the rest of their flow by addresses and ports, so with
// several threads the fragments may meet a different worker than their flow, which a stateful
// rule then misses. cluster-type: cluster_ebpf is the fix: the IP-pair fanout keeps every
// fragment with its flow and lets it leave as it came. It is not the default because loading
// its program needs CAP_BPF (or CAP_SYS_ADMIN) at start, beyond the two capabilities the
// bridge otherwise needs.
//
// From the rest of the file the bridge takes the rule file (rule-files, relative to
// default-rule-path; one file: the first, with a note if there are more; a missing one is
// noted and the bridge runs without rules, as Suricata does) and the EVE file (the first
// enabled eve-log output's filename, relative to default-log-dir) and the -stats interval (the
// stats section's interval when it is enabled, so stats lines and EVE stats events come as
// often as Suricata's), each unless -rules, -eve or -stats is given; exception-policy, mapped onto the failure policies of a verdict that panics and
// of a port that goes down (drop-packet, drop-flow, reject and auto, which Suricata resolves
// to drop-flow in IPS mode: fail-closed; pass-packet, pass-flow, bypass and ignore:
// fail-open; no key: fail-open); and, when threading.set-cpu-affinity is yes, the CPUs of
// threading.cpu-affinity's worker-cpu-set (numbers, ranges such as "2-5", or "all"), to which
// the workers are pinned, worker i to the i-th CPU, round robin. Other sections are listed in one note.
// Only a value Suricata itself would not accept stops the bridge: it exits 2 naming the
// file, the line and what is expected.
//
// -rules loads a rule file (see package rules for the language): drop discards the frame, reject
// discards it and resets the TCP connection at both ends (or answers UDP with an ICMP port
// unreachable), alert logs and forwards, pass forwards and overrides the others. In tap mode
// nothing is dropped or reset: drop and reject rules are logged as "allowed" and counted as
// would-drops. -eve appends one Suricata EVE JSON alert event a line to FILE ("-" is standard
// output).
//
// -stats prints, every DURATION, a line per direction with frames and bits per second,
// forwarded, dropped, would-drop, kernel packets and kernel drops over the interval, and the
// other drop reasons when there were any (port-down, tx-error, truncated, malformed, oversize,
// verdict-panic), then a line with each port's link state and its downs, removals and re-binds
// since the start. With -eve it also writes, every DURATION and once at the end, an EVE event
// laid out like Suricata's stats event: event_type "stats", stats.uptime,
// stats.capture.kernel_packets and kernel_drops, stats.decoder.pkts and bytes, and stats.ips
// with accepted, blocked (every frame that did not leave, rejected ones included), rejected
// and drop_reason, all totals since the start. -metrics serves the counters as Prometheus
// metrics on http://ADDR/metrics, labelled by direction and worker, with the ports' link state
// and history (afbridge_port_up, afbridge_port_downs_total, ...) and every frame that did not
// leave under one reason (afbridge_drops_total{reason=...}); a port alone (:9101) listens on
// 127.0.0.1. Rejects are rate-limited per worker to 1000 frames a second with bursts of 50 (Linux's own
// limit for ICMP errors) and never wait for a full port: both are counted. The EVE path must be
// a regular file unless -eve-allow-special.
//
// Flow bypass (package bypass): with -bypass-after BYTES, a flow that has passed BYTES bytes,
// both directions together, without an alert, a drop or an inspection anomaly is bypassed: the
// worker returns verdict.Bypass and the kernel forwards the rest of the flow at kernel speed,
// uninspected, until it has been idle for a minute, a TCP FIN or RST ends it, or SIGHUP
// withdraws it. -bypass-after 0 bypasses every flow at its first passed frame; without the
// flag the fast path is not loaded. A pass rule with the bypass option bypasses the flows it
// passes, and turns the fast path on by itself, as does bypass: yes in an af-packet entry of -c
// (the fast path cannot be combined with defrag, which is then turned off with a note).
// Suricata's stream.bypass and TLS encryption-handling: bypass are not honoured. In tap mode a
// bypassed flow is still moved to the fast path: inspection stops, forwarding goes on. Where the
// kernel or the privileges do not allow the fast path, the bridge says so once and Bypass means
// Pass. Once bypassed, a flow's TCP stream is no longer reassembled: when it comes back, its
// frames are matched one by one. The -stats lines, the final stats and the afbridge_bypass_*
// metrics count the fast path's flows and frames; the frames it forwards are in no direction's
// received count, so received = forwarded + dropped + ... still holds.
//
// Started as root, once every socket is open the bridge runs as nobody (or -run-as USER[:GROUP],
// or run-as: in -c) with CAP_NET_RAW and CAP_NET_ADMIN only (and CAP_BPF with flow bypass, to
// attach the fast path to a re-created interface), no_new_privs and a seccomp allow-list, on
// every thread; this needs a build without cgo (CGO_ENABLED=0). The run-as user
// must be able to read the rules and, for log rotation, write the EVE log's directory.
//
// With rules loaded, each worker inspects what the receivers will see, not frame by frame (the
// frames themselves leave unchanged): IPv4 and IPv6 fragments are reassembled (package defrag)
// and the fragment that completes a datagram is judged with all of it, so rules with ports match
// every datagram and content after the first fragment is found; TCP segments are reassembled per
// direction (package stream) and each is matched together with the bytes before it, so content
// split over segments, sent out of order or overlapped is found in the segment that completes it.
// A drop or reject drops the rest of the flow, both ways (flows in a flow.Table, 16,384 per
// worker). The rules' flow: keyword sees the flow's direction and state. What inspection drops on
// its own is logged as an alert with a built-in signature: 2900001 fragments overlapping with
// different data, 2900002 invalid, tiny-first or over-limit fragments, 2900003 TCP segments
// overlapping inspected data with different data, 2900004 segments that cannot be inspected (out
// of order beyond the hold, urgent data, an unverifiable retransmission), 2900005 IPv6 extension
// header chains over flow.MaxExtHeaders. The final counters add a line for inspection. Memory is
// bounded per worker: out-of-order data up to 1 MiB past a gap in up to 32 directions at once,
// and up to 4 MiB of unacknowledged inspected bytes a direction (64 MiB in all) to check
// retransmissions against.
//
// Once every socket is open the bridge prints, on standard error, any preflight findings, then one
// line per bridge:
//
//	bridging eth0 <-> eth1 (ips, 2 workers)
//
// Signals: SIGINT and SIGTERM stop the bridge gracefully (frames in flight are sent), print the
// final counters and exit 0. SIGHUP reloads the rule file without losing a frame, then withdraws
// every bypassed flow from the fast path (the new rules may drop it), and reopens the EVE file
// (for log rotation); a rule file with an error is refused with its file:line:col and
// the rules already loaded stay in force.
//
// Exit status: 0 after a clean stop; 2 for bad flags, configuration or rules (the message names
// the file, line and reason); 1 for a failure at run time, such as missing privileges (the bridge
// needs CAP_NET_RAW and CAP_NET_ADMIN).
//
// --demo needs root and nothing else: it builds three network namespaces (client, bridge,
// server) joined by veth pairs, addressed from 198.18.0.0/15 only, bridges the two middle ports
// (with this binary as a child process, which drops its privileges as above),
// and shows a ping and an HTTP transfer through the bridge, a rule loaded while it runs that
// blocks one request while others pass, the EVE event it logs and the final counters; then it
// removes everything it created, also after Ctrl-C or a failure.
package main
