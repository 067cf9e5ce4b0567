//go:build linux

package bypass

import (
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHandoverStateMachine drives the socket filter's handover decisions with BPF_PROG_TEST_RUN:
// a flow goes live in a direction only once the member has settled past its last frame.
func TestHandoverStateMachine(t *testing.T) {
	p := openPath(t, &Config{Members: 2})
	f, err := p.Filter(B, 1, nil)
	require.NoError(t, err)
	defer f.Close()
	frame := tapFrame(ipB, ipA, testPort, 6666)
	k := keyOf(t, frame)
	run := func() (ret, mark uint32) {
		t.Helper()
		return runTap(t, f, frame)
	}
	value := func() flowValue {
		t.Helper()
		var v flowValue
		require.NoError(t, p.flows.Lookup(&k, &v))
		return v
	}

	ret, mark := run()
	assert.Equal(t, uint32(retNext), ret, "no flow: to the ring")
	assert.Equal(t, uint32(markRing), mark)
	assert.Equal(t, uint64(1), f.Admitted())

	require.NoError(t, p.Add(k))
	ret, _ = run()
	assert.Equal(t, uint32(retNext), ret, "first frame after Add: to the ring")
	v := value()
	assert.Equal(t, uint64(2), v.Last[B])
	assert.Equal(t, uint32(1), v.Member[B])
	assert.Equal(t, uint64(2), f.Admitted())

	assert.True(t, f.Wants())
	assert.False(t, settle(f, 0, 1, 0), "frame 2 is between the filter and the ring")
	assert.False(t, settle(f, 1, 2, 0), "frame 2 is in the ring")
	ret, _ = run()
	assert.Equal(t, uint32(retNext), ret, "outstanding: to the ring")
	assert.Equal(t, uint64(3), value().Last[B])
	assert.Equal(t, [2]uint32{0, 0}, value().Live)

	assert.False(t, settle(f, 2, 3, 0), "frames 1 and 2 taken, 3 in the ring: a handover point")
	assert.True(t, f.Wants())
	ret, _ = run()
	assert.Equal(t, uint32(retNext), ret, "frame 3 is still outstanding")
	assert.Equal(t, uint64(4), value().Last[B])

	assert.False(t, settle(f, 3, 3, 0), "frame 3 taken: the point is published, frame 4 is in flight")
	assert.True(t, settle(f, 3, 4, 1), "frame 4 dropped by the kernel: all published")
	assert.False(t, f.Wants())
	ret, mark = run()
	assert.Equal(t, uint32(0), ret, "settled: the fast path")
	assert.Equal(t, uint32(markFast), mark)
	assert.Equal(t, [2]uint32{0, 1}, value().Live)
	assert.Equal(t, uint64(4), f.Admitted(), "a fast-path frame is not admitted")
	ret, _ = run()
	assert.Equal(t, uint32(0), ret, "live")
}

// TestHandoverLimit: with Config.HandoverLimit, a direction whose bridge never catches up
// switches after that many waiting frames, and the switch is counted.
func TestHandoverLimit(t *testing.T) {
	p := openPath(t, &Config{HandoverLimit: 3})
	f, err := p.Filter(A, 0, nil)
	require.NoError(t, err)
	defer f.Close()
	frame := tapFrame(ipA, ipB, 6666, testPort)
	k := keyOf(t, frame)
	require.NoError(t, p.Add(k))
	var rets []uint32
	for range 5 {
		ret, _ := runTap(t, f, frame)
		rets = append(rets, ret)
	}
	// The first frame after Add, then two that wait behind it, then the third waiter switches.
	assert.Equal(t, []uint32{retNext, retNext, retNext, 0, 0}, rets)
	st, err := p.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Forced)
	fs, _, err := p.Lookup(k)
	require.NoError(t, err)
	assert.True(t, fs.Live[A])
}

// TestShedWhileOverflowing: once Settle has seen the socket drop frames, a frame of a flow
// handing over whose earlier frames are still in the ring is dropped and counted as shed, not
// queued: the flow's last bridged frame stays put, so the bridge can catch up with it and the
// flow goes live in order. Outside ShedHold, and for flows not handing over, nothing is shed.
func TestShedWhileOverflowing(t *testing.T) {
	p := openPath(t, nil)
	f, err := p.Filter(A, 0, nil)
	require.NoError(t, err)
	defer f.Close()
	frame := tapFrame(ipA, ipB, 6666, testPort)
	other := tapFrame(ipA, ipB, 6667, testPort) // a flow not on the fast path
	k := keyOf(t, frame)
	run := func(fr []byte) (ret, mark uint32) {
		t.Helper()
		return runTap(t, f, fr)
	}
	last := func() uint64 {
		t.Helper()
		var v flowValue
		require.NoError(t, p.flows.Lookup(&k, &v))
		return v.Last[A]
	}
	shed := func() uint64 {
		t.Helper()
		st, err := p.Stats()
		require.NoError(t, err)
		return st.Shed
	}

	require.NoError(t, p.Add(k))
	ret, _ := run(frame)
	require.Equal(t, uint32(retNext), ret, "first frame after Add: to the ring")
	require.Equal(t, uint64(1), last())
	assert.False(t, settle(f, 0, 1, 0), "frame 1 in the ring, no drops")
	ret, _ = run(frame)
	assert.Equal(t, uint32(retNext), ret, "no overflow: queued behind frame 1")
	assert.Equal(t, uint64(2), last())
	assert.Zero(t, shed())

	// The ring overflowed: of the 2 frames counted, the kernel dropped 1.
	assert.False(t, settle(f, 0, 2, 1))
	for i := range 3 {
		ret, mark := run(frame)
		assert.Equal(t, uint32(0), ret, "frame %d: shed", i)
		assert.Equal(t, uint32(markRing), mark, "frame %d: tc must not forward a shed frame", i)
	}
	assert.Equal(t, uint64(3), shed())
	assert.Equal(t, uint64(2), last(), "a shed frame does not become the flow's last")
	assert.Equal(t, uint64(2), f.Admitted())
	ret, _ = run(other)
	assert.Equal(t, uint32(retNext), ret, "a flow not handing over is never shed")

	// The bridge takes the queued frame of the flow, then other's: the flow goes live.
	assert.False(t, settle(f, 1, 3, 1))
	assert.True(t, settle(f, 2, 3, 1))
	ret, mark := run(frame)
	assert.Equal(t, uint32(0), ret)
	assert.Equal(t, uint32(markFast), mark, "settled: the fast path")
	assert.Equal(t, uint64(3), shed())

	// Past ShedHold, a new flow handing over queues again, even though drops were seen.
	require.NoError(t, p.Add(keyOf(t, other)))
	ret, _ = run(other)
	assert.Equal(t, uint32(retNext), ret, "first frame after Add")
	word := p.word(6*p.cfg.Members + int(A)*p.cfg.Members + 0)
	atomic.StoreUint64(word, monoNow()-uint64(time.Second)) // the deadline has passed (the filter reads the coarse clock)
	ret, _ = run(other)
	assert.Equal(t, uint32(retNext), ret, "past the deadline: queued")
	assert.Equal(t, uint64(3), shed())
}

// settle is what a worker that observes right before sending does: Observe then Settle.
func settle(f *Filter, received, packets, drops uint64) bool {
	f.Observe(packets, drops)
	return f.Settle(received)
}

// TestShedIgnoresOldDrops: drops the socket counted while no flow was handing over (Observe
// was not called) do not start shedding when a flow hands over later; drops between two
// Observes close together do.
func TestShedIgnoresOldDrops(t *testing.T) {
	p := openPath(t, nil)
	f, err := p.Filter(A, 0, nil)
	require.NoError(t, err)
	defer f.Close()
	frame := tapFrame(ipA, ipB, 6666, testPort)
	run := func() uint32 {
		t.Helper()
		ret, _ := runTap(t, f, frame)
		return ret
	}
	require.NoError(t, p.Add(keyOf(t, frame)))
	require.Equal(t, uint32(retNext), run(), "first frame after Add: to the ring")
	f.Observe(1+500, 500) // 500 drops from long before: the first Observe since Attach
	assert.Equal(t, uint32(retNext), run(), "old drops: queued, not shed")
	f.Observe(2+501, 501) // one more drop since the last Observe: the ring overflows now
	assert.Equal(t, uint32(0), run(), "shed")
	st, err := p.Stats()
	require.NoError(t, err)
	assert.Equal(t, uint64(1), st.Shed)
}

// tapFrame is an IPv4/UDP frame from src:sport to dst:dport as the socket filter sees it.
func tapFrame(src, dst [4]byte, sport, dport uint16) []byte {
	return udpFrame(net.HardwareAddr{0, 0, 0, 0, 0, 2}, net.HardwareAddr{0, 0, 0, 0, 0, 1}, src, dst, sport, dport, 1, 0)
}

// runTap runs the socket filter f on frame with BPF_PROG_TEST_RUN and returns its verdict and the
// mark it left in cb[0] for tc. A test run pulls 14 bytes of Ethernet header first, so the frame
// gets a dummy one in front.
func runTap(t *testing.T, f *Filter, frame []byte) (ret, mark uint32) {
	t.Helper()
	var out skbCtxOut
	ret, err := f.prog.Run(&ebpf.RunOptions{Data: append(make([]byte, 14), frame...), Context: skbCtx{}, ContextOut: &out})
	require.NoError(t, err)
	return ret, out.CB[0]
}
