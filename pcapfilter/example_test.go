package pcapfilter_test

import (
	"fmt"

	"github.com/afbridge/afbridge/pcapfilter"
	"golang.org/x/net/bpf"
)

// Compile an operator's bpf-filter and run it on a frame. In a bridge, the program goes into
// the socket's filter (peer.Side.Filter); frames it rejects are neither captured nor forwarded.
func Example() {
	prog, err := pcapfilter.Compile("tcp dst port 80 and not src net 198.18.1.0/24", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	// An Ethernet frame: IPv4 198.18.0.1 -> 198.18.0.2, TCP 40000 -> 80.
	frame := []byte{
		0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, // Ethernet
		0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4
		0x9c, 0x40, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0, // TCP SYN
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		fmt.Println(err)
		return
	}
	n, _ := vm.Run(frame)
	fmt.Println("accepted:", n != 0)

	_, err = pcapfilter.Compile("host www.example.com", nil)
	fmt.Println(err)
	// Output:
	// accepted: true
	// pcapfilter: "host www.example.com" column 6: "www.example.com" is not an IP or MAC address: host names are not resolved (no DNS in a packet path); write the address
}
