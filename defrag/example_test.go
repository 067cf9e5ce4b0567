package defrag_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/afbridge/afbridge/defrag"
)

// An IPS worker keeps one Reassembler and asks it about every IP packet: fragments that do not
// complete a datagram are forwarded, and the completing one is judged with the whole datagram.
func Example() {
	r, err := defrag.New(nil) // BSD policy, default limits
	if err != nil {
		panic(err)
	}
	judge := func(pkt []byte) string {
		res := r.Packet(pkt, 0, time.Now())
		switch {
		case res.Drop:
			return "drop: " + res.Anomalies.String()
		case res.Status == defrag.Complete:
			if bytes.Contains(res.Datagram, []byte("forbidden")) {
				return "drop: the datagram holds the pattern"
			}
			return "pass: datagram clean"
		default:
			return "pass: " + res.Status.String()
		}
	}
	msg := append(bytes.Repeat([]byte{'.'}, 1476), "forbidden..."...)
	fmt.Println(judge(fragment(1, 0, true, msg[:1480])))
	fmt.Println(judge(fragment(1, 1480, false, msg[1480:])))
	// Output:
	// pass: held
	// drop: the datagram holds the pattern
}

// fragment builds an IPv4 UDP fragment between two benchmarking addresses (198.18.0.0/15).
func fragment(id uint16, off int, more bool, data []byte) []byte {
	p := make([]byte, 20+len(data))
	p[0], p[8], p[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], id)
	fo := uint16(off / 8)
	if more {
		fo |= 0x2000
	}
	binary.BigEndian.PutUint16(p[6:], fo)
	copy(p[12:], []byte{198, 18, 0, 1, 198, 18, 0, 2})
	copy(p[20:], data)
	return p
}
