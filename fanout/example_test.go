//go:build linux

package fanout_test

import (
	"fmt"
	"log"
	"net"
	"os"

	"github.com/afbridge/afbridge/fanout"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// openPacket opens an AF_PACKET socket bound to ifi for all protocols, the state Join needs. An
// *afpacket.Conn would do as well: Join takes any syscall.Conn.
func openPacket(ifi *net.Interface) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("bind", err)
	}
	return os.NewFile(uintptr(fd), "packet:"+ifi.Name), nil
}

// Four sockets share the traffic of eth0 by flow, as Suricata's cluster_flow does. They join
// one at a time: member i is the i-th socket to join. Needs root and an eth0 (TestExamples
// runs the examples that do on a veth named eth0).
func Example() {
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		log.Fatal(err)
	}
	mode, flags, err := fanout.ParseClusterType("cluster_flow")
	if err != nil {
		log.Fatal(err)
	}
	group := fanout.Group{ID: 99, Mode: mode, Flags: flags | fanout.FlagDefrag}
	if fanout.Supported(fanout.FlagIgnoreOutgoing) {
		group.Flags |= fanout.FlagIgnoreOutgoing // else skip PACKET_OUTGOING frames when reading
	}
	for i := range 4 {
		s, err := openPacket(ifi)
		if err != nil {
			log.Fatal(err)
		}
		defer s.Close() // closing a socket is how it leaves the group
		if _, err := fanout.Join(s, group); err != nil {
			log.Fatal(err) // says why, e.g. that group 99 exists with another mode
		}
		fmt.Printf("member %d joined %s\n", i, group)
	}
}

// With FlagUniqueID the kernel picks an unused id; the other members join that id without the
// flag.
func ExampleJoin_uniqueID() {
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		log.Fatal(err)
	}
	var g fanout.Group
	for i := range 2 {
		s, err := openPacket(ifi)
		if err != nil {
			log.Fatal(err)
		}
		defer s.Close()
		if i == 0 {
			g, err = fanout.Join(s, fanout.Group{Mode: fanout.LB, Flags: fanout.FlagUniqueID})
		} else {
			_, err = fanout.Join(s, g)
		}
		if err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("kernel-chosen id:", g.ID)
}

// A CBPF group steers by a classic BPF program: here every IPv4 frame to member 1 and the rest
// to member 0. The program is the group's; SetProgram on any member replaces it for all.
func ExampleSetProgram() {
	ifi, err := net.InterfaceByName("eth0")
	if err != nil {
		log.Fatal(err)
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},                         // EtherType
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 1}, // IPv4?
		bpf.RetConstant{Val: 1},
		bpf.RetConstant{Val: 0},
	}
	for i := range 2 {
		s, err := openPacket(ifi)
		if err != nil {
			log.Fatal(err)
		}
		defer s.Close()
		g := fanout.Group{ID: 100, Mode: fanout.CBPF}
		if i == 0 {
			g.Program = prog
		}
		if _, err := fanout.Join(s, g); err != nil {
			log.Fatal(err)
		}
		if i == 1 {
			// Later: everything to member 0.
			if err := fanout.SetProgram(s, []bpf.Instruction{bpf.RetConstant{Val: 0}}); err != nil {
				log.Fatal(err)
			}
		}
	}
}

func ExampleParseClusterType() {
	for _, name := range []string{"cluster_flow", "cluster_qm", "", "cluster_fast"} {
		mode, flags, err := fanout.ParseClusterType(name)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%q: mode %s, flags %s\n", name, mode, flags)
	}
	// Output:
	// "cluster_flow": mode hash, flags none
	// "cluster_qm": mode qm, flags none
	// "": mode hash, flags defrag
	// fanout: unknown cluster-type "cluster_fast": want one of cluster_round_robin, cluster_flow, cluster_rollover, cluster_cpu, cluster_qm, cluster_random, cluster_ebpf
}
