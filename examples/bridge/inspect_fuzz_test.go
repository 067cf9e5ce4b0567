//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/afbridge/afbridge/flow"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
)

// FuzzInspect sends fuzzed frames through one worker's inspecting handler: each piece of the
// input (pieces are separated by 0xff 0xff) is, by its first byte, a TCP segment (header and
// payload, as fuzzed) of one connection wrapped in IPv4 or IPv6 and Ethernet, either way, or a
// raw frame. Whatever arrives, the handler returns Pass or Drop without panicking, and once a
// flow is dropped (by a rule or for an evasion attempt) every later frame of it is dropped.
func FuzzInspect(f *testing.F) {
	seg := func(ctl byte, seq, ack uint32, flags uint8, payload string) []byte {
		return append([]byte{ctl}, tcp(42000, 8080, seq, ack, flags, []byte(payload))...)
	}
	join := func(pieces ...[]byte) []byte { return bytes.Join(pieces, []byte{0xff, 0xff}) }
	f.Add(join(seg(0, 1, 0, 0x02, ""), seg(1, 9, 2, 0x12, ""), seg(0, 2, 10, 0x10, "GET /forb"), seg(0, 11, 10, 0x18, "idden")))
	f.Add(join(seg(2, 1, 0, 0x02, ""), seg(3, 9, 2, 0x12, ""), seg(2, 7, 10, 0x18, "bidden"), seg(2, 2, 10, 0x18, "GET /for")))
	f.Add(join(seg(0, 5, 0, 0x18, "abcdef"), seg(0, 7, 0, 0x18, "XYZ"), seg(1, 100, 11, 0x10, "")))
	f.Add(join(append([]byte{4}, fragments(false, udp(5353, 9999, bytes.Repeat([]byte("forbidden"), 30)), 64, 200)[1]...)))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, _, _ := testBridge(t, evasionRules, peer.IPS, peer.IPS)
		h := b.cfg.Verdict.New(0)
		dropped := map[flow.Key]bool{} // flows seen dropped: every later frame of them is dropped
		n := 0
		for piece := range bytes.SplitSeq(in, []byte{0xff, 0xff}) {
			if len(piece) == 0 || n == 64 {
				continue
			}
			n++
			ctl, body := piece[0], piece[1:]
			fromClient := ctl&1 == 0
			var frame []byte
			switch {
			case ctl&4 != 0:
				frame = body
			case len(body) < 4:
				continue
			default:
				// The connection's ports, whatever the fuzzer wrote there.
				body = bytes.Clone(body)
				sp, dp := uint16(42000), uint16(8080)
				if !fromClient {
					sp, dp = dp, sp
				}
				binary.BigEndian.PutUint16(body, sp)
				binary.BigEndian.PutUint16(body[2:], dp)
				src, dst := ipClient, ipServer
				src6, dst6 := ip6Client, ip6Server
				if !fromClient {
					src, dst, src6, dst6 = dst, src, dst6, src6
				}
				if ctl&2 != 0 {
					frame = eth(macClient, macServer, ip6(src6, dst6, 6, int(ctl>>4)&3, false, 0, 0, false, body))
				} else {
					frame = eth(macClient, macServer, ip4(src, dst, 6, 1, 0, false, body))
				}
			}
			dir := verdict.AToB
			if !fromClient {
				dir = verdict.BToA
			}
			v := h.Handle(packet(frame, dir))
			if v != verdict.Pass && v != verdict.Drop {
				t.Fatalf("verdict %v", v)
			}
			if cur := b.ins[0].cur; cur != nil {
				if dropped[cur.Key()] && v != verdict.Drop {
					t.Fatalf("piece %d: a frame of a dropped flow passed", n)
				}
				if cur.Dropped() {
					dropped[cur.Key()] = true
				}
			}
		}
	})
}
