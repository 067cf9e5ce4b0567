//go:build linux

package afpacket_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/afbridge/afbridge/afpacket"
	"golang.org/x/net/bpf"
)

// Open a promiscuous socket that sees only IPv4 frames (the filter is attached before the socket
// is bound, so not even the first frame slips through unfiltered), read a few frames, then report
// the kernel's counters. It needs root and an eth0 (TestExamples runs it on a veth named eth0).
func Example() {
	ipv4Only := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	}
	c, err := afpacket.Listen("eth0", &afpacket.Config{Promiscuous: true, Filter: ipv4Only})
	if err != nil {
		log.Fatal(err) // e.g. "... operation not permitted: AF_PACKET sockets need CAP_NET_RAW ..."
	}
	defer c.Close()

	buf := make([]byte, 65536)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	for range 3 {
		n, info, err := c.ReadMsg(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d bytes, packet type %d\n", n, info.PktType)
	}
	st, _ := c.Stats()
	fmt.Printf("kernel: %d frames, %d dropped\n", st.Packets, st.Drops)
}
