package config_test

import (
	"errors"
	"fmt"

	"github.com/afbridge/afbridge/examples/bridge/config"
)

func Example() {
	yaml := []byte(`%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: "[10.0.0.0/8]"

af-packet:
  - interface: eth0
    copy-mode: ips
    copy-iface: eth1
  - interface: eth1
    copy-mode: tap
    copy-iface: eth0
  - interface: default
    threads: 2
    defrag: no
    use-mmap: yes
`)
	f, err := config.Parse(yaml, "suricata.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range f.Notes {
		fmt.Println("note:", n)
	}
	bridges, err := f.Bridges()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, b := range bridges {
		fmt.Printf("%s -> %s: %s, %d threads\n", b.A.Name, b.B.Name, b.AToB, b.A.Threads)
		fmt.Printf("%s -> %s: %s, %d threads\n", b.B.Name, b.A.Name, b.BToA, b.B.Threads)
	}
	// Output:
	// note: suricata.yaml: not used by the bridge: vars (it reads af-packet, include, run-as, default-rule-path, rule-files, default-log-dir, outputs, stats, threading, exception-policy)
	// eth0 -> eth1: ips, 2 threads
	// eth1 -> eth0: tap, 2 threads
}

func ExampleFile_Bridges_errors() {
	yaml := []byte(`af-packet:
  - interface: eth0
    threads: 2
    copy-mode: ips
    copy-iface: eth1
  - interface: eth1
    threads: 4
    copy-mode: ips
    copy-iface: eth0
  - interface: eth2
    copy-mode: ips
`)
	f, err := config.Parse(yaml, "suricata.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = f.Bridges()
	// Every problem is reported, one per line, each an *Error.
	fmt.Println(err)
	var cerr *config.Error
	if errors.As(err, &cerr) {
		fmt.Println("first at line", cerr.Line)
	}
	// Output:
	// suricata.yaml:2,6: threads differ: eth0 has 2, eth1 has 4; an IPS pair needs equal threads so both directions of a flow meet on one worker
	// suricata.yaml:10: eth2 has copy-mode ips but no copy-iface
	// first at line 2
}
