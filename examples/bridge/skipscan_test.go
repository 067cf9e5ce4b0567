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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// skipRules are the bench harness's shape (every content 14 bytes or
// longer), so the rules package matches them through its skip table, plus
// two drop rules for port 8080, one nocase.
func skipRules() string {
	var b strings.Builder
	for i := range 100 {
		proto := []string{"udp", "tcp"}[i%2]
		fmt.Fprintf(&b, "alert %s any any -> any any (msg:\"bench %d\"; content:\"zq-needle-%04d\"; sid:%d; rev:1;)\n", proto, i+1, i+1, 1001+i)
	}
	b.WriteString("drop tcp any any -> any 8080 (msg:\"forbidden\"; content:\"zq-forbidden-0042\"; sid:100;)\n")
	b.WriteString("drop tcp any any -> any 8080 (msg:\"forbidden nocase\"; content:\"ZQ-NoCase-Forbidden\"; nocase; sid:101;)\n")
	return b.String()
}

// TestInspectTCPSkipScan: with contents long enough for the skip table, a
// forbidden content split over two or three segments at every place, in a
// kilobyte of random bytes, is still found in the stream view (retained
// tail plus new bytes), and the same flow with one byte of it changed passes.
func TestInspectTCPSkipScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	filler := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a' + byte(rng.IntN(26)) // letters: no accidental match of the contents
		}
		return string(b)
	}
	text := skipRules()
	port := uint16(41000)
	for _, needle := range []string{"zq-forbidden-0042", "zQ-nOcAsE-fOrBiDdEn"} {
		for cut := 1; cut < len(needle); cut += 3 {
			for _, three := range []bool{false, true} {
				head, tail := filler(1000), filler(500)
				stream := head + needle + tail
				cuts := []int{len(head) + cut}
				if three {
					cuts = []int{len(head) + cut/2, len(head) + cut}
				}
				for _, bad := range []bool{true, false} {
					s := stream
					if !bad {
						s = head + needle[:len(needle)-1] + "_" + tail
					}
					b, _, _ := testBridge(t, text, peer.IPS, peer.IPS)
					port++
					c := &tcpConn{t: t, h: b.cfg.Verdict.New(0), cport: port, cisn: 1000, sisn: 7}
					c.handshake()
					from := 0
					for _, at := range cuts {
						assert.Equal(t, verdict.Pass, c.send(from, s[from:at]), "%q cut at %v: before the end", needle, cuts)
						from = at
					}
					want := verdict.Pass
					if bad {
						want = verdict.Drop
					}
					assert.Equal(t, want, c.send(from, s[from:]), "%q cut at %v, forbidden %v", needle, cuts, bad)
				}
			}
		}
	}
}

// noskipRules are the evasion rules plus two with 3-byte contents: three
// fast patterns under 4 bytes keep the rules package on its plain automaton.
const noskipRules = evasionRules + `alert tcp any any -> any 8080 (msg:"a"; content:"|00 01 02|"; sid:103;)
alert tcp any any -> any 8080 (msg:"b"; content:"|03 04 05|"; sid:104;)
`

// BenchmarkInspectSkip is BenchmarkInspect with random payloads (what iperf3
// sends) and the bench harness's rule shape, whose contents the rules
// package matches through its skip table ("skip"), beside rules that keep
// it on the plain automaton ("noskip").
func BenchmarkInspectSkip(b *testing.B) {
	for _, set := range []struct{ name, text string }{{"skip", skipRules()}, {"noskip", noskipRules}} {
		for _, size := range []int{64, 1448} {
			for _, mode := range []string{"match", "inspect"} {
				b.Run(fmt.Sprintf("%s/%s/%dB", set.name, mode, size), func(b *testing.B) {
					br, _, _ := testBridge(b, set.text, peer.IPS, peer.IPS)
					rs, err := rules.Parse(strings.NewReader(set.text), "bench.rules")
					require.NoError(b, err)
					rh := br.rulesFactory(rs).New(0).(*ruleHandler)
					if mode == "match" {
						rh.ins = nil
					}
					c := &tcpConn{t: b, h: rh, cport: 43000, cisn: 1, sisn: 2}
					c.handshake()
					pay := make([]byte, size)
					rng := rand.New(rand.NewPCG(1, 2))
					for i := range pay {
						pay[i] = byte(rng.Uint32())
					}
					seg := c.frame(true, c.cisn+1, c.sisn+1, 0x18, pay)
					ack := c.frame(false, c.sisn+1, 0, 0x10, nil)
					seq := c.cisn + 1
					tcpData := seg.Data[14+20:]
					b.SetBytes(int64(len(seg.Data)))
					b.ReportAllocs()
					for i := 0; b.Loop(); i++ {
						binary.BigEndian.PutUint32(tcpData[4:], seq)
						if rh.Handle(seg) != verdict.Pass {
							b.Fatal("a random segment was not passed")
						}
						seq += uint32(size)
						if i%8 == 7 {
							binary.BigEndian.PutUint32(ack.Data[14+20+8:], seq)
							rh.Handle(ack)
						}
					}
				})
			}
		}
	}
}
