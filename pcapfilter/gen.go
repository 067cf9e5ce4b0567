package pcapfilter

import (
	"golang.org/x/net/bpf"
)

// Frame layout (Ethernet, EN10MB).
const (
	offEtherType = 12 // link-layer type, shifted by VLAN tags
	offPayload   = 14 // network header, shifted by VLAN tags
	ipv6HdrLen   = 40
	vlanSlot     = 0 // scratch slot holding the run-time VLAN shift (socket mode)
	firstScratch = 1 // arithmetic uses slots 1 to 15
	lastScratch  = 15
	acceptLen    = 262144 // the snapshot length tcpdump returns for an accepted frame
)

// ins is one instruction before layout: a plain instruction, or a jump to labels.
type ins struct {
	plain bpf.Instruction
	kind  uint8 // insPlain, insJump, insJumpX, insJA
	cond  bpf.JumpTest
	val   uint32
	t, f  int // label ids
	start int // jumps: index of the first of the statements that compute what they test
}

const (
	insPlain uint8 = iota
	insJump
	insJumpX
	insJA
)

// atom is a leaf test: run stmts, then jump on cond.
type atom struct {
	stmts []bpf.Instruction
	cond  bpf.JumpTest
	val   uint32
	x     bool // compare A with X instead of val
}

// ifElse tests then where cond holds and els where it does not.
type ifElse struct{ cond, then, els node }

// seq runs stmts unconditionally, then tests n.
type seq struct {
	stmts []bpf.Instruction
	n     node
}

type compiler struct {
	prog     []ins
	labels   []int // label id -> index in prog where it is placed, -1 until placed
	socket   bool  // compile vlan for an AF_PACKET socket (ancillary tag loads)
	off      uint32
	variable bool // the VLAN shift lives in M[vlanSlot] (socket mode, after the first vlan)
	vlans    int
}

func (c *compiler) newLabel() int {
	c.labels = append(c.labels, -1)
	return len(c.labels) - 1
}

func (c *compiler) place(l int) { c.labels[l] = len(c.prog) }

func (c *compiler) emit(is ...bpf.Instruction) {
	for _, i := range is {
		c.prog = append(c.prog, ins{plain: i})
	}
}

// cond compiles n so that control reaches label t when n is true and f when it is false.
// Everything is laid out in textual order: every jump goes forward.
func (c *compiler) cond(n node, t, f int) error {
	switch n := n.(type) {
	case nAnd:
		mid := c.newLabel()
		if err := c.cond(n.a, mid, f); err != nil {
			return err
		}
		c.place(mid)
		return c.cond(n.b, t, f)
	case nOr:
		mid := c.newLabel()
		if err := c.cond(n.a, t, mid); err != nil {
			return err
		}
		c.place(mid)
		return c.cond(n.b, t, f)
	case nNot:
		return c.cond(n.a, f, t)
	case nTrue:
		c.prog = append(c.prog, ins{kind: insJA, t: t})
		return nil
	case atom:
		start := len(c.prog)
		c.emit(n.stmts...)
		k := insJump
		if n.x {
			k = insJumpX
		}
		c.prog = append(c.prog, ins{kind: k, cond: n.cond, val: n.val, t: t, f: f, start: start})
		return nil
	case ifElse:
		lt, le := c.newLabel(), c.newLabel()
		if err := c.cond(n.cond, lt, le); err != nil {
			return err
		}
		c.place(lt)
		if err := c.cond(n.then, t, f); err != nil {
			return err
		}
		c.place(le)
		return c.cond(n.els, t, f)
	case seq:
		c.emit(n.stmts...)
		return c.cond(n.n, t, f)
	case nVLAN:
		return c.cond(c.vlan(n), t, f)
	case nRel:
		r, err := c.relation(n)
		if err != nil {
			return err
		}
		return c.cond(r, t, f)
	}
	return c.cond(c.expand(n), t, f)
}

// and/or of a list, in order.
func and(ns ...node) node {
	n := ns[0]
	for _, m := range ns[1:] {
		n = nAnd{n, m}
	}
	return n
}

func or(ns ...node) node {
	n := ns[0]
	for _, m := range ns[1:] {
		n = nOr{n, m}
	}
	return n
}

// load reads size bytes at off from the start of the frame plus the VLAN shift when shifted
// is set (link-layer type and network header), or from the start of the frame (Ethernet
// addresses).
func (c *compiler) load(off uint32, size int, shifted bool) []bpf.Instruction {
	if !shifted {
		return []bpf.Instruction{bpf.LoadAbsolute{Off: off, Size: size}}
	}
	if c.variable {
		return []bpf.Instruction{
			bpf.LoadScratch{Dst: bpf.RegX, N: vlanSlot},
			bpf.LoadIndirect{Off: off + c.off, Size: size},
		}
	}
	return []bpf.Instruction{bpf.LoadAbsolute{Off: off + c.off, Size: size}}
}

// ldxIPHdr sets X to the IPv4 header length plus the run-time VLAN shift.
func (c *compiler) ldxIPHdr() []bpf.Instruction {
	if !c.variable {
		return []bpf.Instruction{bpf.LoadMemShift{Off: offPayload + c.off}}
	}
	return []bpf.Instruction{
		bpf.LoadScratch{Dst: bpf.RegX, N: vlanSlot},
		bpf.LoadIndirect{Off: offPayload + c.off, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2},
		bpf.ALUOpX{Op: bpf.ALUOpAdd},
		bpf.TAX{},
	}
}

func (c *compiler) cmp(off uint32, size int, shifted bool, val uint32) atom {
	return atom{stmts: c.load(off, size, shifted), cond: bpf.JumpEqual, val: val}
}

// mcmp tests the loaded value under mask. The load is made even when the mask is zero, as
// in libpcap's code: a frame that ends before it is rejected.
func (c *compiler) mcmp(off uint32, size int, shifted bool, val, mask uint32) atom {
	s := c.load(off, size, shifted)
	if mask != 0xffffffff {
		s = append(s, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask})
	}
	return atom{stmts: s, cond: bpf.JumpEqual, val: val}
}

func (c *compiler) etherType(v uint32) node {
	if v > 1500 {
		return c.cmp(offEtherType, 2, true, v)
	}
	// An 802.3 length, not a type: libpcap matches the LLC DSAP (and SSAP for these three).
	notType := nNot{atom{stmts: c.load(offEtherType, 2, true), cond: bpf.JumpGreaterThan, val: 1500}}
	switch v {
	case 0xfe, 0x06, 0xf0: // ISO NS, IP, NetBEUI
		return and(notType, c.cmp(offPayload, 2, true, v<<8|v))
	}
	return and(notType, c.cmp(offPayload, 1, true, v))
}

func (c *compiler) ipProto(v4, v6 bool, proto uint32) node {
	var ns []node
	if v4 {
		ns = append(ns, and(c.etherType(0x800), c.cmp(offPayload+9, 1, true, proto)))
	}
	if v6 {
		// The next header, or the one after a fragment header, as libpcap checks it.
		ns = append(ns, and(c.etherType(0x86dd), or(
			c.cmp(offPayload+6, 1, true, proto),
			and(c.cmp(offPayload+6, 1, true, 44), c.cmp(offPayload+ipv6HdrLen, 1, true, proto)))))
	}
	return or(ns...)
}

// protoCheck is what a primitive's protocol qualifier requires of the frame.
func (c *compiler) protoCheck(q pq) node {
	switch q {
	case pIP, pIP6, pARP, pRARP:
		return c.expand(protoPrim(q))
	case pICMP6:
		return and(c.etherType(0x86dd), c.cmp(offPayload+6, 1, true, 58))
	}
	n := protoPrim(q).(nIPProto)
	return c.ipProto(n.v4, n.v6, n.proto)
}

// notFrag is true for an unfragmented IPv4 datagram or its first fragment.
func (c *compiler) notFrag() node {
	return nNot{atom{stmts: c.load(offPayload+6, 2, true), cond: bpf.JumpBitsSet, val: 0x1fff}}
}

func dirOf(d dir, src, dst func() node) node {
	switch d {
	case dSrc:
		return src()
	case dDst:
		return dst()
	case dAnd:
		return and(src(), dst())
	}
	return or(src(), dst())
}

// expand turns a primitive into tests on the frame at the current offsets.
func (c *compiler) expand(n node) node {
	switch n := n.(type) {
	case nLinkProto:
		return c.etherType(n.proto)
	case nIPProto:
		return c.ipProto(n.v4, n.v6, n.proto)
	case nHost4:
		type layout struct {
			etype    uint32
			src, dst uint32
		}
		var ls []layout
		ip, arp, rarp := layout{0x800, 12, 16}, layout{0x806, 14, 24}, layout{0x8035, 14, 24}
		switch n.proto {
		case pIP:
			ls = []layout{ip}
		case pARP:
			ls = []layout{arp}
		case pRARP:
			ls = []layout{rarp}
		default:
			ls = []layout{ip, arp, rarp}
		}
		var ns []node
		for _, l := range ls {
			at := func(off uint32) func() node {
				return func() node {
					return and(c.etherType(l.etype), c.mcmp(offPayload+off, 4, true, n.addr, n.mask))
				}
			}
			ns = append(ns, dirOf(n.dir, at(l.src), at(l.dst)))
		}
		return or(ns...)
	case nHost6:
		at := func(off uint32) func() node {
			return func() node {
				ns := []node{c.etherType(0x86dd)}
				for w := uint32(0); w < 4; w++ {
					a := be32(n.addr[4*w:])
					m := be32(n.mask[4*w:])
					ns = append(ns, c.mcmp(offPayload+off+4*w, 4, true, a, m))
				}
				return and(ns...)
			}
		}
		return dirOf(n.dir, at(8), at(24))
	case nEther:
		at := func(off uint32) func() node {
			return func() node {
				return and(c.cmp(off+2, 4, false, be32(n.mac[2:])), c.cmp(off, 2, false, uint32(n.mac[0])<<8|uint32(n.mac[1])))
			}
		}
		return dirOf(n.dir, at(6), at(0))
	case nPort:
		protos := []uint32{132, 6, 17}
		if n.proto != pDefault {
			protos = []uint32{ipProtoNum[n.proto]}
		}
		test := func(ld []bpf.Instruction) node {
			if !n.rng {
				return atom{stmts: ld, cond: bpf.JumpEqual, val: n.lo}
			}
			return and(atom{stmts: ld, cond: bpf.JumpGreaterOrEqual, val: n.lo},
				nNot{atom{stmts: ld, cond: bpf.JumpGreaterThan, val: n.hi}})
		}
		// libpcap repeats the port tests for each protocol; testing the protocol once against
		// the set gives every frame the same verdict with the same loads, in a third of the code.
		var nh6, p4 []node
		for _, p := range protos {
			nh6 = append(nh6, c.cmp(offPayload+6, 1, true, p))
			p4 = append(p4, c.cmp(offPayload+9, 1, true, p))
		}
		port4 := func(off uint32) func() node {
			return func() node {
				return test(append(c.ldxIPHdr(), bpf.LoadIndirect{Off: offPayload + c.off + off, Size: 2}))
			}
		}
		v6 := and(or(nh6...), dirOf(n.dir,
			func() node { return test(c.load(offPayload+ipv6HdrLen, 2, true)) },
			func() node { return test(c.load(offPayload+ipv6HdrLen+2, 2, true)) }))
		v4 := and(or(p4...), c.notFrag(), dirOf(n.dir, port4(0), port4(2)))
		return or(and(c.etherType(0x86dd), v6), and(c.etherType(0x800), v4))
	case nBroadcast:
		if n.ip {
			return and(c.etherType(0x800), or(c.cmp(offPayload+16, 4, true, 0), c.cmp(offPayload+16, 4, true, 0xffffffff)))
		}
		return and(c.cmp(2, 4, false, 0xffffffff), c.cmp(0, 2, false, 0xffff))
	case nMulticast:
		switch n.proto {
		case pIP:
			return and(c.etherType(0x800), atom{stmts: c.load(offPayload+16, 1, true), cond: bpf.JumpGreaterOrEqual, val: 224})
		case pIP6:
			return and(c.etherType(0x86dd), c.cmp(offPayload+24, 1, true, 0xff))
		}
		return atom{stmts: c.load(0, 1, false), cond: bpf.JumpBitsSet, val: 1}
	}
	panic("pcapfilter: unknown node") // unreachable: the parser builds only the nodes above
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

var tpids = []uint32{0x8100, 0x88a8, 0x9100}

// vlan compiles a vlan primitive and shifts the offsets of everything compiled after it by
// the tag, as libpcap does. In socket mode the first vlan reads the tag the kernel moved out
// of the frame (SKF_AD_VLAN_TAG_PRESENT, SKF_AD_VLAN_TAG) and shifts by 4 bytes at run time
// only when the frame itself still carries a tag.
func (c *compiler) vlan(n nVLAN) node {
	inFrame := func() node {
		var ns []node
		for _, tp := range tpids {
			ns = append(ns, c.cmp(offEtherType, 2, true, tp))
		}
		t := or(ns...)
		if n.hasID {
			t = and(t, c.mcmp(offPayload, 2, true, n.id, 0xfff))
		}
		return t
	}
	c.vlans++
	if !c.socket || c.vlans > 1 {
		t := inFrame()
		c.off += 4
		return t
	}
	present := atom{stmts: []bpf.Instruction{bpf.LoadExtension{Num: bpf.ExtVLANTagPresent}}, cond: bpf.JumpEqual, val: 1}
	var anc node = nTrue{}
	if n.hasID {
		anc = atom{stmts: []bpf.Instruction{
			bpf.LoadExtension{Num: bpf.ExtVLANTag},
			bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xfff},
		}, cond: bpf.JumpEqual, val: n.id}
	}
	// A tag the kernel stripped decides alone; only without one is the frame itself looked at.
	t := ifElse{cond: present, then: anc, els: seq{stmts: []bpf.Instruction{
		bpf.LoadScratch{Dst: bpf.RegA, N: vlanSlot},
		bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 4},
		bpf.StoreScratch{Src: bpf.RegA, N: vlanSlot},
	}, n: inFrame()}}
	c.variable = true
	return t
}

func hasVLAN(n node) bool {
	switch n := n.(type) {
	case nAnd:
		return hasVLAN(n.a) || hasVLAN(n.b)
	case nOr:
		return hasVLAN(n.a) || hasVLAN(n.b)
	case nNot:
		return hasVLAN(n.a)
	case nVLAN:
		return true
	}
	return false
}
