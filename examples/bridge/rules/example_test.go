package rules_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/afbridge/afbridge/examples/bridge/rules"
)

// tcpFrame builds an Ethernet/IPv4/TCP frame the way a capture would hand it
// over. Checksums are left zero: matching does not look at them.
func tcpFrame(src, dst [4]byte, sport, dport uint16, flags uint8, payload string) []byte {
	f := []byte{
		0x02, 0, 0, 0, 0, 0x02, // destination MAC
		0x02, 0, 0, 0, 0, 0x01, // source MAC
		0x08, 0x00, // IPv4
		0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, // IPv4 header up to the addresses
	}
	f = append(f, src[:]...)
	f = append(f, dst[:]...)
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	binary.BigEndian.PutUint32(tcp[8:], 5000)
	tcp[12], tcp[13] = 5<<4, flags
	f = append(f, tcp...)
	f = append(f, payload...)
	binary.BigEndian.PutUint16(f[16:], uint16(len(f)-14))
	return f
}

func Example() {
	const ruleText = `
# Drop a classic exploit, refuse telnet, log curl.
drop tcp any any -> any [80,8080] (msg:"passwd grab"; content:"GET "; content:"/etc/passwd"; sid:1000001; rev:2;)
reject tcp any any -> any 23 (msg:"no telnet"; sid:1000002;)
alert tcp any any -> any any (msg:"curl"; content:"user-agent|3a| curl/"; nocase; sid:1000003;)
pass tcp 192.0.2.10 any -> any any (msg:"scanner"; sid:1000004;)
`
	set, err := rules.Parse(strings.NewReader(ruleText), "example.rules")
	if err != nil {
		fmt.Println(err)
		return
	}

	client, server := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	frames := []struct {
		name  string
		frame []byte
	}{
		{"exploit", tcpFrame(client, server, 40000, 80, 0x18, "GET /cgi-bin/../../etc/passwd HTTP/1.1\r\nUser-Agent: curl/8.5\r\n\r\n")},
		{"curl", tcpFrame(client, server, 40001, 80, 0x18, "GET / HTTP/1.1\r\nUser-Agent: Curl/8.5\r\n\r\n")},
		{"telnet", tcpFrame(client, server, 40002, 23, 0x02, "")},
		{"scanner", tcpFrame([4]byte{192, 0, 2, 10}, server, 40003, 23, 0x02, "")},
		{"benign", tcpFrame(client, server, 40004, 443, 0x10, "\x16\x03\x01")},
	}

	// One Result per goroutine, reused for every frame: Match allocates
	// nothing.
	r := set.NewResult()
	reject := make([]byte, rules.MaxRejectLen)
	for _, f := range frames {
		action := set.Match(f.frame, r)
		fmt.Printf("%-7s %s:%d -> %s:%d %s: %s", f.name, r.SrcIP, r.SrcPort, r.DstIP, r.DstPort, r.ProtoName, action)
		if r.Rule != nil {
			fmt.Printf(" by sid %d %q", r.Rule.SID, r.Rule.Msg)
		}
		fmt.Println()
		for _, a := range r.Alerts {
			eve := "allowed"
			if a.Action.Blocks() {
				eve = "blocked"
			}
			fmt.Printf("        eve alert sid %d action %s\n", a.SID, eve)
		}
		if action == rules.Reject {
			for _, dir := range []rules.Direction{rules.ToSource, rules.ToDestination} {
				n, err := rules.BuildReject(f.frame, dir, reject)
				if err != nil {
					fmt.Println(err)
					continue
				}
				if n == 0 {
					fmt.Println("        no RST to the destination: the segment has no ACK")
					continue
				}
				var p rules.Packet
				p.Decode(reject[:n])
				fmt.Printf("        send %d-byte RST %s:%d -> %s:%d\n", n, p.SrcIP, p.SrcPort, p.DstIP, p.DstPort)
			}
		}
	}
	// Output:
	// exploit 10.0.0.1:40000 -> 10.0.0.2:80 TCP: drop by sid 1000001 "passwd grab"
	//         eve alert sid 1000001 action blocked
	//         eve alert sid 1000003 action allowed
	// curl    10.0.0.1:40001 -> 10.0.0.2:80 TCP: alert by sid 1000003 "curl"
	//         eve alert sid 1000003 action allowed
	// telnet  10.0.0.1:40002 -> 10.0.0.2:23 TCP: reject by sid 1000002 "no telnet"
	//         eve alert sid 1000002 action blocked
	//         send 54-byte RST 10.0.0.2:23 -> 10.0.0.1:40002
	//         no RST to the destination: the segment has no ACK
	// scanner 192.0.2.10:40003 -> 10.0.0.2:23 TCP: pass by sid 1000004 "scanner"
	// benign  10.0.0.1:40004 -> 10.0.0.2:443 TCP: nomatch
}

func ExampleParse_error() {
	const ruleText = `alert tcp any any -> any any (msg:"ok"; sid:1;)
alert tcp any any => any any (msg:"typo"; sid:2;)
alert tcp any any -> any any (msg:"needs flowbits"; flowbits:set,x; sid:3;)
`
	_, err := rules.Parse(strings.NewReader(ruleText), "local.rules")
	var list rules.ErrorList
	if errors.As(err, &list) {
		for _, pe := range list {
			fmt.Println(pe)
		}
	}
	var pe *rules.ParseError
	if errors.As(err, &pe) {
		fmt.Printf("first error: line %d, column %d\n", pe.Line, pe.Col)
	}
	// Output:
	// local.rules:2:19: expected "->" or "<>", found "=>"
	// local.rules:3:53: unknown option "flowbits" (supported: msg, sid, rev, content, nocase, flow, bypass)
	// first error: line 2, column 19
}
