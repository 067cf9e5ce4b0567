//go:build linux

package bypass

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/net/bpf"
)

// Offsets of struct __sk_buff fields (include/uapi/linux/bpf.h).
const (
	skbLen            = 0
	skbPktType        = 4
	skbVLANPresent    = 20
	skbVLANTCI        = 24
	skbIngressIfindex = 36
	skbCB0            = 48
	skbCB1            = 52
)

// Marks the socket filter leaves in __sk_buff.cb[0] for the tc program that runs next on the same
// skb. AF_PACKET runs its filter with bpf_prog_run_clear_cb, which clears cb before the run but does
// not restore it after, and nothing between the taps and tc ingress touches qdisc_skb_cb.data, so
// the tap's per-frame decision reaches tc. Any other value means no filter of ours saw the frame.
const (
	markRing = 0x5afb1001 // the tap copied the frame into the ring (or the user's filter refused it): tc leaves it alone
	markFast = 0x5afb1002 // the tap kept the frame out of the ring: tc must redirect it
)

// tcx return codes (include/uapi/linux/bpf.h).
const (
	tcxNext     = -1
	tcxRedirect = 7
)

const packetOutgoing = 4 // PACKET_OUTGOING, the skb's pkt_type for frames the host sends

// Stack layout shared by both programs (offsets from R10). The key is built at keyOff exactly as
// [Key] lays it out.
const (
	keyOff    = -40
	addr0Off  = keyOff      // 4 words
	addr1Off  = keyOff + 16 // 4 words
	port0Off  = keyOff + 32
	port1Off  = keyOff + 34
	vlanOff   = keyOff + 36
	protoOff  = keyOff + 38
	familyOff = keyOff + 39
	idxOff    = -48  // u32 scratch key for array and port lookups
	flagsOff  = -72  // TCP flags of the frame (0 for other protocols), set by parseKey
	markOff   = -56  // tc: the tap's mark, saved across helper calls
	sideOff   = -64  // tc: ingress side, saved across helper calls
	scratchM  = -128 // cBPF M[0..15], 64 bytes
	bulkOff   = -178 // parseKey's bulk load of the first bulkLen bytes; 2 mod 4, so that the IPv4 addresses at +26 and +30 are aligned
	bulkLen   = 48
)

// Offsets in the flow map's value, [flowValue].
const (
	valLastSeen = 0
	valPackets  = 8  // [2]uint64
	valBytes    = 24 // [2]uint64
	valLast     = 40 // [2]uint64
	valLive     = 56 // [2]uint32
	valMember   = 64 // [2]uint32
	valWaits    = 72 // [2]uint32
	valSize     = 80
)

// Offsets in the per-CPU counter value, [counterValue].
const (
	cntFrames   = 0  // [2]uint64, forwarded by tc, per ingress side
	cntBytes    = 16 // [2]uint64
	cntExpired  = 32
	cntNoPort   = 40 // tap marked fast, but the ingress port has no peer in the port map
	cntClosed   = 48 // flows the socket filter returned to the bridge on a TCP FIN or RST
	cntForced   = 56 // directions handed over at Config.HandoverLimit with frames still in the ring
	cntShed     = 64 // frames of flows handing over dropped while their ring overflowed
	counterSize = 72
)

// parseKey emits the flow-key parser shared by the tc program and the socket filter. It expects
// the context in R6, builds the key at keyOff on the stack and falls through when the frame is
// bypass-eligible; otherwise it jumps to inelig. It clobbers R0 to R5, R7 and R8.
//
// Packet bytes are read with LD_ABS/LD_IND, which both program types allow and which see the
// whole skb (GSO frames are not linear). An out-of-bounds LD_ABS ends the program with 0, which
// a socket filter reads as "drop", so every read is preceded by an explicit skb->len check.
func parseKey(p string, inelig string) asm.Instructions {
	l := func(s string) string { return p + s }
	// needLen jumps to inelig unless off+n <= skb->len, off being a register or none.
	needLen := func(off asm.Register, n int32) asm.Instructions {
		if off == asm.RFP { // constant offset
			return asm.Instructions{
				asm.LoadMem(asm.R1, asm.R6, skbLen, asm.Word),
				asm.JLT.Imm(asm.R1, n, inelig),
			}
		}
		return asm.Instructions{
			asm.LoadMem(asm.R1, asm.R6, skbLen, asm.Word),
			asm.Mov.Reg(asm.R2, off),
			asm.Add.Imm(asm.R2, n),
			asm.JGT.Reg(asm.R2, asm.R1, inelig),
		}
	}
	ins := asm.Instructions{
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.RFP, keyOff, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, keyOff+8, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, keyOff+16, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, keyOff+24, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, keyOff+32, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, flagsOff, asm.R1, asm.DWord),
		// The outer tag is metadata here: the kernel untagged the frame before the taps.
		asm.LoadMem(asm.R1, asm.R6, skbVLANPresent, asm.Word),
		asm.JEq.Imm(asm.R1, 0, l("eth")),
		asm.LoadMem(asm.R1, asm.R6, skbVLANTCI, asm.Word),
		asm.And.Imm(asm.R1, 0x0fff),
		asm.StoreMem(asm.RFP, vlanOff, asm.R1, asm.Half),
	}
	// The common case in one bulk load: an untagged IPv4 TCP or UDP packet without options and not
	// a fragment. Each LD_ABS beyond the linear part of an skb (all of it past the Ethernet
	// header, for a frame an AF_PACKET socket sent) copies through skb_copy_bits on its own;
	// one bpf_skb_load_bytes copies the 48 bytes this case needs at once. Anything else, and a
	// frame shorter than 48 bytes, takes the general parse below, which reaches the same key.
	ins = append(ins,
		asm.Mov.Reg(asm.R1, asm.R6).WithSymbol(l("eth")),
		asm.Mov.Imm(asm.R2, 0),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, bulkOff),
		asm.Mov.Imm(asm.R4, bulkLen),
		asm.FnSkbLoadBytes.Call(),
		asm.JNE.Imm(asm.R0, 0, l("slow")),
		asm.LoadMem(asm.R1, asm.RFP, bulkOff+12, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.JNE.Imm(asm.R1, 0x0800, l("slow")),
		asm.LoadMem(asm.R1, asm.RFP, bulkOff+14, asm.Byte),
		asm.JNE.Imm(asm.R1, 0x45, l("slow")),
		asm.LoadMem(asm.R1, asm.RFP, bulkOff+20, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.JSet.Imm(asm.R1, 0x3fff, l("slow")),
		asm.LoadMem(asm.R1, asm.RFP, bulkOff+23, asm.Byte),
		asm.JEq.Imm(asm.R1, 6, l("bulk")),
		asm.JNE.Imm(asm.R1, 17, l("slow")),
		asm.StoreMem(asm.RFP, protoOff, asm.R1, asm.Byte).WithSymbol(l("bulk")),
		asm.Mov.Imm(asm.R1, 4),
		asm.StoreMem(asm.RFP, familyOff, asm.R1, asm.Byte),
		asm.LoadMem(asm.R1, asm.RFP, bulkOff+26, asm.Word),
		asm.HostTo(asm.BE, asm.R1, asm.Word),
		asm.StoreMem(asm.RFP, addr0Off, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, bulkOff+30, asm.Word),
		asm.HostTo(asm.BE, asm.R1, asm.Word),
		asm.StoreMem(asm.RFP, addr1Off, asm.R1, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, bulkOff+34, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.RFP, port0Off, asm.R1, asm.Half),
		asm.LoadMem(asm.R1, asm.RFP, bulkOff+36, asm.Half),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.RFP, port1Off, asm.R1, asm.Half),
		asm.LoadMem(asm.R1, asm.RFP, protoOff, asm.Byte),
		asm.JNE.Imm(asm.R1, 6, l("canon")),
		asm.LoadMem(asm.R1, asm.RFP, bulkOff+47, asm.Byte),
		asm.StoreMem(asm.RFP, flagsOff, asm.R1, asm.Byte),
		asm.Ja.Label(l("canon")),
		asm.Mov.Imm(asm.R7, 12).WithSymbol(l("slow")), // R7: offset of the EtherType
	)
	ins = append(ins, needLen(asm.RFP, 14)...)
	ins = append(ins,
		asm.LoadAbs(12, asm.Half),
		asm.JEq.Imm(asm.R0, 0x8100, l("tag")),
		asm.JEq.Imm(asm.R0, 0x88a8, l("tag")),
		asm.Ja.Label(l("et")),
	)
	// At most one (inner) tag can remain in the bytes.
	tag := needLen(asm.RFP, 18)
	tag[0] = tag[0].WithSymbol(l("tag"))
	ins = append(ins, tag...)
	ins = append(ins,
		asm.LoadAbs(16, asm.Half),
		asm.Mov.Imm(asm.R7, 16),
		asm.JEq.Imm(asm.R0, 0x8100, inelig),
		asm.JEq.Imm(asm.R0, 0x88a8, inelig),
		asm.Add.Imm(asm.R7, 2).WithSymbol(l("et")), // R7: start of the IP header
		asm.JEq.Imm(asm.R0, 0x0800, l("v4")),
		asm.JEq.Imm(asm.R0, 0x86dd, l("v6")),
		asm.Ja.Label(inelig),
	)

	// IPv4: version 4, IHL >= 5, header within the frame, not a fragment.
	v4 := needLen(asm.R7, 20)
	v4[0] = v4[0].WithSymbol(l("v4"))
	ins = append(ins, v4...)
	ins = append(ins,
		asm.LoadInd(asm.R0, asm.R7, 0, asm.Byte),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.RSh.Imm(asm.R1, 4),
		asm.JNE.Imm(asm.R1, 4, inelig),
		asm.And.Imm(asm.R0, 0x0f),
		asm.LSh.Imm(asm.R0, 2),
		asm.JLT.Imm(asm.R0, 20, inelig),
		asm.Mov.Reg(asm.R8, asm.R7),
		asm.Add.Reg(asm.R8, asm.R0), // R8: start of the upper layer
	)
	ins = append(ins, needLen(asm.R8, 0)...)
	ins = append(ins,
		asm.LoadInd(asm.R0, asm.R7, 6, asm.Half),
		asm.JSet.Imm(asm.R0, 0x3fff, inelig), // MF or a fragment offset
		asm.LoadInd(asm.R0, asm.R7, 9, asm.Byte),
		asm.StoreMem(asm.RFP, protoOff, asm.R0, asm.Byte),
		asm.LoadInd(asm.R0, asm.R7, 12, asm.Word),
		asm.StoreMem(asm.RFP, addr0Off, asm.R0, asm.Word),
		asm.LoadInd(asm.R0, asm.R7, 16, asm.Word),
		asm.StoreMem(asm.RFP, addr1Off, asm.R0, asm.Word),
		asm.Mov.Imm(asm.R1, 4),
		asm.StoreMem(asm.RFP, familyOff, asm.R1, asm.Byte),
		asm.Ja.Label(l("l4")),
	)

	// IPv6: version 6, then at most 4 hop-by-hop, routing or destination options headers.
	v6 := needLen(asm.R7, 40)
	v6[0] = v6[0].WithSymbol(l("v6"))
	ins = append(ins, v6...)
	ins = append(ins,
		asm.LoadInd(asm.R0, asm.R7, 0, asm.Byte),
		asm.RSh.Imm(asm.R0, 4),
		asm.JNE.Imm(asm.R0, 6, inelig),
		asm.LoadInd(asm.R0, asm.R7, 6, asm.Byte),
		asm.StoreMem(asm.RFP, protoOff, asm.R0, asm.Byte),
	)
	for w := int16(0); w < 8; w++ {
		ins = append(ins,
			asm.LoadInd(asm.R0, asm.R7, int32(8+4*w), asm.Word),
			asm.StoreMem(asm.RFP, addr0Off+4*w, asm.R0, asm.Word),
		)
	}
	ins = append(ins,
		asm.Mov.Imm(asm.R1, 6),
		asm.StoreMem(asm.RFP, familyOff, asm.R1, asm.Byte),
		asm.Mov.Reg(asm.R8, asm.R7),
		asm.Add.Imm(asm.R8, 40),
	)
	for i := 0; i <= 4; i++ {
		next := l(fmt.Sprintf("ext%d", i+1))
		ins = append(ins,
			asm.LoadMem(asm.R1, asm.RFP, protoOff, asm.Byte).WithSymbol(l(fmt.Sprintf("ext%d", i))),
			asm.JEq.Imm(asm.R1, 0, l(fmt.Sprintf("walk%d", i))),
			asm.JEq.Imm(asm.R1, 43, l(fmt.Sprintf("walk%d", i))),
			asm.JEq.Imm(asm.R1, 60, l(fmt.Sprintf("walk%d", i))),
			asm.Ja.Label(l("l4")),
		)
		if i == 4 {
			// A fifth header of a walkable type: more than the fast path follows.
			ins = append(ins, asm.Ja.Label(inelig).WithSymbol(l("walk4")))
			break
		}
		walk := needLen(asm.R8, 2)
		walk[0] = walk[0].WithSymbol(l(fmt.Sprintf("walk%d", i)))
		ins = append(ins, walk...)
		ins = append(ins,
			asm.LoadInd(asm.R0, asm.R8, 1, asm.Byte),
			asm.Add.Imm(asm.R0, 1),
			asm.LSh.Imm(asm.R0, 3),
			asm.Mov.Reg(asm.R7, asm.R0), // R7: this header's size (the IP offset is no longer needed)
			asm.LoadInd(asm.R0, asm.R8, 0, asm.Byte),
			asm.StoreMem(asm.RFP, protoOff, asm.R0, asm.Byte),
			asm.Add.Reg(asm.R8, asm.R7),
			asm.Ja.Label(next),
		)
	}

	// Upper layer at R8: ports, or the echo identifier (as both ports).
	ins = append(ins,
		asm.LoadMem(asm.R1, asm.RFP, protoOff, asm.Byte).WithSymbol(l("l4")),
		asm.JEq.Imm(asm.R1, 6, l("ports")),
		asm.JEq.Imm(asm.R1, 17, l("ports")),
		asm.LoadMem(asm.R2, asm.RFP, familyOff, asm.Byte),
		asm.JEq.Imm(asm.R1, 1, l("icmp4")),
		asm.JEq.Imm(asm.R1, 58, l("icmp6")),
		asm.Ja.Label(inelig),
	)
	ports := needLen(asm.R8, 4)
	ports[0] = ports[0].WithSymbol(l("ports"))
	ins = append(ins, ports...)
	ins = append(ins,
		asm.LoadInd(asm.R0, asm.R8, 0, asm.Half),
		asm.StoreMem(asm.RFP, port0Off, asm.R0, asm.Half),
		asm.LoadInd(asm.R0, asm.R8, 2, asm.Half),
		asm.StoreMem(asm.RFP, port1Off, asm.R0, asm.Half),
		// TCP flags, when the header reaches that far; eligibility does not depend on them.
		asm.LoadMem(asm.R1, asm.RFP, protoOff, asm.Byte),
		asm.JNE.Imm(asm.R1, 6, l("canon")),
		asm.LoadMem(asm.R1, asm.R6, skbLen, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R8),
		asm.Add.Imm(asm.R2, 14),
		asm.JGT.Reg(asm.R2, asm.R1, l("canon")),
		asm.LoadInd(asm.R0, asm.R8, 13, asm.Byte),
		asm.StoreMem(asm.RFP, flagsOff, asm.R0, asm.Byte),
		asm.Ja.Label(l("canon")),

		asm.JNE.Imm(asm.R2, 4, inelig).WithSymbol(l("icmp4")),
		asm.Ja.Label(l("echo")),
		asm.JNE.Imm(asm.R2, 6, inelig).WithSymbol(l("icmp6")),
	)
	echo := needLen(asm.R8, 6)
	echo[0] = echo[0].WithSymbol(l("echo"))
	ins = append(ins, echo...)
	ins = append(ins,
		asm.LoadInd(asm.R0, asm.R8, 0, asm.Byte), // clobbers R1 to R5
		asm.LoadMem(asm.R2, asm.RFP, familyOff, asm.Byte),
		asm.JEq.Imm(asm.R2, 6, l("echo6")),
		asm.JEq.Imm(asm.R0, 8, l("echoid")),
		asm.JEq.Imm(asm.R0, 0, l("echoid")),
		asm.Ja.Label(inelig),
		asm.JEq.Imm(asm.R0, 128, l("echoid")).WithSymbol(l("echo6")),
		asm.JEq.Imm(asm.R0, 129, l("echoid")),
		asm.Ja.Label(inelig),
		asm.LoadInd(asm.R0, asm.R8, 4, asm.Half).WithSymbol(l("echoid")),
		asm.StoreMem(asm.RFP, port0Off, asm.R0, asm.Half),
		asm.StoreMem(asm.RFP, port1Off, asm.R0, asm.Half),
	)

	// Canonical order: endpoint 0 is the smaller (addr words, then port), unsigned.
	for w := int16(0); w < 4; w++ {
		sym := ""
		if w == 0 {
			sym = l("canon")
		}
		ld := asm.LoadMem(asm.R1, asm.RFP, addr0Off+4*w, asm.Word)
		if sym != "" {
			ld = ld.WithSymbol(sym)
		}
		ins = append(ins,
			ld,
			asm.LoadMem(asm.R2, asm.RFP, addr1Off+4*w, asm.Word),
			asm.JGT.Reg(asm.R1, asm.R2, l("swap")),
			asm.JLT.Reg(asm.R1, asm.R2, l("done")),
		)
	}
	ins = append(ins,
		asm.LoadMem(asm.R1, asm.RFP, port0Off, asm.Half),
		asm.LoadMem(asm.R2, asm.RFP, port1Off, asm.Half),
		asm.JLE.Reg(asm.R1, asm.R2, l("done")),
		asm.LoadMem(asm.R1, asm.RFP, addr0Off, asm.DWord).WithSymbol(l("swap")),
		asm.LoadMem(asm.R2, asm.RFP, addr0Off+8, asm.DWord),
		asm.LoadMem(asm.R3, asm.RFP, addr1Off, asm.DWord),
		asm.LoadMem(asm.R4, asm.RFP, addr1Off+8, asm.DWord),
		asm.StoreMem(asm.RFP, addr0Off, asm.R3, asm.DWord),
		asm.StoreMem(asm.RFP, addr0Off+8, asm.R4, asm.DWord),
		asm.StoreMem(asm.RFP, addr1Off, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, addr1Off+8, asm.R2, asm.DWord),
		asm.LoadMem(asm.R1, asm.RFP, port0Off, asm.Half),
		asm.LoadMem(asm.R2, asm.RFP, port1Off, asm.Half),
		asm.StoreMem(asm.RFP, port0Off, asm.R2, asm.Half),
		asm.StoreMem(asm.RFP, port1Off, asm.R1, asm.Half),
		asm.Mov.Imm(asm.R1, 0).WithSymbol(l("done")), // a no-op that carries the label
	)
	return ins
}

// tcProgram is the tcx ingress program of both ports. It follows the socket filter's per-frame
// decision left in cb[0]: a frame the filter let into a ring stays on the normal path (returning
// TCX_NEXT), a frame it kept out is redirected to the peer port without another parse or flow
// lookup (the filter counted it against its flow). A frame no filter of ours saw (no bridge socket
// on the port at the moment) is redirected when its flow is live, and counted against it, and
// otherwise left alone. The per-CPU counters are updated on every redirect.
func (p *Path) tcProgram() asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R1, asm.R6, skbCB0, asm.Word),
		asm.StoreMem(asm.RFP, markOff, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R2, 0),
		asm.StoreMem(asm.R6, skbCB0, asm.R2, asm.Word),
		asm.JEq.Imm(asm.R1, markRing, "next"),
		asm.JNE.Imm(asm.R1, markFast, "unmarked"),
		// The filter found the flow live, counted the frame and left the peer's ifindex in
		// cb[1]: forward it, with no parse and no map lookup.
		asm.LoadMem(asm.R1, asm.R6, skbCB1, asm.Word),
		asm.StoreMem(asm.R6, skbCB1, asm.R2, asm.Word),
		asm.JEq.Imm(asm.R1, 0, "noport"),
		asm.FnRedirect.Call(),
		asm.Return(),
		asm.LoadMem(asm.R1, asm.R6, skbIngressIfindex, asm.Word).WithSymbol("unmarked"),
		asm.StoreMem(asm.RFP, idxOff, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("ports"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, idxOff),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.RFP, idxOff, asm.R1, asm.Word), // the peer's ifindex from here on
		asm.LoadMem(asm.R1, asm.R0, 4, asm.Word),
		asm.And.Imm(asm.R1, 1),
		asm.StoreMem(asm.RFP, sideOff, asm.R1, asm.DWord),
	}
	ins = append(ins, parseKey("p_", "next")...)
	ins = append(ins,
		// No filter of ours saw this frame (no bridge socket on the port at the moment):
		// follow the map.
		asm.LoadMapPtr(asm.R1, 0).WithReference("flows"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, keyOff),
		asm.FnMapLookupElem.Call(),
		asm.Mov.Reg(asm.R9, asm.R0),
		asm.JEq.Imm(asm.R9, 0, "next"),
		asm.LoadMem(asm.R2, asm.RFP, sideOff, asm.DWord),
		asm.And.Imm(asm.R2, 1),
		asm.LSh.Imm(asm.R2, 2),
		asm.Mov.Reg(asm.R3, asm.R9),
		asm.Add.Reg(asm.R3, asm.R2),
		asm.LoadMem(asm.R3, asm.R3, valLive, asm.Word),
		asm.JEq.Imm(asm.R3, 0, "next"),
		asm.FnKtimeGetCoarseNs.Call(),
		asm.StoreMem(asm.R9, valLastSeen, asm.R0, asm.DWord),
		asm.LoadMem(asm.R2, asm.RFP, sideOff, asm.DWord),
		asm.And.Imm(asm.R2, 1),
		asm.LSh.Imm(asm.R2, 3),
		asm.Mov.Reg(asm.R3, asm.R9),
		asm.Add.Reg(asm.R3, asm.R2),
		asm.Mov.Imm(asm.R4, 1),
		asm.AddAtomic.Mem(asm.R3, asm.R4, asm.DWord, valPackets),
		asm.LoadMem(asm.R4, asm.R6, skbLen, asm.Word),
		asm.AddAtomic.Mem(asm.R3, asm.R4, asm.DWord, valBytes),
	)
	// Per-CPU counters; the key goes in the side's unused upper half, idxOff holds the peer.
	ins = append(ins, lookupCounters(sideOff+4, "redirect")...)
	ins = append(ins,
		asm.LoadMem(asm.R2, asm.RFP, sideOff, asm.Word),
		asm.And.Imm(asm.R2, 1),
		asm.LSh.Imm(asm.R2, 3),
		asm.Mov.Reg(asm.R3, asm.R0),
		asm.Add.Reg(asm.R3, asm.R2),
		asm.Mov.Imm(asm.R4, 1),
		asm.AddAtomic.Mem(asm.R3, asm.R4, asm.DWord, cntFrames),
		asm.LoadMem(asm.R4, asm.R6, skbLen, asm.Word),
		asm.AddAtomic.Mem(asm.R3, asm.R4, asm.DWord, cntBytes),
		asm.LoadMem(asm.R1, asm.RFP, idxOff, asm.Word).WithSymbol("redirect"),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRedirect.Call(),
		asm.Return(),
		// A frame the filter kept out of the ring on a port with no peer: count the loss.
	)
	ins = append(ins, labelled("noport", countEvent(cntNoPort, "next"))...)
	ins = append(ins,
		asm.Mov.Imm(asm.R0, tcxNext).WithSymbol("next"),
		asm.Return(),
	)
	return ins
}

// tapProgram is the socket filter of fanout member index on side. Every frame first gets the
// user's classic filter; a frame it refuses is refused, and tc leaves it alone. Then, for a frame
// of a flow in the map:
//
//   - live in this direction and not idle: kept out of the ring and marked for tc to redirect;
//   - idle past the timeout: the flow is removed (counted as expired) and the frame goes to the ring;
//   - a TCP FIN or RST: the flow is removed (counted as closed) and the frame goes to the ring;
//   - handing over: if every frame of the flow this filter let into a ring has been settled
//     (Filter.Settle published a done count at or past the flow's Last), the direction becomes
//     live and the frame takes the fast path; otherwise the frame goes to the ring and becomes the
//     flow's Last.
//   - while that ring overflowed lately (see ShedHold), such a frame is dropped instead, and
//     counted as shed.
//
// Every frame let into the ring increments the member's admitted count, the sequence number
// Settle compares with.
func (p *Path) tapProgram(side Side, index int, user []bpf.Instruction) (asm.Instructions, error) {
	m := p.cfg.Members
	s := int16(side)
	admOff := uint32(8 * (int(side)*m + index))
	doneOff := uint32(8 * (2*m + int(side)*m))
	pendOff := uint32(8 * (4*m + int(side)*m + index))
	shedOff := uint32(8 * (6*m + int(side)*m + index))
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.Mov.Imm(asm.R0, markRing),
		asm.StoreMem(asm.R6, skbCB0, asm.R0, asm.Word),
	}
	if len(user) > 0 {
		u, err := translateCBPF(user, "user_", "verdict")
		if err != nil {
			return nil, err
		}
		ins = append(ins, u...)
		ins = append(ins, asm.JEq.Imm32(asm.R0, 0, "exit").WithSymbol("verdict"))
	} else {
		ins = append(ins, asm.Mov.Imm32(asm.R0, -1))
	}
	ins = append(ins,
		asm.Mov.Reg(asm.R9, asm.R0), // R9: the snap length to return when the frame goes to the ring
		asm.LoadMem(asm.R1, asm.R6, skbPktType, asm.Word),
		asm.JEq.Imm(asm.R1, packetOutgoing, "admit"),
	)
	ins = append(ins, parseKey("p_", "admit")...)
	ins = append(ins,
		asm.LoadMapPtr(asm.R1, 0).WithReference("flows"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, keyOff),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "admit"),
		asm.Mov.Reg(asm.R7, asm.R0), // R7: the flow's value
		// A TCP FIN or RST returns the flow to the bridge, so that its teardown is inspected.
		asm.LoadMem(asm.R1, asm.RFP, flagsOff, asm.Byte),
		asm.JSet.Imm(asm.R1, 0x05, "teardown"),
		asm.FnKtimeGetCoarseNs.Call(), // the tick is plenty for an idle timeout, and costs no clock read
		asm.Mov.Reg(asm.R8, asm.R0),   // R8: now
		asm.LoadMem(asm.R1, asm.R7, valLastSeen, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.R8),
		asm.Sub.Reg(asm.R2, asm.R1),
		asm.LoadImm(asm.R3, int64(p.cfg.IdleTimeout), asm.DWord),
		asm.JSGT.Reg(asm.R2, asm.R3, "expire"),
		asm.LoadMem(asm.R1, asm.R7, valLive+4*s, asm.Word),
		asm.JNE.Imm(asm.R1, 0, "fast"),
		// Handing over.
		asm.StoreMem(asm.R7, valLastSeen, asm.R8, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, valLast+8*s, asm.DWord),
		asm.JEq.Imm(asm.R2, 0, "pend"),
		asm.LoadMem(asm.R3, asm.R7, valMember+4*s, asm.Word),
		asm.JGE.Imm(asm.R3, int32(m), "pend"),
		asm.LoadMapValue(asm.R4, 0, doneOff).WithReference("seq"),
		asm.Mov.Reg(asm.R5, asm.R3),
		asm.LSh.Imm(asm.R5, 3),
		asm.Add.Reg(asm.R4, asm.R5),
		asm.LoadMem(asm.R4, asm.R4, 0, asm.DWord),
		asm.JGT.Reg(asm.R2, asm.R4, "outstanding"),
		// Everything the flow put into member R3's ring has been settled.
		asm.JNE.Imm(asm.R3, int32(index), "pend"),
		asm.Mov.Imm(asm.R1, 1).WithSymbol("golive"),
		asm.StoreMem(asm.R7, valLive+4*s, asm.R1, asm.Word),
		// The fast path: the frame is counted against its flow here, where the flow is at hand,
		// and tc forwards it on the mark without looking the flow up again.
		asm.StoreMem(asm.R7, valLastSeen, asm.R8, asm.DWord).WithSymbol("fast"),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R7, asm.R1, asm.DWord, valPackets+8*s),
		asm.LoadMem(asm.R1, asm.R6, skbLen, asm.Word),
		asm.AddAtomic.Mem(asm.R7, asm.R1, asm.DWord, valBytes+8*s),
	)
	// ... and against the per-CPU totals (array lookups, which the verifier inlines).
	ins = append(ins, lookupCounters(idxOff, "peer")...)
	ins = append(ins,
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, cntFrames+8*s),
		asm.LoadMem(asm.R1, asm.R6, skbLen, asm.Word),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, cntBytes+8*s),
		// The peer's ifindex goes to tc in cb[1]; 0 (no port attached) makes tc count the frame
		// as lost (NoPort).
		asm.Mov.Imm(asm.R1, int32(side)).WithSymbol("peer"),
		asm.StoreMem(asm.RFP, idxOff, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("peers"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, idxOff),
		asm.FnMapLookupElem.Call(),
		asm.Mov.Imm(asm.R1, 0),
		asm.JEq.Imm(asm.R0, 0, "topeer"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.R6, skbCB1, asm.R1, asm.Word).WithSymbol("topeer"),
		asm.Mov.Imm(asm.R0, markFast),
		asm.StoreMem(asm.R6, skbCB0, asm.R0, asm.Word),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
		// Frames still in member R3's ring: this one queues behind them. On another member
		// (the fanout group changed) it goes to the ring untracked until R3 has settled.
		asm.JNE.Imm(asm.R3, int32(index), "admit").WithSymbol("outstanding"),
		// The ring overflowed lately (Filter.Observe moved the shed deadline past now): the kernel
		// is dropping frames anyway, so drop this one rather than queue it behind its flow (see
		// ShedHold). Its flow's Last then stays put, the bridge catches up with it, and the flow
		// leaves the overloaded ring in order. tc sees the ring mark and does not forward it.
		asm.LoadMapValue(asm.R4, 0, shedOff).WithReference("seq"),
		asm.LoadMem(asm.R4, asm.R4, 0, asm.DWord),
		asm.JLT.Reg(asm.R8, asm.R4, "shed"),
	)
	if limit := p.cfg.HandoverLimit; limit > 0 {
		// The bridge never caught up: after limit frames, switch anyway, letting this frame
		// overtake those still in the ring.
		ins = append(ins,
			asm.LoadMem(asm.R1, asm.R7, valWaits+4*s, asm.Word),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R7, valWaits+4*s, asm.R1, asm.Word),
			asm.JLT.Imm(asm.R1, int32(limit), "pend"),
		)
		ins = append(ins, countEvent(cntForced, "golive")...)
		ins = append(ins, asm.Ja.Label("golive"))
	}
	ins = append(ins,
		asm.LoadMapValue(asm.R1, 0, admOff).WithReference("seq").WithSymbol("pend"),
		asm.Mov.Imm(asm.R2, 1),
		fetchAdd(asm.R1, asm.R2, 0),
		asm.Add.Imm(asm.R2, 1),
		asm.StoreMem(asm.R7, valLast+8*s, asm.R2, asm.DWord),
		asm.LoadMapValue(asm.R1, 0, pendOff).WithReference("seq"),
		asm.StoreMem(asm.R1, 0, asm.R2, asm.DWord), // tells the worker to settle (Filter.Wants)
		asm.Mov.Imm(asm.R2, int32(index)),
		asm.StoreMem(asm.R7, valMember+4*s, asm.R2, asm.Word),
		asm.Mov.Reg(asm.R0, asm.R9),
		asm.Return(),
	)
	// Idle past the timeout, or a TCP FIN or RST: hand the flow back, counted by the CPU that
	// removed it (when another removed it first, it counted).
	ins = append(ins, labelled("expire", removeFlow("admit"))...)
	ins = append(ins, countEvent(cntExpired, "admit")...)
	ins = append(ins, asm.Ja.Label("admit"))
	ins = append(ins, labelled("teardown", removeFlow("admit"))...)
	ins = append(ins, countEvent(cntClosed, "admit")...)
	ins = append(ins, asm.Ja.Label("admit"))
	// Shed: dropped, counted, and neither queued nor forwarded.
	ins = append(ins, labelled("shed", countEvent(cntShed, "shed_out"))...)
	ins = append(ins,
		asm.Mov.Imm(asm.R0, 0).WithSymbol("shed_out"),
		asm.Return(),
		// Into the ring.
		asm.LoadMapValue(asm.R1, 0, admOff).WithReference("seq").WithSymbol("admit"),
		asm.Mov.Imm(asm.R2, 1),
		asm.AddAtomic.Mem(asm.R1, asm.R2, asm.DWord, 0),
		asm.Mov.Reg(asm.R0, asm.R9),
		asm.Return(),
		asm.Return().WithSymbol("exit"),
	)
	if len(user) == 0 {
		// Without a user filter nothing jumps to exit; the verifier refuses unreachable code.
		ins = ins[:len(ins)-1]
	}
	return ins, nil
}

// fetchAdd is asm.FetchAdd.Mem for a DWord. cilium/ebpf v0.22.0 marshals an atomic instruction's
// immediate from Constant before it folds the atomic operation into it, so the BPF_FETCH bit is
// lost and src keeps its value; setting Constant as well makes the kernel see BPF_ADD|BPF_FETCH.
// TestHandoverStateMachine fails without it.
func fetchAdd(dst, src asm.Register, off int16) asm.Instruction {
	ins := asm.FetchAdd.Mem(dst, src, asm.DWord, off)
	ins.Constant = int64(asm.FetchAdd >> 8)
	return ins
}

// lookupCounters looks up the per-CPU counters (key 0, stored at the stack slot key) into R0, and
// jumps to miss if the lookup fails, which it cannot for an array but the verifier wants checked.
// It clobbers R1 to R5.
func lookupCounters(key int16, miss string) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.RFP, key, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("counters"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(key)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, miss),
	}
}

// countEvent adds one to the per-CPU counter at offset off and falls through, or jumps to miss.
func countEvent(off int16, miss string) asm.Instructions {
	return append(lookupCounters(idxOff, miss),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, off),
	)
}

// removeFlow deletes the flow keyed at keyOff from the flow map and jumps to gone when it was not
// there (another CPU removed it first). It clobbers R0 to R5.
func removeFlow(gone string) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, 0).WithReference("flows"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, keyOff),
		asm.FnMapDeleteElem.Call(),
		asm.JNE.Imm(asm.R0, 0, gone),
	}
}

// labelled puts sym on the first of ins.
func labelled(sym string, ins asm.Instructions) asm.Instructions {
	ins[0] = ins[0].WithSymbol(sym)
	return ins
}
