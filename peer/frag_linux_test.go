//go:build linux

package peer_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// train is one datagram as a sender put it on the wire: whole, or as fragments in some order,
// possibly overlapping or incomplete.
type train struct {
	name     string
	v6       bool
	datagram []byte   // the whole datagram, as Datagram built it
	frames   [][]byte // what is sent, in order
	complete bool     // the frames cover the datagram exactly once
	small    bool     // the datagram fits the MTU whole
}

// fragAddrs are addresses no namespace owns, so no stack answers the trains.
var fragAddrs = [2][2]netip.Addr{
	{netip.MustParseAddr("198.18.0.50"), netip.MustParseAddr("198.18.0.60")},
	{netip.MustParseAddr("2001:2::50"), netip.MustParseAddr("2001:2::60")},
}

// trains builds the fragment trains of one direction: for IPv4 and IPv6, a whole datagram, a
// small one in fragments that whole would fit the MTU, and trains in order, with DF and MF set (IPv4), shuffled, with an overlap, and without their last
// fragment. dir 0 goes from the [0] addresses to the [1] addresses.
func trains(dst, src net.HardwareAddr, dir int, seq uint32, r *rand.Rand) []train {
	var out []train
	for fam, addrs := range fragAddrs {
		v6 := fam == 1
		from := netip.AddrPortFrom(addrs[dir], 4000+uint16(dir))
		to := netip.AddrPortFrom(addrs[1-dir], 5000)
		next := func(payload int) []byte {
			seq++
			return pktgen.Datagram(dst, src, from, to, seq, payload)
		}
		d := next(500)
		out = append(out, train{"whole", v6, d, [][]byte{d}, true, true})
		d = next(1000)
		out = append(out, train{"small", v6, d, pktgen.Fragments(d, 576, seq, false), true, true})
		d = next(4000)
		out = append(out, train{"in order", v6, d, pktgen.Fragments(d, 1280, seq, false), true, false})
		if !v6 {
			d = next(4000)
			out = append(out, train{"DF and MF", v6, d, pktgen.Fragments(d, 1280, seq, true), true, false})
		}
		d = next(6000)
		fr := pktgen.Fragments(d, 1000, seq, false)
		r.Shuffle(len(fr), func(i, j int) { fr[i], fr[j] = fr[j], fr[i] })
		out = append(out, train{"out of order", v6, d, fr, true, false})
		d = next(3000)
		fr = pktgen.Fragments(d, 1280, seq, false)
		// The overlap comes second, before the train could complete.
		fr = append([][]byte{fr[0], overlap(fr[0], fr[1])}, fr[1:]...)
		out = append(out, train{"overlapping", v6, d, fr, false, false})
		d = next(3000)
		fr = pktgen.Fragments(d, 1280, seq, false)
		out = append(out, train{"incomplete", v6, d, fr[:len(fr)-1], false, false})
	}
	return out
}

// overlap returns a fragment that covers the second half of a and the first half of b, which
// follows a: 16 bytes either side of the boundary, with different bytes.
func overlap(a, b []byte) []byte {
	f := slices.Clone(b)
	if binary.BigEndian.Uint16(f[12:]) == 0x86dd {
		fh := f[14+40:]
		off := binary.BigEndian.Uint16(fh[2:])&^7 - 16
		binary.BigEndian.PutUint16(fh[2:], off|1)
		f = f[:14+48+32]
		binary.BigEndian.PutUint16(f[14+4:], 8+32)
		for i := range 32 {
			f[14+48+i] = 0xee
		}
		return f
	}
	ip := f[14:]
	fo := binary.BigEndian.Uint16(ip[6:])
	binary.BigEndian.PutUint16(ip[6:], (fo&0x1fff-2)|0x2000)
	f = f[:14+20+32]
	binary.BigEndian.PutUint16(ip[2:], 20+32)
	for i := range 32 {
		f[14+20+i] = 0xee
	}
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ipsum(ip[:20]))
	return f
}

func ipsum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// isFragTest reports whether f is one of the trains' frames (by address).
func isFragTest(f []byte) bool {
	if len(f) < 54 {
		return false
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0800:
		a := netip.AddrFrom4([4]byte(f[26:30]))
		return a == fragAddrs[0][0] || a == fragAddrs[0][1]
	case 0x86dd:
		a := netip.AddrFrom16([16]byte(f[22:38]))
		return a == fragAddrs[1][0] || a == fragAddrs[1][1]
	}
	return false
}

// collect receives the trains' frames on c until want have arrived, or none for idle.
func collect(t *testing.T, c *pktgen.Conn, want int, idle time.Duration) [][]byte {
	t.Helper()
	var out [][]byte
	buf := make([]byte, 1<<16)
	for end := time.Now().Add(30 * time.Second); len(out) < want && time.Now().Before(end); {
		n, pkt, err := c.Recv(buf, idle)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil || pkt == unix.PACKET_OUTGOING || !isFragTest(buf[:n]) {
			continue
		}
		out = append(out, slices.Clone(buf[:n]))
	}
	return out
}

// reassemble puts the IPv4 fragments of one datagram (by identification) back together and
// checks each against the MTU and its header checksum.
func reassemble(t *testing.T, frags [][]byte, id uint16, mtu int) []byte {
	t.Helper()
	type piece struct {
		off  int
		data []byte
		mf   bool
	}
	var ps []piece
	var hdr []byte
	for _, f := range frags {
		ip := f[14:]
		if binary.BigEndian.Uint16(f[12:]) != 0x0800 || binary.BigEndian.Uint16(ip[4:]) != id {
			continue
		}
		assert.LessOrEqual(t, len(ip), mtu, "a fragment leaves within the MTU")
		assert.Zero(t, ipsum(ip[:20]), "header checksum")
		fo := binary.BigEndian.Uint16(ip[6:])
		ps = append(ps, piece{int(fo&0x1fff) * 8, ip[20:binary.BigEndian.Uint16(ip[2:])], fo&0x2000 != 0})
		if fo&0x1fff == 0 {
			hdr = slices.Clone(ip[:20])
		}
	}
	slices.SortFunc(ps, func(a, b piece) int { return a.off - b.off })
	var out []byte
	for i, p := range ps {
		if p.off != len(out) || p.mf != (i < len(ps)-1) {
			return nil
		}
		out = append(out, p.data...)
	}
	if hdr == nil {
		return nil
	}
	binary.BigEndian.PutUint16(hdr[2:], uint16(20+len(out)))
	binary.BigEndian.PutUint16(hdr[6:], 0)
	return append(hdr, out...)
}

// TestFragmentTrains replays fragment trains (IPv4 and IPv6; in order, DF+MF, out of order,
// overlapping, incomplete) both ways through a bridge on veth at MTU 1500.
//
//   - With the IP-pair fanout (cluster type ebpf) and no defrag, every frame arrives byte for
//     byte, however odd, nothing is flagged Reassembled, and the verdict sees all frames of an
//     address pair, both ways, on one worker.
//   - With fanout defrag (cluster type hash), every complete IPv4 datagram is reassembled by the
//     kernel, flagged Reassembled, and leaves as fragments within the MTU (DF kept) that
//     reassemble to it; a datagram whose reassembly fits the MTU leaves whole, byte for byte as if
//     sent whole, and is not flagged (nothing tells it from one sent whole); IPv6 trains, which fanout defrag does not touch, arrive byte for byte;
//     incomplete and overlapping IPv4 trains never reach the bridge: the kernel holds an
//     incomplete train until its reassembly timeout and discards a train with an overlap
//     (RFC 5722 behaviour), so nothing of them is forwarded.
func TestFragmentTrains(t *testing.T) {
	for _, mode := range []struct {
		name   string
		typ    fanout.Mode
		defrag bool
	}{
		{"ippair", fanout.EBPF, false},
		{"defrag", fanout.Hash, true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			tp := newTopo(t, nil)
			cfg := tp.config(2)
			cfg.ClusterType = mode.typ
			cfg.Defrag = mode.defrag
			var mu sync.Mutex
			reasm := map[int]int{}               // length of Reassembled frames seen -> count
			workers := map[uint16]map[int]bool{} // EtherType of the trains' frames -> workers that saw them
			cfg.Verdict = verdict.Shared(verdict.Func(func(p *verdict.Packet) verdict.Verdict {
				mu.Lock()
				defer mu.Unlock()
				if p.Status&verdict.Reassembled != 0 {
					reasm[len(p.Data)]++
				}
				if isFragTest(p.Data) {
					et := binary.BigEndian.Uint16(p.Data[12:])
					if workers[et] == nil {
						workers[et] = map[int]bool{}
					}
					workers[et][p.Worker] = true
				}
				return verdict.Pass
			}))
			br := tp.start(t, cfg)
			client, server := tp.open(t)
			r := rand.New(rand.NewPCG(1, 2))
			ends := [2]*pktgen.Conn{client, server}
			macs := [2]net.HardwareAddr{tp.cIfi.HardwareAddr, tp.sIfi.HardwareAddr}
			for dir := range 2 {
				ts := trains(macs[1-dir], macs[dir], dir, uint32(dir*100), r)
				sent, want, wantReasm := 0, 0, 0
				for _, tr := range ts {
					for _, f := range tr.frames {
						require.NoError(t, ends[dir].Send(f))
						sent++
					}
					switch {
					case !mode.defrag || tr.v6 || len(tr.frames) == 1:
						want += len(tr.frames)
					case tr.small:
						want++ // reassembled, it fits: it leaves whole
					case tr.complete:
						want += (len(tr.datagram) - 14 - 20 + 1479) / 1480
						wantReasm++
					}
				}
				got := collect(t, ends[1-dir], want, 2*time.Second)
				if !mode.defrag {
					var all [][]byte
					for _, tr := range ts {
						all = append(all, tr.frames...)
					}
					assert.ElementsMatch(t, hexAll(all), hexAll(got), "direction %d: every frame arrives byte for byte", dir)
				} else {
					assert.Len(t, got, want, "direction %d", dir)
					arrived := map[string]int{}
					for _, f := range got {
						arrived[string(f)]++
					}
					for _, tr := range ts {
						switch {
						case tr.v6 || len(tr.frames) == 1:
							for _, f := range tr.frames {
								assert.Equal(t, 1, arrived[string(f)], "%s %s: a frame arrives as sent", fam(tr), tr.name)
							}
						case tr.small:
							assert.Equal(t, 1, arrived[string(tr.datagram)], "%s %s: arrives as one datagram, as if sent whole", fam(tr), tr.name)
						case tr.complete:
							id := binary.BigEndian.Uint16(tr.datagram[14+4:])
							whole := reassemble(t, got, id, 1500)
							if assert.NotNil(t, whole, "%s %s: the refragmented datagram is complete", fam(tr), tr.name) {
								want := slices.Clone(tr.datagram[14:])
								binary.BigEndian.PutUint16(want[6:], 0)
								want[10], want[11] = 0, 0
								whole[10], whole[11] = 0, 0
								assert.True(t, bytes.Equal(want, whole), "%s %s: reassembles to the datagram", fam(tr), tr.name)
							}
							df := binary.BigEndian.Uint16(tr.frames[0][14+6:]) & 0x4000
							for _, f := range got {
								if binary.BigEndian.Uint16(f[12:]) == 0x0800 && binary.BigEndian.Uint16(f[14+4:]) == id {
									assert.Equal(t, df, binary.BigEndian.Uint16(f[14+6:])&0x4000, "%s: DF as it was", tr.name)
								}
							}
						default:
							id := binary.BigEndian.Uint16(tr.datagram[14+4:])
							for _, f := range got {
								assert.False(t, binary.BigEndian.Uint16(f[12:]) == 0x0800 && binary.BigEndian.Uint16(f[14+4:]) == id,
									"%s %s: nothing of it is forwarded", fam(tr), tr.name)
							}
						}
					}
				}
				mu.Lock()
				n := 0
				for _, k := range reasm {
					n += k
				}
				clear(reasm)
				mu.Unlock()
				assert.Equal(t, wantReasm, n, "direction %d: frames flagged Reassembled", dir)
				t.Logf("direction %d: sent %d frames in %d trains, %d arrived", dir, sent, len(ts), len(got))
			}
			if !mode.defrag {
				// One address pair per family, both ways, every fragment: one worker each.
				for et, w := range workers {
					assert.Len(t, w, 1, "EtherType %#x: the pair's frames, both ways, went to workers %v", et, w)
				}
			}
			st := checkIdentity(t, br)
			t.Logf("A->B %+v", st.Dir(verdict.AToB))
			t.Logf("B->A %+v", st.Dir(verdict.BToA))
		})
	}
}

func fam(tr train) string {
	if tr.v6 {
		return "IPv6"
	}
	return "IPv4"
}

func hexAll(fs [][]byte) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = fmt.Sprintf("%x", f)
	}
	return out
}

// bpfProgFDs counts this process's descriptors of BPF programs.
func bpfProgFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == "anon_inode:bpf-prog" {
			n++
		}
	}
	return n
}

// TestIPPairLoadedForItsLife: with cluster type ebpf the bridge holds one program from Start to
// Close, and none afterwards.
func TestIPPairLoadedForItsLife(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	cfg.ClusterType = fanout.EBPF
	before := bpfProgFDs(t)
	br, err := peer.New(cfg)
	require.NoError(t, err)
	require.NoError(t, tp.bridge.Do(br.Start))
	assert.Equal(t, before+1, bpfProgFDs(t), "one program while running")
	client, server := tp.open(t)
	exchangeBoth(t, tp, client, server, 0, 50)
	require.NoError(t, br.Close())
	assert.Equal(t, before, bpfProgFDs(t), "unloaded at Close")
}

// TestIPPairKeepsFlowsOnOneWorker runs real traffic between two hosts through a two-worker bridge
// with the IP-pair fanout: three TCP transfers, and UDP datagrams that the sender's stack
// fragments, answered the other way. Every IPv4 frame between the two hosts, both ways, TCP
// segments and UDP fragments alike, reaches one worker, and the datagrams arrive intact.
func TestIPPairKeepsFlowsOnOneWorker(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	cfg.ClusterType = fanout.EBPF
	var mu sync.Mutex
	workers := map[int]int{}
	seen := map[string]int{}
	cfg.Verdict = verdict.Shared(verdict.Func(func(p *verdict.Packet) verdict.Verdict {
		d := p.Data
		if len(d) < 34 || binary.BigEndian.Uint16(d[12:]) != 0x0800 {
			return verdict.Pass
		}
		mu.Lock()
		defer mu.Unlock()
		workers[p.Worker]++
		switch fo := binary.BigEndian.Uint16(d[20:]); {
		case fo&0x3fff != 0:
			seen["fragment "+p.Dir.String()]++
		case d[23] == 6:
			seen["tcp "+p.Dir.String()]++
		}
		return verdict.Pass
	}))
	tp.start(t, cfg)
	for range 3 {
		tcpTransfer(t, tp, 200<<10)
	}

	pc, cc := udpPair(t, tp)
	msg := make([]byte, 4000)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	buf := make([]byte, 9000)
	for range 5 {
		_, err := cc.Write(msg)
		require.NoError(t, err)
		require.NoError(t, pc.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, from, err := pc.ReadFrom(buf)
		require.NoError(t, err)
		require.Equal(t, msg, buf[:n])
		_, err = pc.WriteTo(buf[:n], from) // the answer, fragmented the other way
		require.NoError(t, err)
		require.NoError(t, cc.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err = cc.Read(buf)
		require.NoError(t, err)
		require.Equal(t, msg, buf[:n])
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("frames by worker %v; by kind %v", workers, seen)
	assert.Len(t, workers, 1, "every IPv4 frame between the two hosts went to one worker")
	for _, k := range []string{"tcp A->B", "tcp B->A", "fragment A->B", "fragment B->A"} {
		assert.Positive(t, seen[k], "%s frames seen", k)
	}
}

// TestDefragTaggedTrain: with defrag, a fragment train behind an 802.1Q or 802.1ad tag is
// reassembled by the kernel, flagged Reassembled, and leaves as tagged fragments (the tag put
// back, its TPID and TCI as they were) that fit the MTU and reassemble to the datagram.
func TestDefragTaggedTrain(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	cfg.Defrag = true
	var mu sync.Mutex
	flagged := 0
	cfg.Verdict = verdict.Shared(verdict.Func(func(p *verdict.Packet) verdict.Verdict {
		if p.Status&verdict.Reassembled != 0 {
			mu.Lock()
			flagged++
			mu.Unlock()
		}
		return verdict.Pass
	}))
	tp.start(t, cfg)
	client, server := tp.open(t)
	for i, tpid := range []uint16{0x8100, 0x88a8} {
		seq := uint32(500 + i)
		d := pktgen.Datagram(tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr,
			netip.AddrPortFrom(fragAddrs[0][0], 4000), netip.AddrPortFrom(fragAddrs[0][1], 5000), seq, 4000)
		for _, f := range pktgen.Fragments(d, 1280, seq, true) {
			require.NoError(t, client.Send(pktgen.Tag(f, tpid, 5)))
		}
		var untagged [][]byte
		buf := make([]byte, 1<<16)
		for end := time.Now().Add(20 * time.Second); len(untagged) < 3 && time.Now().Before(end); {
			n, pkt, err := server.Recv(buf, 2*time.Second)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil || pkt == unix.PACKET_OUTGOING || n < 18 {
				continue
			}
			f := buf[:n]
			if binary.BigEndian.Uint16(f[12:]) != tpid || !isFragTest(append(slices.Clone(f[:12]), f[16:]...)) {
				continue
			}
			assert.Equal(t, uint16(5), binary.BigEndian.Uint16(f[14:]), "TCI as it was")
			assert.LessOrEqual(t, n, 1500+18, "a tagged fragment within the MTU")
			untagged = append(untagged, append(slices.Clone(f[:12]), f[16:]...))
		}
		require.Len(t, untagged, 3, "tpid %#x: 4008 bytes at MTU 1500 leave as 3 fragments", tpid)
		whole := reassemble(t, untagged, uint16(seq), 1500)
		require.NotNil(t, whole)
		want := slices.Clone(d[14:])
		want[10], want[11], whole[10], whole[11] = 0, 0, 0, 0
		binary.BigEndian.PutUint16(want[6:], 0)
		assert.Equal(t, want, whole, "tpid %#x: reassembles to the datagram", tpid)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 2, flagged, "both reassembled datagrams flagged")
}
