//go:build linux

package bypass

import (
	"fmt"
	"github.com/afbridge/afbridge/flow"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waitLive sends frames of the flow until both... until the direction is live, and returns the
// next sequence number. The handover needs the forwarder to settle, which it does within a poll
// round; it is bounded by count.
func (b *bed) sendUntilLive(t *testing.T, side Side, k flow.Key, mk func(seq uint32) []byte, seq uint32) uint32 {
	t.Helper()
	send := b.sendA
	if side == B {
		send = b.sendB
	}
	for range 1000 {
		send.send(t, mk(seq))
		seq++
		if fs, ok, err := b.p.Lookup(k); err == nil && ok && fs.Live[side] {
			return seq
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("flow %+v did not go live on side %v", k, side)
	return seq
}

func TestRedirectAfterHandover(t *testing.T) {
	b := newBed(t, nil, nil)
	mk := func(seq uint32) []byte { return udpFrame(b.macB, b.macA, ipA, ipB, 1111, testPort, seq, 0) }
	k := keyOf(t, mk(0))

	var seq uint32
	for ; seq < 10; seq++ {
		b.sendA.send(t, mk(seq))
	}
	require.Len(t, b.sendB.collect(10, 2*time.Second), 10, "the bridge forwards before bypass")
	require.Equal(t, uint64(10), b.fw.received[A].Load())

	require.NoError(t, b.p.Add(k))
	seq = b.sendUntilLive(t, A, k, mk, seq)
	handover := b.fw.received[A].Load() - 10
	before := seq
	for range 200 {
		b.sendA.send(t, mk(seq))
		seq++
	}
	got := b.sendB.collect(int(seq-10), 2*time.Second)
	want := make([]uint32, 0, seq-10)
	for i := uint32(10); i < seq; i++ {
		want = append(want, i)
	}
	require.Equal(t, want, got, "every frame once, in order")

	assert.Equal(t, uint64(10)+handover, b.fw.received[A].Load(), "live frames no longer reach the bridge")
	fs, ok, err := b.p.Lookup(k)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, uint64(seq-before)+1, fs.Frames[A], "tc counts every frame after the handover, and the one that made it live")
	assert.Zero(t, fs.Frames[B])
	st, err := b.p.Stats()
	require.NoError(t, err)
	assert.Equal(t, fs.Frames[A], st.Frames[A])
	assert.Equal(t, Stats{Current: 1, Total: 1, Frames: st.Frames, Bytes: st.Bytes}, st)
	t.Logf("handover took %d frames through the bridge; %d on the fast path", handover, fs.Frames[A])
}

func TestNeverBypassed(t *testing.T) {
	b := newBed(t, nil, nil)
	mk := func(seq uint32) []byte { return udpFrame(b.macB, b.macA, ipA, ipB, 2222, testPort, seq, 0) }
	k := keyOf(t, mk(0))
	require.NoError(t, b.p.Add(k))
	seq := b.sendUntilLive(t, A, k, mk, 0)
	b.sendB.collect(int(seq), time.Second)
	base := b.fw.received[A].Load()

	// Fragments of the live flow (same addresses, protocol and, in the first one, ports) and a
	// non-IP frame all go to the bridge.
	frames := [][]byte{
		udpFrame(b.macB, b.macA, ipA, ipB, 2222, testPort, 1000, 0x2000), // first fragment: MF
		udpFrame(b.macB, b.macA, ipA, ipB, 2222, testPort, 1001, 0x0003), // offset 24
		udpFrame(b.macB, b.macA, ipA, ipB, 2222, testPort, 1002, 0x2001), // middle
	}
	arp := append(append(append([]byte{}, b.macB...), b.macA...), 0x08, 0x06)
	frames = append(frames, append(arp, make([]byte, 28)...))
	for _, f := range frames {
		b.sendA.send(t, f)
	}
	require.Eventually(t, func() bool { return b.fw.received[A].Load() == base+uint64(len(frames)) },
		5*time.Second, 5*time.Millisecond, "fragments and ARP must reach the bridge")
	fs, _, err := b.p.Lookup(k)
	require.NoError(t, err)
	assert.Equal(t, uint64(seq), b.fw.received[A].Load()-uint64(len(frames))+fs.Frames[A], "nothing counted twice")
}

func TestIdleExpiry(t *testing.T) {
	b := newBed(t, &Config{IdleTimeout: 300 * time.Millisecond}, nil)
	mk := func(seq uint32) []byte { return udpFrame(b.macB, b.macA, ipA, ipB, 3333, testPort, seq, 0) }
	k := keyOf(t, mk(0))
	require.NoError(t, b.p.Add(k))
	seq := b.sendUntilLive(t, A, k, mk, 0)
	b.sendB.collect(int(seq), time.Second)
	base := b.fw.received[A].Load()

	time.Sleep(600 * time.Millisecond) // the flow exists and is live; let it idle past the timeout
	b.sendA.send(t, mk(seq))
	require.Eventually(t, func() bool { return b.fw.received[A].Load() == base+1 }, 5*time.Second, 5*time.Millisecond,
		"the first frame after the idle timeout goes to the bridge")
	assert.Equal(t, []uint32{seq}, b.sendB.collect(1, 2*time.Second), "and is forwarded exactly once")
	_, ok, err := b.p.Lookup(k)
	require.NoError(t, err)
	assert.False(t, ok)
	st, err := b.p.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Expired)
	assert.Equal(t, uint64(0), st.Current)
	assert.Equal(t, uint64(0), st.Evicted)
}

func TestWithdraw(t *testing.T) {
	b := newBed(t, nil, nil)
	mk := func(seq uint32) []byte { return udpFrame(b.macB, b.macA, ipA, ipB, 4444, testPort, seq, 0) }
	k := keyOf(t, mk(0))
	require.NoError(t, b.p.Add(k))
	seq := b.sendUntilLive(t, A, k, mk, 0)
	b.sendB.collect(int(seq), time.Second)

	ok, err := b.p.Withdraw(k)
	require.NoError(t, err)
	assert.True(t, ok)
	base := b.fw.received[A].Load()
	b.sendA.send(t, mk(seq))
	require.Eventually(t, func() bool { return b.fw.received[A].Load() == base+1 }, 5*time.Second, 5*time.Millisecond)

	// WithdrawAll empties the map, flows handing over included.
	for i := range 10 {
		require.NoError(t, b.p.Add(flow.Key{Family: 4, Proto: 17, Port: [2]uint16{uint16(i), 1}}))
	}
	n, err := b.p.WithdrawAll()
	require.NoError(t, err)
	assert.Equal(t, 10, n)
	st, err := b.p.Stats()
	require.NoError(t, err)
	assert.Equal(t, Stats{Total: 11, Withdrawn: 11, Frames: st.Frames, Bytes: st.Bytes}, st)
}

func TestLRUEviction(t *testing.T) {
	p := openPath(t, &Config{MaxFlows: 64})
	const n = 500
	for i := range n {
		require.NoError(t, p.Add(flow.Key{Family: 4, Proto: 6, Addr: [2][4]uint32{{uint32(i)}, {0xc6120001}}, Port: [2]uint16{1, 2}}))
	}
	st, err := p.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(n), st.Total)
	assert.LessOrEqual(t, st.Current, uint64(64))
	assert.Positive(t, st.Current)
	assert.Equal(t, st.Total-st.Current, st.Evicted, "every flow not in the map was evicted")
	// The most recent flow survives eviction.
	_, ok, err := p.Lookup(flow.Key{Family: 4, Proto: 6, Addr: [2][4]uint32{{n - 1}, {0xc6120001}}, Port: [2]uint16{1, 2}})
	require.NoError(t, err)
	assert.True(t, ok)
}

func TestRecreatedPort(t *testing.T) {
	b := newBed(t, nil, nil)
	mk := func(seq uint32) []byte { return udpFrame(b.macB, b.macA, ipA, ipB, 5555, testPort, seq, 0) }
	k := keyOf(t, mk(0))
	require.NoError(t, b.p.Add(k))
	b.sendUntilLive(t, A, k, mk, 0)

	// Re-create port B with a new index; the old forwarder's socket on it is dead, so close the
	// old forwarder's sockets and start a fresh forwarder as peer's re-bind does, and re-attach.
	// (A frame is counted against its flow by each socket filter of ours that sends it to the
	// fast path: an old socket left open beside the new one would count it twice.)
	b.stopFw()
	for _, c := range b.fw.conns {
		require.NoError(t, c.Close())
	}
	old := b.ifidx[1]
	b.br.Run("ip", "link", "del", "p1")
	nb := b.hostB.NS
	pb, hb := testenvVeth(t, b, nb)
	b.ports[1], b.hostB = pb, hb
	b.macB = hb.Interface(t).HardwareAddr
	b.attach()
	require.NotEqual(t, old, b.ifidx[1])
	b.sendB = openRaw(t, hb)
	b.fw = newForwarder(t, b.p, b.ports[0], b.ports[1], 64<<20)
	stop := b.fw.start()
	t.Cleanup(stop)

	mk = func(seq uint32) []byte { return udpFrame(b.macB, b.macA, ipA, ipB, 5555, testPort, seq, 0) }
	before, _, err := b.p.Lookup(k)
	require.NoError(t, err)
	for i := range 50 {
		b.sendA.send(t, mk(uint32(1000+i)))
	}
	got := b.sendB.collect(50, 2*time.Second)
	require.Len(t, got, 50, "frames reach the new port")
	after, _, err := b.p.Lookup(k)
	require.NoError(t, err)
	assert.Equal(t, before.Frames[A]+50, after.Frames[A], "on the fast path, redirected to the new index")
}

func TestFilterLifecycle(t *testing.T) {
	p := openPath(t, &Config{Members: 2})
	_, err := p.Filter(A, 2, nil)
	require.Error(t, err)
	_, err = p.Filter(Side(2), 0, nil)
	require.Error(t, err)
	require.Error(t, p.Attach(1, 1))
	for _, bad := range []Config{{Members: -1}, {Members: MaxMembers + 1}, {MaxFlows: -1}, {IdleTimeout: -time.Second}} {
		_, err := Open(&bad)
		require.Error(t, err, fmt.Sprintf("%+v", bad))
	}
}

// TestVLANMetadata sends 802.1Q-tagged frames: the kernel moves the tag into skb metadata before
// the programs run, and they must key on it exactly as flow.Parse keys the tagged bytes.
func TestVLANMetadata(t *testing.T) {
	b := newBed(t, nil, nil)
	tag := func(f []byte, vid uint16) []byte {
		g := append(append([]byte{}, f[:12]...), 0x81, 0x00, byte(vid>>8), byte(vid))
		return append(g, f[12:]...)
	}
	mk := func(seq uint32) []byte { return tag(udpFrame(b.macB, b.macA, ipA, ipB, 7777, testPort, seq, 0), 7) }
	k := keyOf(t, mk(0))
	require.Equal(t, uint16(7), k.VLAN)
	require.NoError(t, b.p.Add(k))
	seq := b.sendUntilLive(t, A, k, mk, 0)
	for range 20 {
		b.sendA.send(t, mk(seq))
		seq++
	}
	got := b.sendB.collect(int(seq), 2*time.Second)
	require.Len(t, got, int(seq), "every tagged frame arrives once")
	fs, _, err := b.p.Lookup(k)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, fs.Frames[A], uint64(20), "the tagged flow takes the fast path")

	// The same addresses and ports on VLAN 8 are another flow: judged by the bridge.
	base := b.fw.received[A].Load()
	b.sendA.send(t, tag(udpFrame(b.macB, b.macA, ipA, ipB, 7777, testPort, 999, 0), 8))
	require.Eventually(t, func() bool { return b.fw.received[A].Load() == base+1 }, 5*time.Second, 5*time.Millisecond)
}
