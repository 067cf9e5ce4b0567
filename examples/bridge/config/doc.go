// Package config loads the af-packet section of a Suricata-style YAML file
// for the example bridge binary (bridge -c FILE).
//
// The file may be a whole suricata.yaml, with its "%YAML 1.1" directive,
// its "---" marker and dozens of other sections: only af-packet is read,
// and every other top-level section is listed in [File.Notes] so that a
// reader can see what was ignored. Keys inside af-packet keep Suricata's
// meaning and defaults, including the special "interface: default" entry
// whose values fill in what the other entries leave unset.
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
