//go:build linux

package main

import (
	"errors"
	"testing"
	"time"

	"github.com/afbridge/afbridge/afpacket"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLimiter: the bucket lets a burst through at once, then one frame per interval, and never
// saves up more than the burst.
func TestLimiter(t *testing.T) {
	const ms = int64(time.Millisecond)
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).UnixNano()
	for _, tc := range []struct {
		name       string
		rate, bst  int
		at         []int64 // offsets from t0, in ns; one take each
		wantPassed int
	}{
		{"a burst at once", 1000, 50, repeat(0, 60), 50},
		{"one per interval after the burst", 1000, 50, append(repeat(0, 50), ms/2, ms, 2*ms, 2*ms), 52},
		{"idle time saves no more than the burst", 1000, 50, repeat(10*int64(time.Second), 100), 50},
		{"steady at the rate", 10, 1, []int64{0, 100 * ms, 200 * ms, 250 * ms, 300 * ms}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(tc.rate, tc.bst)
			passed := 0
			for _, off := range tc.at {
				if l.allow(t0 + off) {
					passed++
				}
			}
			assert.Equal(t, tc.wantPassed, passed)
		})
	}
}

func repeat(v int64, n int) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// TestRejectFlood reproduces issue 14's amplification: 134,000 spoofed frames that match a reject
// rule drew as many replies. Now a worker sends at most its burst plus rejectRate a second, and
// counts the rest.
func TestRejectFlood(t *testing.T) {
	b, _, out := testBridge(t, testRules, peer.IPS, peer.IPS)
	h := b.cfg.Verdict.New(0)
	n := 134_000
	if raceEnabled {
		n = 20_000 // the race detector makes each alert's EVE event slow
	}
	// Every frame is spoofed from another source, so each is a new flow: the inspector's flow
	// drop would otherwise silence the repeats of one flow after its first reject.
	ps := make([]*verdict.Packet, n)
	for i := range ps {
		src := [4]byte{198, 19, byte(i >> 8), byte(i)}
		ps[i] = packet(tcpFrame(macClient, macServer, src, ipServer, uint16(1024+i/65536), 80, "ugly"), verdict.AToB)
	}
	start := time.Now()
	for _, p := range ps {
		h.Handle(p)
	}
	elapsed := time.Since(start)
	sent := b.eng.rejects.Load()
	limit := uint64(rejectBurst + rejectRate*elapsed.Seconds() + 1)
	t.Logf("%d frames in %v: %d rejects sent, %d rate-limited", n, elapsed, sent, b.eng.rejectsLimited.Load())
	assert.LessOrEqual(t, sent, limit)
	assert.Equal(t, uint64(2*n), sent+b.eng.rejectsLimited.Load(), "every reject frame is sent or counted")
	assert.Equal(t, int(sent), len(out[0].frames)+len(out[1].frames))
}

// sendSide opens an injector on afb0 of a fresh pair, with fn applied to the pair first.
func sendSide(t *testing.T, fn func(testenv.Pair)) (testenv.Pair, *injector) {
	pair := testenv.NewPair(t, nil)
	if fn != nil {
		fn(pair)
	}
	var in *injector
	require.NoError(t, pair.Local.NS.Do(func() (err error) {
		in, err = openInjector(pair.Local.Name)
		return err
	}))
	t.Cleanup(func() { in.Close() })
	return pair, in
}

// TestInjectNonBlocking reproduces issue 14's stalled worker: on a port shaped to 200 kbit/s, a
// blocking send parks the worker until the queue drains. Sends now return errFull instead, and
// a burst of 2,000 full-size frames (80 s of that link) ends as soon as it is sent.
func TestInjectNonBlocking(t *testing.T) {
	testenv.RequireTool(t, "tc")
	_, in := sendSide(t, func(p testenv.Pair) {
		p.Local.Run(t, "tc", "qdisc", "add", "dev", p.Local.Name, "root", "tbf", "rate", "200kbit", "burst", "4kb", "limit", "4mb")
	})
	frame := make([]byte, 1500)
	copy(frame, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5}) // local experimental ethertype
	tx := newRejectTx()
	var ok, full int
	for range 2000 {
		switch err := in.send(tx, frame); {
		case err == nil:
			ok++
		case errors.Is(err, errFull):
			full++
		default:
			t.Fatalf("send: %v", err)
		}
	}
	t.Logf("sent %d, dropped on a full queue %d", ok, full)
	assert.Positive(t, full, "a full queue must drop, not wait")
	assert.Positive(t, ok)
}

// TestInjectAllocs: a reject send allocates nothing.
func TestInjectAllocs(t *testing.T) {
	_, in := sendSide(t, nil)
	frame := make([]byte, 60)
	copy(frame, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
	tx := newRejectTx()
	allocs := testing.AllocsPerRun(200, func() {
		if err := in.send(tx, frame); err != nil && !errors.Is(err, errFull) {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

// TestInjectRefresh reproduces issue 14's dead reject sockets: after the interface is deleted and
// created again under its name, sends fail until refresh re-opens the socket, and then arrive.
func TestInjectRefresh(t *testing.T) {
	pair, in := sendSide(t, nil)
	frame := make([]byte, 60)
	copy(frame, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
	tx := newRejectTx()
	require.NoError(t, in.send(tx, frame))
	var did bool
	require.NoError(t, pair.Local.NS.Do(func() (err error) { did, err = in.refresh(); return err }))
	assert.False(t, did, "same interface: nothing to do")

	// Re-create the pair under the same names.
	pair.Local.Run(t, "ip", "link", "del", pair.Local.Name)
	testenv.Veth(t, pair.Local.NS, pair.Local.Name, pair.Remote.NS, pair.Remote.Name, nil)
	require.Error(t, in.send(tx, frame), "the old socket's interface is gone")

	require.NoError(t, pair.Local.NS.Do(func() (err error) { did, err = in.refresh(); return err }))
	require.True(t, did)

	var rx *afpacket.Conn
	require.NoError(t, pair.Remote.NS.Do(func() (err error) {
		rx, err = afpacket.Listen(pair.Remote.Name, &afpacket.Config{Protocol: 0x88b5})
		return err
	}))
	defer rx.Close()
	require.NoError(t, in.send(tx, frame))
	require.NoError(t, rx.SetReadDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 2048)
	n, _, err := rx.ReadFrom(buf)
	require.NoError(t, err, "the frame sent after the refresh arrives")
	assert.Equal(t, frame, buf[:n])
}
