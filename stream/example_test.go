package stream_test

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/afbridge/afbridge/stream"
)

// A worker keeps one Reassembler and a Stream per connection (in its flow table). Each segment's
// view holds the bytes before it, so "GET /forb" + "idden" is caught in the second segment,
// which is dropped along with the rest of the connection.
func Example() {
	pattern := []byte("forbidden")
	r, err := stream.New(&stream.Config{Tail: len(pattern) - 1})
	if err != nil {
		panic(err)
	}
	var s stream.Stream
	judge := func(d stream.Dir, tcp []byte) string {
		res := r.Segment(&s, d, tcp, 0)
		switch {
		case res.Drop:
			return "drop: " + res.Anomalies.String()
		case bytes.Contains(res.View, pattern):
			s.Block()
			return "drop: pattern in " + fmt.Sprintf("%q", res.View)
		}
		return "pass"
	}
	fmt.Println(judge(0, tcpSegment(100, 0x02, nil)))                 // SYN
	fmt.Println(judge(1, tcpSegment(900, 0x12, nil)))                 // SYN-ACK
	fmt.Println(judge(0, tcpSegment(101, 0x10, []byte("GET /forb")))) // the ACK, with data
	fmt.Println(judge(0, tcpSegment(110, 0x10, []byte("idden"))))
	fmt.Println(judge(0, tcpSegment(110, 0x10, []byte("idden")))) // its retransmission
	// Output:
	// pass
	// pass
	// pass
	// drop: pattern in "ET /forbidden"
	// drop: blocked
}

// tcpSegment builds a TCP header (ports 40000 -> 8080) and payload.
func tcpSegment(seq uint32, flags uint8, data []byte) []byte {
	b := make([]byte, 20+len(data))
	binary.BigEndian.PutUint16(b[0:], 40000)
	binary.BigEndian.PutUint16(b[2:], 8080)
	binary.BigEndian.PutUint32(b[4:], seq)
	b[12], b[13] = 5<<4, flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	copy(b[20:], data)
	return b
}

// A caller that matches views as frames (with the rules engine of an IPS, say) asks Frame to
// put the headers in front of the view: the view's bytes, up to 64 KiB, are not copied again.
func ExampleReassembler_Frame() {
	r, err := stream.New(&stream.Config{Tail: 3})
	if err != nil {
		panic(err)
	}
	var s stream.Stream
	r.Segment(&s, 0, tcpSegment(100, 0x02, nil), 0)
	r.Segment(&s, 1, tcpSegment(900, 0x12, nil), 0)
	r.Segment(&s, 0, tcpSegment(101, 0x10, []byte("GET /forb")), 0)
	res := r.Segment(&s, 0, tcpSegment(110, 0x10, []byte("idden")), 0)
	frame := r.Frame([]byte("[headers]"))
	fmt.Printf("%q\n%q\n", res.View, frame)
	// Output:
	// "orbidden"
	// "[headers]orbidden"
}
