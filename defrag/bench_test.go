package defrag

import (
	"testing"
	"time"
)

// BenchmarkNotFragment is the cost every unfragmented packet pays.
func BenchmarkNotFragment(b *testing.B) {
	r := newR(b, nil)
	p := frag4(1, 17, 0, false, payload(64))
	b.ReportAllocs()
	for b.Loop() {
		r.Packet(p, 0, t0)
	}
}

// BenchmarkReassemble is one 3,000-byte IPv4 datagram in three fragments per op (a new datagram
// each op: the ID changes).
func BenchmarkReassemble(b *testing.B) {
	r := newR(b, nil)
	data := payload(3000)
	frags := [][]byte{
		frag4(0, 17, 0, true, data[:1480]),
		frag4(0, 17, 1480, true, data[1480:2960]),
		frag4(0, 17, 2960, false, data[2960:]),
	}
	now := t0
	id := uint16(0)
	one := func() {
		id++
		now = now.Add(time.Millisecond)
		for _, f := range frags {
			f[4], f[5] = byte(id>>8), byte(id)
			if res := r.Packet(f, 0, now); res.Drop {
				b.Fatal(res.Anomalies)
			}
		}
	}
	// Steady state: the table full of remembered datagrams, buffers allocated.
	for range 4096 {
		one()
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		one()
	}
}
