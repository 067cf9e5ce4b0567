package stream

import (
	"encoding/binary"
	"strconv"
	"testing"
)

// BenchmarkInOrder is the per-segment cost of in-order data (65,160 bytes: a GSO super-frame):
// build the view (64-byte tail +
// payload) and retain it, with the receiver acknowledging every 8th segment (the ACK's cost is
// in the op). One op is one data segment.
func BenchmarkInOrder(b *testing.B) {
	for _, size := range []int{64, 1460, 65160} {
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			c := newConn(b, nil, 1, 2)
			c.handshake()
			d := seg(0, c.snext, fACK, 100, nil, make([]byte, size))
			ack := seg(c.snext, 0, fACK, 100, nil, nil)
			seq := c.cisn + 1
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				binary.BigEndian.PutUint32(d[4:], seq)
				if res := c.r.Segment(&c.s, c.cd, d, 0); res.New != size {
					b.Fatal(res.Anomalies)
				}
				seq += uint32(size)
				if i%8 == 7 {
					binary.BigEndian.PutUint32(ack[8:], seq)
					c.r.Segment(&c.s, 1-c.cd, ack, 0)
				}
			}
		})
	}
}

// BenchmarkOutOfOrder is a pair of 1,460-byte segments swapped: one held, one joining it.
// One op is the pair.
func BenchmarkOutOfOrder(b *testing.B) {
	c := newConn(b, nil, 1, 2)
	c.handshake()
	d := seg(0, c.snext, fACK, 100, nil, make([]byte, 1460))
	ack := seg(c.snext, 0, fACK, 100, nil, nil)
	seq := c.cisn + 1
	b.SetBytes(2 * 1460)
	b.ReportAllocs()
	for b.Loop() {
		binary.BigEndian.PutUint32(ack[8:], seq)
		c.r.Segment(&c.s, 1-c.cd, ack, 0)
		binary.BigEndian.PutUint32(d[4:], seq+1460)
		c.r.Segment(&c.s, c.cd, d, 0)
		binary.BigEndian.PutUint32(d[4:], seq)
		if res := c.r.Segment(&c.s, c.cd, d, 0); res.New != 2920 {
			b.Fatal(res.Anomalies)
		}
		seq += 2920
	}
}
