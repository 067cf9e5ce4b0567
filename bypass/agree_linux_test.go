//go:build linux

package bypass

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// skbCtx is the start of struct __sk_buff, as BPF_PROG_TEST_RUN takes and returns it.
type skbCtx struct {
	Len, PktType, Mark, QueueMapping, Protocol, VLANPresent, VLANTCI, VLANProto uint32
	Priority, IngressIfindex, Ifindex, TCIndex                                  uint32
	CB                                                                          [5]uint32
}

// skbCtxOut is a whole struct __sk_buff (192 bytes on 6.x), which a test run insists on writing.
type skbCtxOut struct {
	skbCtx
	_ [192 - 68]byte
}

const (
	testIn, testOut = 1000, 1001 // ifindexes of the port map in program runs
	retNext         = 0xffffffff // TCX_NEXT as the run's return value; also "whole frame" from a filter
)

// agreement runs both programs on one frame (kernel view, no VLAN metadata) and checks they key
// and judge it as the Go reference does for the verdict's view of the same frame.
func agreement(t *testing.T, p *Path, tap *ebpf.Program, f []byte) {
	t.Helper()
	key, eligible := goParse(verdictView(f, 0))
	live := flowValue{LastSeen: monoNow(), Live: [2]uint32{1, 1}}
	require.NoError(t, p.flows.Put(&key, &live))
	defer p.flows.Delete(&key)

	// The socket filter sees the frame from its Ethernet header on; a test run pulls 14 bytes
	// of Ethernet header first, so give it a dummy one in front.
	data := append(make([]byte, 14), f...)
	copy(data, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	var out skbCtxOut
	ret, err := tap.Run(&ebpf.RunOptions{Data: data, Context: skbCtx{}, ContextOut: &out})
	require.NoError(t, err)
	if eligible && teardown(verdictView(f, 0)) {
		assert.Equal(t, uint32(retNext), ret, "filter: a FIN or RST returns the flow to the bridge: % x", f)
		assert.Equal(t, uint32(markRing), out.CB[0], "filter mark: % x", f)
		_, ok, err := p.Lookup(key)
		require.NoError(t, err)
		assert.False(t, ok, "the flow left the map")
		require.NoError(t, p.flows.Put(&key, &live))
	} else if eligible {
		assert.Equal(t, uint32(0), ret, "filter: live flow %+v must stay out of the ring: % x", key, f)
		assert.Equal(t, uint32(markFast), out.CB[0], "filter mark: % x", f)
		var v flowValue
		require.NoError(t, p.flows.Lookup(&key, &v))
		assert.Equal(t, [2]uint64{1, 0}, v.Frames, "filter: the frame sent to the fast path counts on this very key")
		assert.Equal(t, [2]uint64{uint64(len(f)), 0}, v.Bytes)
		require.NoError(t, p.flows.Put(&key, &live)) // tc's own count below starts from zero
	} else {
		assert.Equal(t, uint32(retNext), ret, "filter: ineligible frame must reach the ring: % x", f)
		assert.Equal(t, uint32(markRing), out.CB[0], "filter mark: % x", f)
	}
	if len(f) < 14 {
		return // a tc test run needs an Ethernet header
	}
	ret, err = p.tc.Run(&ebpf.RunOptions{Data: f, Context: skbCtx{IngressIfindex: testIn}})
	if errors.Is(err, unix.EINVAL) && !eligible {
		// The kernel's test harness refuses some truncated IP frames before the program runs;
		// the socket filter run above covered them.
		return
	}
	require.NoError(t, err, "% x", f)
	var v flowValue
	require.NoError(t, p.flows.Lookup(&key, &v))
	if eligible {
		assert.Equal(t, uint32(tcxRedirect), ret, "tc: live flow %+v must be redirected: % x", key, f)
		assert.Equal(t, [2]uint64{1, 0}, v.Frames, "tc: the redirect must count on this very key")
		assert.Equal(t, [2]uint64{uint64(len(f)), 0}, v.Bytes)
	} else {
		assert.Equal(t, uint32(retNext), ret, "tc: ineligible frame must stay on the normal path: % x", f)
		assert.Equal(t, [2]uint64{}, v.Frames)
	}
}

func TestKeyAgreement(t *testing.T) {
	p := openPath(t, nil)
	require.NoError(t, p.ports.Put(uint32(testIn), portValue{Peer: testOut, Side: 0}))
	tap, err := p.Filter(A, 0, nil)
	require.NoError(t, err)
	defer tap.Close()

	for i, f := range craftedFrames() {
		t.Run(fmt.Sprintf("crafted%d", i), func(t *testing.T) { agreement(t, p, tap.prog, f) })
	}
	r := rand.New(rand.NewPCG(1, 2))
	eligible := 0
	const n = 10000
	for range n {
		f := genFrame(r)
		if _, ok := goParse(verdictView(f, 0)); ok {
			eligible++
		}
		agreement(t, p, tap.prog, f)
		if t.Failed() {
			break
		}
	}
	// The generator must exercise both outcomes, or the comparison proves little.
	assert.Greater(t, eligible, n/10)
	assert.Less(t, eligible, n*4/5)
}

// craftedFrames are the edge cases of the eligibility rule, one by one.
func craftedFrames() [][]byte {
	eth := func(et uint16, tags ...uint16) []byte {
		f := make([]byte, 12)
		for _, t := range tags {
			f = binary.BigEndian.AppendUint16(f, 0x8100)
			f = binary.BigEndian.AppendUint16(f, t)
		}
		return binary.BigEndian.AppendUint16(f, et)
	}
	v4 := func(ihl int, frag uint16, proto byte, src, dst uint32) []byte {
		h := make([]byte, ihl*4)
		h[0] = byte(4<<4 | ihl)
		binary.BigEndian.PutUint16(h[6:], frag)
		h[9] = proto
		binary.BigEndian.PutUint32(h[12:], src)
		binary.BigEndian.PutUint32(h[16:], dst)
		return h
	}
	v6 := func(next byte, src, dst byte) []byte {
		h := make([]byte, 40)
		h[0] = 6 << 4
		h[6] = next
		h[23] = src
		h[39] = dst
		return h
	}
	ports := func(a, b uint16) []byte {
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, a), b)
	}
	echo := func(typ byte, id uint16) []byte {
		return binary.BigEndian.AppendUint16([]byte{typ, 0, 0, 0}, id)
	}
	ext := func(next byte) []byte { return []byte{next, 0, 0, 0, 0, 0, 0, 0} }
	cat := func(parts ...[]byte) []byte {
		var f []byte
		for _, p := range parts {
			f = append(f, p...)
		}
		return f
	}
	return [][]byte{
		cat(eth(0x0800), v4(5, 0, 6, 0xc6120001, 0xc6120002), ports(40000, 80)),                // TCP
		cat(eth(0x0800), v4(5, 0, 6, 0xc6120002, 0xc6120001), ports(80, 40000)),                // reply
		cat(eth(0x0800), v4(5, 0, 17, 0xc6120001, 0xc6120001), ports(53, 5353)),                // equal addrs
		cat(eth(0x0800), v4(5, 0, 17, 0xc6120001, 0xc6120001), ports(5353, 53)),                // equal addrs, swapped ports
		cat(eth(0x0800), v4(6, 0x4000, 17, 1, 2), ports(1, 2)),                                 // options, DF
		cat(eth(0x0800), v4(5, 0x2000, 17, 1, 2), ports(1, 2)),                                 // MF
		cat(eth(0x0800), v4(5, 0x0001, 17, 1, 2), ports(1, 2)),                                 // offset
		cat(eth(0x0800), v4(5, 0, 17, 1, 2), ports(1, 2)[:3]),                                  // ports cut
		cat(eth(0x0800), v4(5, 0, 1, 1, 2), echo(8, 77)),                                       // echo request
		cat(eth(0x0800), v4(5, 0, 1, 1, 2), echo(0, 77)),                                       // echo reply
		cat(eth(0x0800), v4(5, 0, 1, 1, 2), echo(3, 77)),                                       // unreachable
		cat(eth(0x0800), v4(5, 0, 1, 1, 2), echo(8, 77)[:5]),                                   // id cut
		cat(eth(0x0800), v4(5, 0, 58, 1, 2), echo(128, 77)),                                    // ICMPv6 over v4
		cat(eth(0x0800, 5), v4(5, 0, 6, 1, 2), ports(1, 2)),                                    // inner tag
		cat(eth(0x0800, 5, 6), v4(5, 0, 6, 1, 2), ports(1, 2)),                                 // two tags in bytes
		cat(eth(0x86dd), v6(6, 1, 2), ports(1, 2)),                                             // TCP v6
		cat(eth(0x86dd), v6(58, 1, 2), echo(128, 9)),                                           // echo v6
		cat(eth(0x86dd), v6(58, 1, 2), echo(8, 9)),                                             // v4 echo type in v6
		cat(eth(0x86dd), v6(1, 1, 2), echo(8, 9)),                                              // ICMP in v6
		cat(eth(0x86dd), v6(0, 1, 2), ext(43), ext(60), ext(0), ext(17), ports(1, 2)),          // 4 headers
		cat(eth(0x86dd), v6(0, 1, 2), ext(43), ext(60), ext(0), ext(60), ext(17), ports(1, 2)), // 5
		cat(eth(0x86dd), v6(44, 1, 2), ext(17), ports(1, 2)),                                   // fragment header
		cat(eth(0x86dd), v6(51, 1, 2), ext(17), ports(1, 2)),                                   // AH
		cat(eth(0x86dd), v6(0, 1, 2), ext(17)[:1]),                                             // ext cut
		cat(eth(0x0806), make([]byte, 28)),                                                     // ARP
		eth(0x0800)[:13],                                                                       // runt
	}
}

// FuzzKeyAgreement feeds arbitrary frames to both programs and the Go parser; they must agree on
// the key and on eligibility (run with -fuzz as root).
func FuzzKeyAgreement(f *testing.F) {
	for _, fr := range craftedFrames() {
		f.Add(fr)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for range 64 {
		f.Add(genFrame(r))
	}
	p := openPath(f, nil)
	require.NoError(f, p.ports.Put(uint32(testIn), portValue{Peer: testOut, Side: 0}))
	tap, err := p.Filter(A, 0, nil)
	require.NoError(f, err)
	f.Cleanup(func() { tap.Close() })
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) > 3000 { // a test run takes at most a page, less headroom
			return
		}
		agreement(t, p, tap.prog, frame)
	})
}
