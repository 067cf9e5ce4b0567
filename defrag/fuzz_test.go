package defrag

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// FuzzPacket feeds arbitrary packets, split from the input at 0xFF 0xFF markers, through one
// Reassembler with small limits: no panic, limits kept, results consistent.
func FuzzPacket(f *testing.F) {
	f.Add(frag4(1, 17, 0, true, payload(16)))
	f.Add(append(append(frag4(1, 6, 8, false, payload(8)), 0xff, 0xff), frag4(1, 6, 0, true, payload(8))...))
	f.Add(frag6(1, 17, 2, 8, true, payload(8)))
	f.Add(append(append(frag6(2, 58, 0, 0, true, payload(8)), 0xff, 0xff), frag6(2, 58, 0, 8, false, payload(9))...))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := New(&Config{MaxDatagrams: 4, MaxFragments: 6, MaxMemory: classSize[2] + classSize[1], MinFragment: 8, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		for p := range bytes.SplitSeq(in, []byte{0xff, 0xff}) {
			now = now.Add(100 * time.Millisecond)
			res := r.Packet(p, 0, now)
			if res.Drop != (res.Anomalies&DefaultDropOn != 0) {
				t.Fatalf("Drop %v for %v", res.Drop, res.Anomalies)
			}
			if (res.Status == Complete) != (res.Datagram != nil) {
				t.Fatalf("status %v with datagram of %d bytes", res.Status, len(res.Datagram))
			}
			if d := res.Datagram; d != nil {
				if len(d) < 20 || len(d) > MaxHeader+maxPayload {
					t.Fatalf("datagram of %d bytes", len(d))
				}
				if d[0]>>4 == 4 && (binary.BigEndian.Uint16(d[2:]) != uint16(len(d)) || checksum(d[:int(d[0]&15)*4]) != 0) {
					t.Fatalf("bad IPv4 header % x", d[:20])
				}
			}
			if r.Memory() > classSize[2]+classSize[1] || r.Len() > 4 {
				t.Fatalf("limits: memory %d, datagrams %d", r.Memory(), r.Len())
			}
		}
	})
}

// FuzzReassemble cuts a datagram into fragments (possibly overlapping, always with the true
// bytes) and sends them in a fuzzed order: the result is the datagram, byte for byte, under
// every policy, and no overlap is reported as differing.
func FuzzReassemble(f *testing.F) {
	f.Add(uint16(3000), []byte{10, 20, 5, 30, 2})
	f.Add(uint16(100), []byte{1, 1, 1, 1, 1, 1, 1, 1})
	f.Add(uint16(9000), []byte{200, 7, 3, 255, 90, 4, 4, 4, 4, 4})
	f.Fuzz(func(t *testing.T, size uint16, cuts []byte) {
		n := int(size)%20000 + 9
		data := payload(n)
		type piece struct{ off, end int }
		var ps []piece
		// Each cut byte gives a piece: start (a multiple of 8 at or before the covered end,
		// so pieces overlap) and a length in 8-byte units.
		covered := 0
		for i, c := range cuts {
			if covered >= n || len(ps) >= 40 {
				break
			}
			back := int(c>>5) * 8
			off := max(0, (covered-back)/8*8)
			end := min(n, off+(int(c&31)+1)*8*(i%3+1)*4)
			if end <= covered && end < n {
				end = min(n, covered+8)
			}
			if off == 0 && end == n {
				end = (n - 1) / 8 * 8 // a whole datagram is not a fragment
			}
			ps = append(ps, piece{off, end})
			covered = max(covered, end)
		}
		if covered < n {
			off := covered / 8 * 8
			if off == 0 {
				ps = append(ps, piece{0, 8})
				off = 8
			}
			ps = append(ps, piece{off, n})
		}
		// Fuzzed order: rotate by the first cut and interleave.
		order := make([]int, len(ps))
		for i := range order {
			order[i] = i
		}
		if len(cuts) > 0 {
			for i := range order {
				j := int(cuts[i%len(cuts)]) % len(order)
				order[i], order[j] = order[j], order[i]
			}
		}
		for p := BSD; p <= Solaris; p++ {
			r, err := New(&Config{Policy: p, MinFragment: -1, MaxFragments: 64})
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for k, i := range order {
				pc := ps[i]
				res := r.Packet(frag4(9, 17, pc.off, pc.end < n, data[pc.off:pc.end]), 0, t0)
				if res.Anomalies&^Overlap != 0 {
					t.Fatalf("%v: piece %d [%d,%d) of %d: %v", p, k, pc.off, pc.end, n, res.Anomalies)
				}
				if res.Status == Complete && got == nil {
					got = bytes.Clone(res.Datagram[20:])
				}
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%v: reassembled %d bytes, want %d, pieces %v", p, len(got), n, ps)
			}
		}
	})
}
