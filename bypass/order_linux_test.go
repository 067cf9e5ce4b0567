//go:build linux

package bypass

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// checkSeq fails the test unless got holds each of 0..n-1 exactly once, in order unless ordered
// is false (then a reordering is only logged), and says how it differs.
func checkSeq(t *testing.T, dir string, got []uint32, n int, ordered bool) {
	t.Helper()
	seen := make(map[uint32]int, len(got))
	reordered := 0
	for i, s := range got {
		seen[s]++
		if i > 0 && s < got[i-1] {
			reordered++
			if reordered <= 3 {
				t.Logf("%s: at %d: %v", dir, i, got[max(0, i-3):min(len(got), i+3)])
			}
		}
	}
	dups, missing := 0, 0
	for i := range uint32(n) {
		switch c := seen[i]; {
		case c == 0:
			missing++
		case c > 1:
			dups += c - 1
		}
	}
	assert.Equal(t, 0, missing, "%s: frames lost", dir)
	assert.Equal(t, 0, dups, "%s: frames duplicated", dir)
	if ordered {
		assert.Equal(t, 0, reordered, "%s: frames out of order", dir)
	} else if reordered > 0 {
		t.Logf("%s: %d frames out of order", dir, reordered)
	}
	assert.Len(t, got, n, dir)
}

// TestHandoverOrderFullRate sends numbered frames of one flow both ways as fast as two raw
// sockets can, while the forwarder (standing in for a verdict) bypasses the flow when it sees
// frame switchAt. Every frame must arrive exactly once, in order, in both directions, and the
// frames the bridge forwarded plus those the fast path forwarded must add up to all of them.
func TestHandoverOrderFullRate(t *testing.T) {
	b := newBed(t, nil, nil)
	const n, switchAt = 20000, 500
	mk := [2]func(seq uint32) []byte{
		func(seq uint32) []byte { return udpFrame(b.macB, b.macA, ipA, ipB, 6666, testPort, seq, 0) },
		func(seq uint32) []byte { return udpFrame(b.macA, b.macB, ipB, ipA, testPort, 6666, seq, 0) },
	}
	k := keyOf(t, mk[A](0))
	require.Equal(t, k, keyOf(t, mk[B](0)), "both directions share the key")
	var added atomic.Bool
	hook := func(side int, f []byte) {
		if seq, ok := testSeq(f); ok && side == int(A) && seq == switchAt && !added.Swap(true) {
			if err := b.p.Add(k); err != nil {
				t.Errorf("add: %v", err)
			}
		}
	}
	b.fw.onFrame.Store(&hook)

	// Observers on the bridge ports see the frames in the order they leave the bridge. The
	// receiving hosts may see two frames sent from different CPUs swapped: veth queues each
	// frame on the backlog of the CPU that sent it.
	obs := [2]*rawConn{openObserver(t, b.ports[A]), openObserver(t, b.ports[B])}
	// Each sender runs on CPU 0, so the frames of a direction reach the bridge in the order
	// sent, and keeps sending until its direction has been live for a while (at least n frames
	// in all, at most maxFrames).
	const maxFrames = 100000
	var sent [2]int
	var wg sync.WaitGroup
	for s, c := range []*rawConn{b.sendA, b.sendB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var cpu0 unix.CPUSet
			cpu0.Set(0)
			if err := unix.SchedSetaffinity(0, &cpu0); err != nil {
				t.Errorf("pin sender: %v", err)
				return
			}
			liveAt := -1
			for seq := range uint32(maxFrames) {
				c.send(t, mk[s](seq))
				sent[s]++
				if seq%256 != 255 {
					continue
				}
				// Bursts of 256 at full rate, then wait (at most 100 ms) until the bridge has
				// caught up, as a TCP sender waits for its window: a flow hands over at the
				// first pause in which the bridge catches up with it, since its next frame must
				// not overtake those still in the ring (see the package comment).
				for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); time.Sleep(200 * time.Microsecond) {
					fs, _, _ := b.p.Lookup(k)
					if b.fw.received[s].Load()+fs.Frames[s] >= uint64(sent[s]) {
						break
					}
				}
				if liveAt < 0 {
					if fs, ok, _ := b.p.Lookup(k); ok && fs.Live[s] {
						liveAt = int(seq)
					}
				}
				if liveAt >= 0 && int(seq) >= n && int(seq) >= liveAt+5000 {
					return
				}
			}
		}()
	}
	wg.Wait()
	for s := range 2 {
		require.Less(t, sent[s], maxFrames, "side %v never went live", Side(s))
	}
	checkSeq(t, "A to B, leaving the bridge", obs[B].collect(sent[A], 2*time.Second), sent[A], true)
	checkSeq(t, "B to A, leaving the bridge", obs[A].collect(sent[B], 2*time.Second), sent[B], true)
	checkSeq(t, "A to B, received", b.sendB.collect(sent[A], 2*time.Second), sent[A], false)
	checkSeq(t, "B to A, received", b.sendA.collect(sent[B], 2*time.Second), sent[B], false)

	require.True(t, added.Load())
	fs, ok, err := b.p.Lookup(k)
	require.NoError(t, err)
	require.True(t, ok)
	for s := range 2 {
		bridge := b.fw.received[s].Load()
		st, _ := b.fw.conns[s].Stats()
		t.Logf("side %v: %d frames through the bridge, %d on the fast path; socket drops %d, admitted %d",
			Side(s), bridge, fs.Frames[s], st.Drops, b.fw.filters[s].Admitted())
		assert.Equal(t, uint64(sent[s]), bridge+fs.Frames[s], "side %v: bridge + fast path = sent", Side(s))
	}
	assert.Equal(t, [2]bool{true, true}, fs.Live)
}

// TestHandoverUnderOverload floods one flow into a bridge far slower than the flood, with a
// receive buffer that overflows, and bypasses it at its first frame. Without shedding, every
// new frame would queue behind the last and the flow would never leave the bridge. With it the
// flow goes live, the frames leave the bridge in order (none duplicated), and every frame sent
// is accounted for: forwarded by the bridge, forwarded by the fast path, dropped by the full
// socket, or shed.
func TestHandoverUnderOverload(t *testing.T) {
	b := newBedBuf(t, nil, nil, 64<<10)
	const switchAt = 300
	mk := func(seq uint32) []byte { return udpFrame(b.macB, b.macA, ipA, ipB, 6666, testPort, seq, 0) }
	k := keyOf(t, mk(0))
	var added atomic.Bool
	hook := func(side int, f []byte) {
		seq, ok := testSeq(f)
		if !ok || side != int(A) {
			return
		}
		// Bypass once the flood has been overflowing the socket for a while.
		if seq >= switchAt && !added.Swap(true) {
			if err := b.p.Add(k); err != nil {
				t.Errorf("add: %v", err)
			}
		}
		// A slow verdict: 100 us a frame, a small fraction of what the sender manages.
		for end := time.Now().Add(100 * time.Microsecond); time.Now().Before(end); {
		}
	}
	b.fw.onFrame.Store(&hook)
	obs := openObserver(t, b.ports[B])

	const maxFrames, after = 200000, 2000
	require.Less(t, switchAt, maxFrames)
	sent, liveAt := 0, -1
	deadline := time.Now().Add(20 * time.Second)
	for seq := range uint32(maxFrames) {
		b.sendA.send(t, mk(seq))
		sent++
		if liveAt < 0 && seq%64 == 63 {
			if fs, ok, _ := b.p.Lookup(k); ok && fs.Live[A] {
				liveAt = int(seq)
			}
		}
		if (liveAt >= 0 && int(seq) >= liveAt+after) || time.Now().After(deadline) {
			break
		}
	}
	require.GreaterOrEqual(t, liveAt, 0, "the flow never went live (%d frames sent)", sent)

	got := obs.collect(sent, 2*time.Second)
	reordered, dups := 0, 0
	seen := make(map[uint32]bool, len(got))
	for i, s := range got {
		if seen[s] {
			dups++
		}
		seen[s] = true
		if i > 0 && s < got[i-1] {
			reordered++
		}
	}
	assert.Zero(t, reordered, "frames out of order leaving the bridge")
	assert.Zero(t, dups, "frames duplicated")

	// Let the forwarder finish what it holds before reading the counters.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if st, err := b.fw.conns[A].Stats(); err == nil && b.fw.received[A].Load()+st.Drops >= st.Packets {
			break
		}
	}
	st, err := b.p.Stats()
	require.NoError(t, err)
	sock, err := b.fw.conns[A].Stats()
	require.NoError(t, err)
	bridged := b.fw.received[A].Load()
	t.Logf("sent %d, live at %d: bridge %d, fast path %d, socket drops %d, shed %d", sent, liveAt, bridged, st.Frames[A], sock.Drops, st.Shed)
	require.Positive(t, sock.Drops, "the flood never overflowed the socket")
	// How many frames were shed depends on when the sender and the forwarder ran; that a frame
	// of a flow handing over is shed while its ring overflows is TestShedWhileOverflowing's.
	assert.Positive(t, st.Frames[A], "frames on the fast path")
	assert.Equal(t, uint64(sent), bridged+st.Frames[A]+sock.Drops+st.Shed, "bridge + fast path + drops + shed = sent")
	assert.Equal(t, uint64(len(got)), bridged+st.Frames[A], "what left the bridge")
}
