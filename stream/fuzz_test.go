package stream

import (
	"bytes"
	"testing"
)

// FuzzSegment feeds arbitrary segments (split at 0xFF 0xFF; a segment's first byte picks the
// direction) through one Stream: no panic, bounds kept, results consistent.
func FuzzSegment(f *testing.F) {
	f.Add(append(append([]byte{0}, seg(1, 0, fSYN, 10, wsOpt(3), nil)...), append([]byte{0xff, 0xff, 1}, seg(9, 2, fSYN|fACK, 10, mssOpt(100), nil)...)...))
	f.Add(append([]byte{0}, seg(1, 0, fACK, 10, nil, []byte("abc"))...))
	f.Add(append(append([]byte{1}, seg(1, 0, fACK, 10, nil, []byte("abc"))...), append([]byte{0xff, 0xff, 1}, seg(10, 0, fACK, 10, nil, []byte("abc"))...)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := New(&Config{Tail: 5, Retain: 16, Hold: 64, HoldBuffers: 1})
		if err != nil {
			t.Fatal(err)
		}
		var s Stream
		for p := range bytes.SplitSeq(in, []byte{0xff, 0xff}) {
			if len(p) == 0 {
				continue
			}
			res := r.Segment(&s, Dir(p[0]), p[1:], int(p[0]>>4))
			if res.Drop != (res.Anomalies&DefaultDropOn != 0) {
				t.Fatalf("Drop %v for %v", res.Drop, res.Anomalies)
			}
			if res.New < 0 || len(res.View)-res.New > 5 || (res.View == nil) != (res.New == 0) {
				t.Fatalf("view of %d bytes, %d new", len(res.View), res.New)
			}
			if res.Segments < 1 || r.Counters().HoldsInUse > 1 {
				t.Fatalf("segments %d, holds %d", res.Segments, r.Counters().HoldsInUse)
			}
		}
		r.Release(&s)
		if r.Counters().HoldsInUse != 0 {
			t.Fatal("hold not released")
		}
	})
}

// FuzzReassemble cuts a byte stream into segments (overlapping, always with the true bytes),
// sends them in a fuzzed order from a fuzzed ISN, and re-sends the ones dropped as out of order
// (as a sender would): the new bytes of all views are the stream, byte for byte, and every
// view's tail is the bytes just before its new ones.
func FuzzReassemble(f *testing.F) {
	f.Add(uint32(1), uint16(3000), []byte{10, 20, 5, 30, 2})
	f.Add(uint32(0xffffff00), uint16(500), []byte{1, 1, 1, 1, 1, 1, 1, 1})
	f.Add(uint32(0xfffffff0), uint16(9000), []byte{200, 7, 3, 255, 90, 4, 4, 4, 4, 4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, isn uint32, size uint16, cuts []byte) {
		n := int(size)%20000 + 1
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*13 + i/256)
		}
		type piece struct{ off, end int }
		var ps []piece
		covered := 0
		for _, c := range cuts {
			if covered >= n || len(ps) >= 64 {
				break
			}
			off := max(0, covered-int(c>>4)*37)
			end := min(n, covered+1+int(c&15)*97)
			ps = append(ps, piece{off, end})
			covered = end
		}
		if covered < n {
			ps = append(ps, piece{covered, n})
		}
		for i := range ps {
			if len(cuts) > 0 {
				j := int(cuts[i%len(cuts)]) % len(ps)
				ps[i], ps[j] = ps[j], ps[i]
			}
		}
		const tail = 7
		r, err := New(&Config{Tail: tail, Retain: 1 << 16, Hold: 4096, HoldBuffers: 1})
		if err != nil {
			t.Fatal(err)
		}
		var s Stream
		r.Segment(&s, 0, seg(isn, 0, fSYN, 100, nil, nil), 0)
		r.Segment(&s, 1, seg(5, isn+1, fSYN|fACK, 100, nil, nil), 0)
		var got []byte
		for i := 0; i < len(ps) && i < 10000; i++ {
			p := ps[i]
			res := r.Segment(&s, 0, seg(isn+1+uint32(p.off), 6, fACK, 100, nil, data[p.off:p.end]), 0)
			if res.Anomalies&^(Retransmission|OutOfOrder|OutOfWindow) != 0 {
				t.Fatalf("piece [%d,%d) of %d: %v", p.off, p.end, n, res.Anomalies)
			}
			if res.Anomalies&OutOfOrder != 0 {
				ps = append(ps, p) // dropped: the sender sends it again
				continue
			}
			if res.New > 0 {
				k := len(res.View) - res.New
				if !bytes.Equal(res.View[:k], got[len(got)-k:]) || k != min(tail, len(got)) {
					t.Fatalf("tail of %d bytes is not the last inspected", k)
				}
				got = append(got, res.View[k:]...)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("inspected %d bytes, want the %d of the stream", len(got), n)
		}
		if r.Counters().HoldsInUse != 0 {
			t.Fatal("hold kept after every gap filled")
		}
	})
}
