package pcapfilter_test

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
)

// skb is what a socket filter sees: the frame bytes (outer VLAN tag already removed by the
// kernel) and the tag the kernel keeps aside.
type skb struct {
	data       []byte
	vlanTagged bool
	tci        uint16
}

// result of one run: the return value, and whether a load ran past the end of the frame,
// which makes a cBPF program return 0 at once.
type result struct {
	ret uint32
	oob bool
}

// Ancillary offsets (linux/filter.h): SKF_AD_OFF + SKF_AD_VLAN_TAG, SKF_AD_VLAN_TAG_PRESENT.
const (
	skfAdOff        = 0xfffff000
	skfAdVLANTag    = skfAdOff + 44
	skfAdVLANTagPre = skfAdOff + 48
	skfAdLen        = 0x80 // BPF_LD|BPF_W|BPF_LEN
)

// run interprets a raw cBPF program as the kernel does for a socket filter, including the
// VLAN ancillary loads that x/net/bpf's VM does not implement. Programs come from tcpdump or
// Compile and are known to be valid, so run panics on anything it does not know.
func run(prog []bpf.RawInstruction, p skb) result {
	var a, x uint32
	var mem [16]uint32
	load := func(off uint32, size uint32) (uint32, bool) {
		switch off {
		case skfAdVLANTag:
			return uint32(p.tci), true
		case skfAdVLANTagPre:
			if p.vlanTagged {
				return 1, true
			}
			return 0, true
		}
		if off >= skfAdOff || uint64(off)+uint64(size) > uint64(len(p.data)) {
			return 0, false
		}
		b := p.data[off : off+size]
		switch size {
		case 1:
			return uint32(b[0]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(b)), true
		}
		return binary.BigEndian.Uint32(b), true
	}
	sizes := map[uint16]uint32{0x00: 4, 0x08: 2, 0x10: 1}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		cls := in.Op & 0x07
		switch cls {
		case 0x00, 0x01: // LD, LDX
			mode, sz := in.Op&0xe0, sizes[in.Op&0x18]
			var v uint32
			switch {
			case in.Op == skfAdLen || in.Op == 0x81:
				v = uint32(len(p.data))
			case mode == 0x00: // IMM
				v = in.K
			case mode == 0x60: // MEM
				v = mem[in.K]
			case mode == 0x20: // ABS
				var ok bool
				if v, ok = load(in.K, sz); !ok {
					return result{0, true}
				}
			case mode == 0x40: // IND
				var ok bool
				off := uint64(x) + uint64(in.K)
				if off > 0xffffffff {
					return result{0, true}
				}
				if v, ok = load(uint32(off), sz); !ok {
					return result{0, true}
				}
			case mode == 0xa0: // MSH
				b, ok := load(in.K, 1)
				if !ok {
					return result{0, true}
				}
				v = (b & 0xf) << 2
			default:
				panic(fmt.Sprintf("unknown load %#x", in.Op))
			}
			if cls == 0x00 {
				a = v
			} else {
				x = v
			}
		case 0x02:
			mem[in.K] = a
		case 0x03:
			mem[in.K] = x
		case 0x04: // ALU
			v := in.K
			if in.Op&0x08 != 0 {
				v = x
			}
			switch in.Op & 0xf0 {
			case 0x00:
				a += v
			case 0x10:
				a -= v
			case 0x20:
				a *= v
			case 0x30:
				if v == 0 {
					return result{}
				}
				a /= v
			case 0x40:
				a |= v
			case 0x50:
				a &= v
			case 0x60:
				if v >= 32 {
					a = 0
				} else {
					a <<= v
				}
			case 0x70:
				if v >= 32 {
					a = 0
				} else {
					a >>= v
				}
			case 0x80:
				a = -a
			case 0x90:
				if v == 0 {
					return result{}
				}
				a %= v
			case 0xa0:
				a ^= v
			default:
				panic(fmt.Sprintf("unknown alu %#x", in.Op))
			}
		case 0x05: // JMP
			v := in.K
			if in.Op&0x08 != 0 {
				v = x
			}
			var taken bool
			switch in.Op & 0xf0 {
			case 0x00:
				pc += int(in.K)
				continue
			case 0x10:
				taken = a == v
			case 0x20:
				taken = a > v
			case 0x30:
				taken = a >= v
			case 0x40:
				taken = a&v != 0
			default:
				panic(fmt.Sprintf("unknown jump %#x", in.Op))
			}
			if taken {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case 0x06: // RET
			if in.Op&0x18 == 0x10 {
				return result{a, false}
			}
			return result{in.K, false}
		case 0x07: // MISC
			if in.Op&0xf8 == 0 {
				x = a
			} else {
				a = x
			}
		}
	}
	panic("program ran off its end")
}

// vlanExprs are the expressions whose socket programs read the VLAN tag the kernel strips.
var vlanExprs = []string{
	"vlan", "vlan 10", "vlan 20", "not vlan", "vlan and ip", "vlan 10 and udp", "vlan and vlan",
	"vlan and vlan 20", "vlan 10 and vlan 20 and port 80", "vlan 10 and host 198.18.0.1",
	"ip or vlan and udp", "vlan or arp", "vlan 10 or vlan 20", "not vlan 10 and ip",
	"vlan and tcp[13] & 2 != 0", "vlan 30 and ether host 02:00:00:00:00:01",
}

// kernelView is what an AF_PACKET socket filter sees of a frame on the wire: the kernel
// moves an outer 802.1Q or 802.1ad tag out of the frame into the socket buffer.
func kernelView(f []byte) skb {
	if len(f) >= 18 {
		switch binary.BigEndian.Uint16(f[12:]) {
		case 0x8100, 0x88a8:
			data := append(append([]byte{}, f[:12]...), f[16:]...)
			return skb{data: data, vlanTagged: true, tci: binary.BigEndian.Uint16(f[14:])}
		}
	}
	return skb{data: f}
}

func assemble(prog []bpf.Instruction) []bpf.RawInstruction {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		panic(err)
	}
	return raw
}
