package bypass

import "encoding/binary"

// refParse is a test-only Go reference of the canonical key and the bypass-eligibility rule, for
// frames as the verdict sees them (outer VLAN tag in the bytes). It follows the spec the flow
// package implements; the agreement tests compare the eBPF programs with it frame by frame.
func refParse(f []byte) (Key, bool) {
	var k Key
	be16 := func(o int) uint16 { return binary.BigEndian.Uint16(f[o:]) }
	be32 := func(o int) uint32 { return binary.BigEndian.Uint32(f[o:]) }
	n := len(f)
	if n < 14 {
		return k, false
	}
	off, tags := 12, 0
	et := be16(off)
	for et == 0x8100 || et == 0x88a8 {
		if tags == 2 || n < off+8 {
			return k, false
		}
		if tags == 0 {
			k.VLAN = be16(off+2) & 0x0fff
		}
		tags++
		off += 4
		et = be16(off)
	}
	l3 := off + 2
	ok := false
	switch et {
	case 0x0800:
		if n < l3+20 || f[l3]>>4 != 4 {
			return k, false
		}
		k.Family = 4
		k.Addr[0][0], k.Addr[1][0] = be32(l3+12), be32(l3+16)
		k.Proto = f[l3+9]
		ihl := int(f[l3]&0x0f) << 2
		if ihl < 20 || n < l3+ihl {
			break
		}
		if be16(l3+6)&0x3fff != 0 {
			break
		}
		ok = refTransport(f, &k, l3+ihl)
	case 0x86dd:
		if n < l3+40 || f[l3]>>4 != 6 {
			return k, false
		}
		k.Family = 6
		for w := range 4 {
			k.Addr[0][w], k.Addr[1][w] = be32(l3+8+4*w), be32(l3+24+4*w)
		}
		next, l4, ext := f[l3+6], l3+40, 0
		for next == 0 || next == 43 || next == 60 {
			if ext == 4 || n < l4+2 {
				next = 255 // not eligible
				break
			}
			ext++
			next, l4 = f[l4], l4+(int(f[l4+1])+1)*8
		}
		k.Proto = next
		ok = next != 255 && refTransport(f, &k, l4)
	default:
		return k, false
	}
	a, b := k.Addr[0], k.Addr[1]
	for w := range 4 {
		if a[w] != b[w] {
			if a[w] > b[w] {
				k.Addr[0], k.Addr[1] = b, a
				k.Port[0], k.Port[1] = k.Port[1], k.Port[0]
			}
			return k, ok
		}
	}
	if k.Port[0] > k.Port[1] {
		k.Port[0], k.Port[1] = k.Port[1], k.Port[0]
	}
	return k, ok
}

func refTransport(f []byte, k *Key, l4 int) bool {
	n := len(f)
	switch {
	case k.Proto == 6 || k.Proto == 17:
		if n < l4+4 {
			return false
		}
		k.Port[0], k.Port[1] = binary.BigEndian.Uint16(f[l4:]), binary.BigEndian.Uint16(f[l4+2:])
		return true
	case k.Proto == 1 && k.Family == 4, k.Proto == 58 && k.Family == 6:
		if n < l4+6 {
			return false
		}
		t := f[l4]
		if (k.Family == 4 && t != 8 && t != 0) || (k.Family == 6 && t != 128 && t != 129) {
			return false
		}
		id := binary.BigEndian.Uint16(f[l4+4:])
		k.Port = [2]uint16{id, id}
		return true
	}
	return false
}
