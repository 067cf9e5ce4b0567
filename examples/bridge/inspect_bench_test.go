//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/require"
)

// benchRules is the rule set of the bench harness's inspection run: n content rules,
// alternating udp and tcp, none of which matches random payload.
func benchRules(n int, udpOnly bool) string {
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		proto := "tcp"
		if udpOnly || i%2 == 1 {
			proto = "udp"
		}
		fmt.Fprintf(&sb, "alert %s any any -> any any (msg:\"bench %d\"; content:\"zq-needle-%04d\"; sid:%d; rev:1;)\n",
			proto, i, i, 1000+i)
	}
	return sb.String()
}

// BenchmarkInspectTCP is the cost of one bulk TCP transfer through a worker's handler, as the
// bench harness drives it: the client sends random payload in segments of 1,448 bytes
// (offloads off) or in 64 KiB GSO super-frames (offloads on), the server acknowledges every
// second segment (every super-frame), with the harness's 100 content rules. "plain" is the
// bridge without rules (verdict.PassAll), "match" matches frame by frame, "inspect" reassembles
// the stream and matches what it makes visible. One op is one data frame and its share of
// ACKs; ns/frame counts the ACKs as frames, ns/B is per payload byte. The "-noscan" modes
// load the same rules all as udp, so that no TCP payload is scanned: they show what
// inspection costs beside the content scan. "both/" is a transfer both ways at once: the two
// sides send data frames in turn, each acknowledging the other's last.
func BenchmarkInspectTCP(b *testing.B) {
	for _, both := range []bool{false, true} {
		for _, size := range []int{1448, 45 * 1448} {
			for _, mode := range []string{"plain", "match", "inspect", "match-noscan", "inspect-noscan"} {
				name := fmt.Sprintf("%s/%d", mode, size)
				if both {
					name = "both/" + name
				}
				b.Run(name, func(b *testing.B) { benchInspectTCP(b, mode, size, both) })
			}
		}
	}
}

func benchInspectTCP(b *testing.B, mode string, size int, both bool) {
	ackEvery := 2
	if size > 1448 || both {
		ackEvery = 1
	}
	text := benchRules(100, strings.HasSuffix(mode, "-noscan"))
	br, _, _ := testBridge(b, text, peer.IPS, peer.IPS)
	set, err := rules.Parse(strings.NewReader(text), "bench.rules")
	require.NoError(b, err)
	var h verdict.Handler = verdict.PassAll
	if mode != "plain" {
		rh := br.rulesFactory(set).New(0).(*ruleHandler)
		if strings.HasPrefix(mode, "match") {
			rh.ins = nil
		}
		h = rh
	}
	c := &tcpConn{t: b, h: h, cport: 46000, cisn: 1, sisn: 2}
	c.handshake()
	// Frames with different random payloads, so that the scan sees fresh bytes; [0] is the
	// client's, [1] the server's.
	rnd := rand.New(rand.NewPCG(1, 2))
	var segs [2][16]*verdict.Packet
	for side := range segs {
		for i := range segs[side] {
			pay := make([]byte, size)
			for j := range pay {
				pay[j] = byte(rnd.Uint32())
			}
			segs[side][i] = c.frame(side == 0, 0, 0, 0x10, pay)
		}
	}
	ack := c.frame(false, c.sisn+1, 0, 0x10, nil)
	seq := [2]uint32{c.cisn + 1, c.sisn + 1}
	frames := 0
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		side := 0
		if both {
			side = i & 1
		}
		seg := segs[side][i/2%16]
		binary.BigEndian.PutUint32(seg.Data[14+20+4:], seq[side])
		binary.BigEndian.PutUint32(seg.Data[14+20+8:], seq[1-side])
		if h.Handle(seg) != verdict.Pass {
			b.Fatal("segment not passed")
		}
		frames++
		seq[side] += uint32(size)
		if !both && i%ackEvery == ackEvery-1 {
			binary.BigEndian.PutUint32(ack.Data[14+20+8:], seq[0])
			h.Handle(ack)
			frames++
		}
	}
	ns := float64(b.Elapsed().Nanoseconds())
	b.ReportMetric(ns/float64(frames), "ns/frame")
	b.ReportMetric(ns/float64(b.N)/float64(size), "ns/B")
}
