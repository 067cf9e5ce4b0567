//go:build linux

package main

import (
	"encoding/binary"
	"net"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// spoofedUDP builds an Ethernet/IPv4/UDP frame from a made-up host (i picks its MAC and
// 198.19.x.y address) to dst.
func spoofedUDP(dstMAC net.HardwareAddr, dst net.IP, dport uint16, i int) []byte {
	f := make([]byte, 14+20+8+16)
	copy(f[0:6], dstMAC)
	copy(f[6:12], []byte{0x02, 0xee, 0, byte(i >> 16), byte(i >> 8), byte(i)})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(len(f)-14))
	copy(ip[12:16], []byte{198, 19, byte(i >> 8), byte(i)})
	copy(ip[16:20], dst.To4())
	var s uint32
	for j := 0; j < 20; j += 2 {
		s += uint32(binary.BigEndian.Uint16(ip[j:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(s))
	udp := f[34:]
	binary.BigEndian.PutUint16(udp[0:], uint16(10000+i%50000))
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	return f // UDP checksum 0: none, legal for IPv4
}

// TestRejectFloodShaped reproduces issue 14's stall: with the client-side port shaped to
// 200 kbit/s and a flood of spoofed UDP to a rejected port, a worker blocked sending ICMP
// unreachables, and legitimate traffic from client to server fell to 4%. Now rejects beyond
// the rate limit are not sent, a full port drops them, and the legitimate datagrams get through.
func TestRejectFloodShaped(t *testing.T) {
	testenv.RequireTool(t, "tc")
	tp := newTopo(t)
	testenv.MustRun(t, tp.bridge, "tc", "qdisc", "add", "dev", "b0", "root", "tbf", "rate", "200kbit", "burst", "4kb", "limit", "4mb")
	rulesPath := writeFile(t, t.TempDir(), "flood.rules", `reject udp any any -> any 9999 (msg:"closed port"; sid:50;)`+"\n")
	p := start(t, tp.bridge, "-i", "b0:b1", "-rules", rulesPath)
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)

	var serverMAC net.HardwareAddr
	var ln *net.UDPConn
	require.NoError(t, tp.server.Do(func() error {
		ifi, err := net.InterfaceByName("s0")
		if err != nil {
			return err
		}
		serverMAC = ifi.HardwareAddr
		ln, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(serverIP), Port: 7777})
		return err
	}))
	defer ln.Close()
	var got int
	var gotMu sync.Mutex
	recvDone := make(chan struct{})
	go func() {
		defer close(recvDone)
		buf := make([]byte, 64)
		for {
			ln.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, _, err := ln.ReadFromUDP(buf); err != nil {
				return // quiet for 3 s after the last datagram: done
			}
			gotMu.Lock()
			got++
			gotMu.Unlock()
		}
	}()

	var flood *afpacket.Conn
	var legit *net.UDPConn
	require.NoError(t, tp.client.Do(func() (err error) {
		if flood, err = afpacket.Listen("c0", &afpacket.Config{SendOnly: true}); err != nil {
			return err
		}
		legit, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(serverIP), Port: 7777})
		return err
	}))
	defer flood.Close()
	defer legit.Close()

	const spoofed, sent = 30_000, 300
	stop := make(chan struct{})
	floodDone := make(chan int)
	go func() {
		n := 0
		defer func() { floodDone <- n }()
		for i := range spoofed {
			if i%500 == 499 {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
			if _, err := flood.WriteTo(spoofedUDP(serverMAC, net.ParseIP(serverIP), 9999, i), nil); err == nil {
				n++
			}
		}
	}()
	for i := range sent {
		_, err := legit.Write([]byte("legitimate " + strconv.Itoa(i)))
		require.NoError(t, err)
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	flooded := <-floodDone
	<-recvDone

	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second), p.stderr.String())
	out := p.stderr.String()
	m := regexp.MustCompile(`reject frames sent (\d+)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	replies, _ := strconv.Atoi(m[1])
	gotMu.Lock()
	defer gotMu.Unlock()
	t.Logf("%d spoofed frames sent, %d rejects sent; legitimate datagrams %d of %d", flooded, replies, got, sent)
	assert.Regexp(t, `rate-limited [1-9]|dropped on a full queue [1-9]`, out, "the excess is counted")
	assert.Less(t, replies, flooded/2, "the flood does not draw a reply per frame")
	assert.GreaterOrEqual(t, got, sent*3/4, "legitimate traffic keeps flowing")
}
