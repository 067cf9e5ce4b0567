// Package config loads a Suricata-style YAML file for the example bridge
// binary (bridge -c FILE).
//
// The file may be a whole suricata.yaml, with its "%YAML 1.1" directive,
// its "---" marker and dozens of sections. The bridge reads:
//
//   - af-packet: its entries, with Suricata's keys, meanings and defaults,
//     including the special "interface: default" entry whose values fill in
//     what the other entries leave unset. Every key Suricata reads there is
//     accepted; those the bridge has no use for (v2-block-size,
//     use-emergency-flush, rollover, the hardware timestamp, XDP, eBPF
//     filter and pinned-map keys) are checked and, when their value asks
//     for something the bridge does not do, noted once at their line with
//     what the bridge does instead. bypass is read into [Interface].Bypass. cluster_rollover is deprecated and
//     read as cluster_flow, as Suricata does. An unknown key is an error, to
//     catch typos.
//   - include: the files named are read in order, relative to the
//     including file's directory, as if their sections stood where the
//     include is; a later af-packet section takes the place of an earlier
//     one. Nesting is bounded (8 deep), a file that includes itself is
//     refused, and only regular files are read.
//   - default-rule-path and rule-files, default-log-dir and the first
//     enabled eve-log output's filename, the stats interval, threading.cpu-affinity's
//     worker-cpu-set (when set-cpu-affinity is yes) and exception-policy;
//     see [File].
//
// Every other top-level section is listed in one note.
//
// Unlike Suricata, defrag defaults to off for entries with a copy-mode:
// with it, the kernel hands the bridge reassembled IPv4 datagrams, which
// would leave the bridge reassembled, not as they came (see
// [Interface.Defrag]).
//
// Loading is in two steps. [Parse] (or [Load]) checks syntax and types and
// resolves every entry into an [Interface]; [File.Bridges] then pairs
// entries whose copy-iface name each other into [Bridge] values and checks
// what an inline pair needs, such as equal thread counts. Both steps report
// every problem they find, each as an [*Error] that carries the file name
// and line.
//
// The package does not import afbridge: mapping a [Bridge] onto the
// library's configuration is the binary's job.
package config
