package ippair

import (
	"github.com/cilium/ebpf/asm"
)

// Options change what the program hashes. The zero value (and nil) hashes addresses only.
type Options struct {
	// VLAN mixes the outer VLAN id (the 12 low bits of the TCI the kernel stripped into the skb)
	// into the hash, so the same address pair on two VLANs may go to different members.
	VLAN bool
}

// Offsets the program reads. skfLLOff is SKF_LL_OFF (include/uapi/linux/filter.h): a negative
// LD_ABS/LD_IND offset relative to the MAC header, which is where the frame's bytes start whatever
// skb->data points at (the network header in the fanout path).
const (
	skfLLOff    = -0x200000
	skbVLANTCI  = 24 // offsetof(struct __sk_buff, vlan_tci)
	etherIPv4   = 0x0800
	etherIPv6   = 0x86dd
	tpid8021Q   = 0x8100
	tpid8021AD  = 0x88a8
	fmixM1      = 0x85ebca6b // murmur3's fmix32 constants
	fmixM2      = 0xc2b2ae35
	license     = "MIT"
	programName = "afb_ippair"
)

// Registers: R6 holds the context, as LD_ABS/LD_IND require; they clobber R0-R5 and leave the
// loaded value in R0. R7 is the EtherType's offset from the MAC header, then the network
// header's; R8 is the running hash, R9 one address's hash.
const (
	rCtx  = asm.R6
	rL3   = asm.R7
	rHash = asm.R8
	rAddr = asm.R9
)

// Instructions returns the program: a BPF_PROG_TYPE_SOCKET_FILTER that returns the symmetric hash
// described in the package documentation. Exactly: an address's hash is h = fmix32(w ^ h) over
// its big-endian 32-bit words w in order (a MAC address: its first 4 bytes, then its last 2),
// from h = 0, where fmix32 is murmur3's finaliser; the program returns hash(source) +
// hash(destination) modulo 2^32, and with [Options.VLAN], fmix32(vid ^ that sum). [Load] loads
// it; it is exported so that it can be printed, inspected, or loaded another way.
func Instructions(opts *Options) asm.Instructions {
	if opts == nil {
		opts = &Options{}
	}
	in := asm.Instructions{
		asm.Mov.Reg(rCtx, asm.R1),
		asm.Mov.Imm(rHash, 0),
		asm.Mov.Imm(rL3, 12),
	}
	// Up to two VLAN tags left in the bytes (the outer one, if any, is in the metadata).
	for i := range 2 {
		in = append(in, asm.LoadInd(asm.R0, rL3, skfLLOff, asm.Half))
		in = append(in,
			asm.JEq.Imm(asm.R0, tpid8021Q, label("tag", i)),
			asm.JNE.Imm(asm.R0, tpid8021AD, "etype"),
			asm.Add.Imm(rL3, 4).WithSymbol(label("tag", i)),
		)
	}
	in = append(in, asm.LoadInd(asm.R0, rL3, skfLLOff, asm.Half))
	in = append(in,
		asm.Add.Imm(rL3, 2).WithSymbol("etype"),
		asm.JEq.Imm(asm.R0, etherIPv4, "ipv4"),
		asm.JEq.Imm(asm.R0, etherIPv6, "ipv6"),
	)
	// Not IP: the MAC addresses, 4 + 2 bytes each.
	in = append(in, addr(func(i int) asm.Instruction {
		return asm.LoadAbs(skfLLOff+int32(i*4), sizeOf(i))
	}, 2)...)
	in = append(in, asm.Add.Reg32(rHash, rAddr))
	in = append(in, addr(func(i int) asm.Instruction {
		return asm.LoadAbs(skfLLOff+6+int32(i*4), sizeOf(i))
	}, 2)...)
	in = append(in, asm.Add.Reg32(rHash, rAddr), asm.Ja.Label("vlan"))

	// IPv4: saddr at 12, daddr at 16.
	v4 := addr(func(int) asm.Instruction { return asm.LoadInd(asm.R0, rL3, skfLLOff+12, asm.Word) }, 1)
	v4[0] = v4[0].WithSymbol("ipv4")
	in = append(in, v4...)
	in = append(in, asm.Add.Reg32(rHash, rAddr))
	in = append(in, addr(func(int) asm.Instruction { return asm.LoadInd(asm.R0, rL3, skfLLOff+16, asm.Word) }, 1)...)
	in = append(in, asm.Add.Reg32(rHash, rAddr), asm.Ja.Label("vlan"))

	// IPv6: saddr at 8, daddr at 24, four words each.
	v6 := addr(func(i int) asm.Instruction { return asm.LoadInd(asm.R0, rL3, skfLLOff+8+int32(i*4), asm.Word) }, 4)
	v6[0] = v6[0].WithSymbol("ipv6")
	in = append(in, v6...)
	in = append(in, asm.Add.Reg32(rHash, rAddr))
	in = append(in, addr(func(i int) asm.Instruction { return asm.LoadInd(asm.R0, rL3, skfLLOff+24+int32(i*4), asm.Word) }, 4)...)
	in = append(in, asm.Add.Reg32(rHash, rAddr))

	if opts.VLAN {
		in = append(in,
			asm.LoadMem(asm.R0, rCtx, skbVLANTCI, asm.Word).WithSymbol("vlan"),
			asm.And.Imm32(asm.R0, 0x0fff),
			asm.Xor.Reg32(asm.R0, rHash),
		)
		in = append(in, fmix()...)
		in = append(in, asm.Mov.Reg32(rHash, asm.R0))
		in = append(in, asm.Mov.Reg32(asm.R0, rHash), asm.Return())
	} else {
		in = append(in, asm.Mov.Reg32(asm.R0, rHash).WithSymbol("vlan"), asm.Return())
	}
	return in
}

func label(s string, i int) string { return s + string(rune('0'+i)) }

// sizeOf gives the load size of a MAC address's i-th piece: a word, then a half word.
func sizeOf(i int) asm.Size {
	if i == 0 {
		return asm.Word
	}
	return asm.Half
}

// addr hashes one address of n pieces into rAddr: h = fmix(piece ^ h), from h = 0.
func addr(load func(i int) asm.Instruction, n int) asm.Instructions {
	in := asm.Instructions{asm.Mov.Imm(rAddr, 0)}
	for i := range n {
		in = append(in, load(i), asm.Xor.Reg32(asm.R0, rAddr))
		in = append(in, fmix()...)
		in = append(in, asm.Mov.Reg32(rAddr, asm.R0))
	}
	return in
}

// fmix is murmur3's 32-bit finaliser on R0, with R1 as scratch.
func fmix() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg32(asm.R1, asm.R0),
		asm.RSh.Imm32(asm.R1, 16),
		asm.Xor.Reg32(asm.R0, asm.R1),
		asm.Mul.Imm32(asm.R0, int32(-(0x100000000 - fmixM1))),
		asm.Mov.Reg32(asm.R1, asm.R0),
		asm.RSh.Imm32(asm.R1, 13),
		asm.Xor.Reg32(asm.R0, asm.R1),
		asm.Mul.Imm32(asm.R0, int32(-(0x100000000 - fmixM2))),
		asm.Mov.Reg32(asm.R1, asm.R0),
		asm.RSh.Imm32(asm.R1, 16),
		asm.Xor.Reg32(asm.R0, asm.R1),
	}
}
