//go:build linux

package peer_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// hostile is one malformed input: a frame and, for GSO frames, the virtio_net_hdr it is sent
// with.
type hostile struct {
	class string
	frame []byte
	vnet  []byte
}

// nobody is a unicast address no host in the test owns: frames sent to it are bridged, and
// the server's stack ignores them, so it never answers a hostile frame.
var nobody = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}

// ipv4 builds an Ethernet/IPv4 frame with a correct header checksum around payload; mangle
// then breaks it.
func ipv4(src net.HardwareAddr, proto byte, payload []byte, mangle func(ip []byte)) []byte {
	f := make([]byte, 14+20+len(payload))
	copy(f, nobody)
	copy(f[6:], src)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, proto
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(payload)))
	copy(ip[12:], []byte{198, 18, 0, 1, 198, 18, 0, 2})
	copy(ip[20:], payload)
	if mangle != nil {
		mangle(ip)
	}
	ipChecksum(ip)
	return f
}

func ipChecksum(ip []byte) {
	ip[10], ip[11] = 0, 0
	ihl := min(int(ip[0]&0xf)*4, len(ip))
	var s uint32
	for i := 0; i+1 < ihl; i += 2 {
		s += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(s))
}

func tag(f []byte, tpid, tci uint16) []byte { return pktgen.Tag(f, tpid, tci) }

// hostileFrames returns the malformed inputs: runts, bare headers, broken IPv4 headers,
// empty payloads, odd VLAN stacks, fragments no one can reassemble, the largest frames the
// sender's kernel lets out, GSO super-frames with strange fields, and random bytes.
func hostileFrames(src net.HardwareAddr, rng *rand.Rand) []hostile {
	var out []hostile
	add := func(class string, f []byte) { out = append(out, hostile{class: class, frame: f}) }
	eth := func(typ uint16, rest ...byte) []byte {
		f := append(append(append([]byte{}, nobody...), src...), byte(typ>>8), byte(typ))
		return append(f, rest...)
	}
	for n := range 14 {
		add("runt", eth(0x0800)[:n])
	}
	for _, typ := range []uint16{0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x8847, 0x88cc, 0x0000, 0xffff, pktgen.EtherType} {
		add("header only", eth(typ))
	}
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], 4000)
	binary.BigEndian.PutUint16(udp[2:], 5000)
	binary.BigEndian.PutUint16(udp[4:], 8)
	for _, m := range []func(ip []byte){
		func(ip []byte) { ip[0] = 0x44 },                                 // IHL 4
		func(ip []byte) { ip[0] = 0x4f },                                 // IHL 15, past the data
		func(ip []byte) { ip[0] = 0x65 },                                 // version 6 in an IPv4 frame
		func(ip []byte) { binary.BigEndian.PutUint16(ip[2:], 9000) },     // total length beyond the frame
		func(ip []byte) { binary.BigEndian.PutUint16(ip[2:], 10) },       // total length below the header
		func(ip []byte) { binary.BigEndian.PutUint16(ip[6:], 0x3fff) },   // MF with the last offset
		func(ip []byte) { binary.BigEndian.PutUint16(ip[6:], 0x2001) },   // MF, offset 8
		func(ip []byte) { binary.BigEndian.PutUint16(ip[6:], 0x0001) },   // a lone last fragment
		func(ip []byte) { ip[9] = 6 },                                    // TCP with an 8-byte header
		func(ip []byte) { binary.BigEndian.PutUint16(ip[20+4:], 60000) }, // UDP length beyond the frame
	} {
		add("bad IPv4 header", ipv4(src, 17, udp, m))
	}
	bad := ipv4(src, 17, udp, nil)
	bad[14+10] ^= 0xff
	add("bad IPv4 header", bad)
	add("empty payload", ipv4(src, 17, nil, nil))
	add("empty payload", ipv4(src, 17, udp, nil)) // UDP header, no data
	add("empty payload", ipv4(src, 6, nil, nil))
	add("empty payload", ipv4(src, 1, nil, nil))
	for _, f := range [][]byte{
		tag(eth(0x0800), 0x8100, 0),                                             // a tag and a bare inner header
		tag(tag(eth(0x0800), 0x8100, 5), 0x8100, 0),                             // priority tag over a tag
		tag(tag(tag(ipv4(src, 17, udp, nil), 0x8100, 7), 0x88a8, 8), 0x88a8, 9), // three tags
		tag(ipv4(src, 17, udp, nil), 0x8100, 0xffff),                            // VID 4095, all bits
		append(eth(0x8100), 0, 5),                                               // a tag cut short
	} {
		add("VLAN", f)
	}
	// The largest frames: MTU + 14, 4 more with an 802.1Q tag, and, sent with a jumbo MTU on
	// the client, frames up to MTU + 18 whatever their tag, which the veth lets through (it
	// allows MTU + 18 for every frame), and larger ones, which it drops unless they are GSO.
	add("largest", pktgen.Frame(nil, nobody, src, 1, 1514))
	add("largest", tag(pktgen.Frame(nil, nobody, src, 2, 1514), 0x8100, 3))
	add("giant up to MTU+18", pktgen.Frame(nil, nobody, src, 3, 1515))
	add("giant up to MTU+18", tag(pktgen.Frame(nil, nobody, src, 4, 1514), 0x88a8, 3))
	add("giant above MTU+18", pktgen.Frame(nil, nobody, src, 5, 1519))
	add("giant above MTU+18", pktgen.Frame(nil, nobody, src, 6, 9014))
	for range 200 {
		f := make([]byte, 14+rng.IntN(1501))
		for i := range f {
			f[i] = byte(rng.Uint32())
		}
		f[0] &^= 1 // unicast: no host answers it
		add("random bytes", f)
	}
	// GSO super-frames: a TCP stream's, and the same with odd segment sizes and header
	// lengths. The veth carries them whole.
	payload := make([]byte, 20000)
	for i := range payload {
		payload[i] = byte(i)
	}
	tcp := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(tcp[0:], 4000)
	binary.BigEndian.PutUint16(tcp[2:], 5000)
	tcp[12], tcp[13] = 5<<4, 0x18
	copy(tcp[20:], payload)
	for i, g := range []struct {
		flags   byte
		size    uint16
		hdrLen  uint16
		csStart uint16
	}{
		{1, 1448, 54, 34},
		{1, 1, 54, 34},
		{1, 9000, 54, 34},
		{1, 1448, 0, 34},
		{0, 1448, 54, 0},
	} {
		binary.BigEndian.PutUint16(tcp[0:], 4000+uint16(i)) // each its own frame
		seg := ipv4(src, 6, tcp, nil)
		v := make([]byte, 10)
		v[0], v[1] = g.flags, 1 // NEEDS_CSUM, GSO TCPv4
		binary.LittleEndian.PutUint16(v[2:], g.hdrLen)
		binary.LittleEndian.PutUint16(v[4:], g.size)
		binary.LittleEndian.PutUint16(v[6:], g.csStart)
		binary.LittleEndian.PutUint16(v[8:], 16)
		out = append(out, hostile{class: fmt.Sprintf("GSO %d", i), frame: seg, vnet: v})
	}
	return out
}

// rawSender is a plain AF_PACKET socket on the client that sends whatever it is given, with a
// vnet header when it has one.
func rawSender(t testing.TB, tp *topo, vnet bool) int {
	t.Helper()
	var fd int
	require.NoError(t, tp.client.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if vnet {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
				return err
			}
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: tp.cIfi.Index})
	}))
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestHostileInput sends malformed frames through a live bridge (plain, with fanout defrag, and
// with the IP-pair fanout program): the bridge neither crashes nor stalls, counts everything,
// forwards byte for byte every frame the kernel hands it (without defrag), and carries a normal
// exchange afterwards.
//
// What can reach the bridge is limited by the kernel, not by the bridge: the sender's kernel
// refuses runts (below the 14-byte link header) and frames above its MTU, and the veth drops
// frames above the bridge port's MTU + 18 unless they are GSO super-frames, which is how
// frames larger than the MTU arrive in practice, and why GSO frames with odd fields are here.
func TestHostileInput(t *testing.T) {
	for _, mode := range []struct {
		name   string
		defrag bool
		typ    fanout.Mode
	}{{"plain", false, fanout.Hash}, {"defrag", true, fanout.Hash}, {"ippair", false, fanout.EBPF}} {
		name, defrag := mode.name, mode.defrag
		t.Run(name, func(t *testing.T) {
			tp := newTopo(t, nil)
			cfg := tp.config(2)
			cfg.Defrag = defrag
			cfg.ClusterType = mode.typ
			br := tp.start(t, cfg)
			client, server := tp.open(t)
			b0 := tp.b0.Interface(t)
			var tap *pktgen.Conn
			require.NoError(t, tp.bridge.Do(func() (err error) { tap, err = pktgen.Open(b0.Index); return }))
			defer tap.Close()
			plain, gso := rawSender(t, tp, false), rawSender(t, tp, true)
			// A jumbo MTU on the client lets giants leave it; the bridge's port still drops them.
			tp.c0.Run(t, "ip", "link", "set", "c0", "mtu", "9000")

			inputs := hostileFrames(tp.cIfi.HardwareAddr, rand.New(rand.NewPCG(1, 2)))
			sent := map[string]string{}
			refused := map[string]int{}
			classes := map[string]int{}
			for _, h := range inputs {
				classes[h.class]++
				var err error
				if h.vnet != nil {
					_, err = unix.Write(gso, append(append([]byte{}, h.vnet...), h.frame...))
				} else {
					_, err = unix.Write(plain, h.frame)
				}
				if err != nil {
					refused[h.class+": "+err.Error()]++
					continue
				}
				sent[string(h.frame)] = h.class
			}
			// What the kernel handed the bridge, seen by a tap on b0, and what left it, seen at
			// the server: the same frames, byte for byte (VLAN tags put back on both sides).
			// The server is drained only once the bridge is idle: on a loaded machine the workers
			// may still be forwarding, and drain's 500 ms idle timeout must not run before the
			// frames it waits for have left the bridge.
			ingress := drain(t, tap)
			st := checkIdentity(t, br)
			egress := drain(t, server)
			ab := st.Dir(verdict.AToB)
			t.Logf("A->B %+v", ab)
			t.Logf("classes %v; refused by the sender's kernel %v", classes, refused)
			altered, reached := 0, map[string]int{}
			for f := range ingress {
				if sent[f] == "" {
					altered++ // changed by the sender's kernel, for example a GSO checksum field filled in
				}
				reached[sent[f]]++
			}
			t.Logf("reached the bridge, by class: %v", reached)
			assert.Equal(t, 2, reached["giant up to MTU+18"], "giants up to MTU+18 reach the bridge")
			assert.Zero(t, reached["giant above MTU+18"], "larger ones never do")
			forwarded := 0
			for f, k := range egress {
				forwarded += k
				if !defrag {
					assert.Equal(t, ingress[f], k, "frame of %d bytes (%s) arrived %d times, was received %d times: % x",
						len(f), sent[f], k, ingress[f], []byte(f)[:min(len(f), 40)])
				}
			}
			assert.Equal(t, ab.Forwarded, uint64(forwarded), "the server got what the bridge forwarded")
			if !defrag {
				for f, k := range ingress {
					assert.Equal(t, k, egress[f], "frame of %d bytes (%s) received %d times, arrived %d times: % x",
						len(f), sent[f], k, egress[f], []byte(f)[:min(len(f), 40)])
				}
				assert.Equal(t, ab.Received, ab.Forwarded, "everything received was forwarded")
			}
			report(t, "hostile input (%s): %d frames generated, %d refused and %d altered by the sender's kernel, %d dropped before the bridge, %d reached it, %d forwarded intact, %d TX errors, %d malformed, %d truncated, %d oversize",
				name, len(inputs), len(inputs)-len(sent), altered, len(sent)-len(ingress), ab.Received, forwarded,
				ab.TXErrors, ab.Malformed, ab.Truncated, ab.Oversize)
			tp.c0.Run(t, "ip", "link", "set", "c0", "mtu", "1500")
			exchangeBoth(t, tp, client, server, 0, 300)
			checkIdentity(t, br)
		})
	}
}

// drain receives every incoming frame on c until none arrives for 500 ms, and counts them.
func drain(t testing.TB, c *pktgen.Conn) map[string]int {
	t.Helper()
	out := map[string]int{}
	buf := make([]byte, 1<<17)
	for {
		n, pkt, err := c.Recv(buf, 500*time.Millisecond)
		if err != nil {
			return out
		}
		if pkt != unix.PACKET_OUTGOING {
			out[string(buf[:n])]++
		}
	}
}
