package bypass

import (
	"encoding/binary"
	"math/rand/v2"
)

// genFrame builds a random frame as the kernel shows it to tc and socket filters: the outer VLAN
// tag already moved to metadata, so the bytes hold 0 or 1 tags (2 now and then, which is one too
// many). Headers are mostly well formed with every field the key or the eligibility rule looks at
// drawn from the interesting values, and 1 frame in 4 is cut short.
func genFrame(r *rand.Rand) []byte {
	f := make([]byte, 12, 128)
	for i := range f {
		f[i] = byte(r.Uint32())
	}
	pick := func(vals ...int) int { return vals[r.IntN(len(vals))] }
	be16 := func(v int) { f = binary.BigEndian.AppendUint16(f, uint16(v)) }
	tags := pick(0, 0, 0, 0, 0, 1, 1, 2)
	for range tags {
		be16(pick(0x8100, 0x88a8))
		be16(r.IntN(0x10000))
	}
	addr := func(n int) {
		for range n {
			f = append(f, byte(pick(0, 1, 2, 0xff, r.IntN(256))))
		}
	}
	var proto int
	switch pick(4, 4, 4, 6, 6, 6, 0) {
	case 4:
		be16(0x0800)
		ihl := pick(5, 5, 5, 5, 6, 15, r.IntN(16))
		ver := pick(4, 4, 4, 4, 4, 4, r.IntN(16))
		f = append(f, byte(ver<<4|ihl), 0)
		be16(r.IntN(0x10000))
		be16(r.IntN(0x10000))
		be16(pick(0, 0, 0, 0x4000, 0x2000, 0x0001, r.IntN(0x10000)))
		proto = pick(6, 17, 1, 6, 17, 1, 58, 50, r.IntN(256))
		f = append(f, 64, byte(proto), 0, 0)
		addr(8)
		for i := 20; i < ihl*4; i++ {
			f = append(f, byte(r.Uint32()))
		}
	case 6:
		be16(0x86dd)
		ver := pick(6, 6, 6, 6, 6, 6, r.IntN(16))
		f = append(f, byte(ver<<4), 0, 0, 0)
		be16(r.IntN(2000))
		proto = pick(6, 17, 58, 6, 17, 58, 1, r.IntN(256))
		nexts := []int{}
		for range pick(0, 0, 0, 1, 2, 3, 4, 5, 6) {
			nexts = append(nexts, pick(0, 43, 60, 0, 43, 60, 44, 51, 135))
		}
		first := proto
		if len(nexts) > 0 {
			first = nexts[0]
		}
		f = append(f, byte(first), 64)
		addr(32)
		for i, t := range nexts {
			next := proto
			if i+1 < len(nexts) {
				next = nexts[i+1]
			}
			l := pick(0, 0, 1, 2)
			if t == 44 {
				l = 0
			}
			f = append(f, byte(next), byte(l))
			for range (l+1)*8 - 2 {
				f = append(f, byte(r.Uint32()))
			}
		}
	default:
		be16(pick(0x0806, 0x8847, r.IntN(0x10000)))
	}
	switch proto {
	case 6, 17:
		be16(pick(80, 443, 53, r.IntN(0x10000)))
		be16(pick(80, 443, 53, r.IntN(0x10000)))
	default:
		f = append(f, byte(pick(0, 8, 128, 129, 3, r.IntN(256))), 0, 0, 0)
		be16(r.IntN(0x10000))
	}
	for range r.IntN(24) {
		f = append(f, byte(r.Uint32()))
	}
	if r.IntN(4) == 0 {
		f = f[:r.IntN(len(f)+1)]
	}
	return f
}

// verdictView returns the frame as the verdict sees it: the outer tag, here 802.1Q with VLAN ID
// vid, back in the bytes.
func verdictView(f []byte, vid uint16) []byte {
	if len(f) < 12 {
		return append([]byte(nil), f...)
	}
	g := append([]byte(nil), f[:12]...)
	g = binary.BigEndian.AppendUint16(g, 0x8100)
	g = binary.BigEndian.AppendUint16(g, vid)
	return append(g, f[12:]...)
}
