//go:build linux

package pcapfilter_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/afbridge/afbridge/pcapfilter"
	"github.com/afbridge/afbridge/peer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// TestIPSDropsWhatTheFilterRejects keeps the package doc's promise about inline bridges: with
// the filter on a peer.Side, in IPS and in TAP copy mode, a frame the filter rejects is never
// forwarded, and every frame it accepts is forwarded unchanged (VLAN tag included).
// Client c0 == b0 [bridge] b1 == s0.
func TestIPSDropsWhatTheFilterRejects(t *testing.T) {
	testenv.RequirePriv(t)
	for _, mode := range []peer.CopyMode{peer.IPS, peer.Tap} {
		t.Run(mode.String(), func(t *testing.T) { filteredBridge(t, mode) })
	}
}

func filteredBridge(t *testing.T, mode peer.CopyMode) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last: the bridge's workers must be gone
	const expr = "udp port 53 or arp or vlan 10"
	prog, err := pcapfilter.Compile(expr, nil)
	require.NoError(t, err)
	raw := assemble(prog)

	client, bridge, server := testenv.NS(t, "client"), testenv.NS(t, "bridge"), testenv.NS(t, "server")
	c0, b0 := testenv.Veth(t, client, "c0", bridge, "b0", nil)
	b1, s0 := testenv.Veth(t, bridge, "b1", server, "s0", nil)

	var send, tap, sink int
	require.NoError(t, client.Do(func() (err error) { send, err = packetSocket(c0.Name, nil); return }))
	t.Cleanup(func() { unix.Close(send) })
	require.NoError(t, bridge.Do(func() (err error) { tap, err = packetSocket(b0.Name, nil); return }))
	t.Cleanup(func() { unix.Close(tap) })
	require.NoError(t, server.Do(func() (err error) { sink, err = packetSocket(s0.Name, nil); return }))
	t.Cleanup(func() { unix.Close(sink) })
	dst := &unix.SockaddrLinklayer{Ifindex: c0.Interface(t).Index}

	br, err := peer.New(peer.Config{
		A: peer.Side{Interface: b0.Name, Filter: prog, CopyMode: mode},
		B: peer.Side{Interface: b1.Name, Filter: prog, CopyMode: mode},
	})
	require.NoError(t, err)
	require.NoError(t, bridge.Do(br.Start))
	t.Cleanup(func() { br.Close() })

	// An ARP frame the filter accepts marks the end of each round. (Nothing follows "vlan 10"
	// in the expression: after a vlan primitive, arp would be looked for 4 bytes further in.)
	marker := func(round uint32) []byte {
		f := append(bytes.Repeat([]byte{0xff}, 6), 2, 0, 0, 0, 0, 9, 0x08, 0x06)
		f = append(f, []byte("pcapfilter-marker")...)
		return binary.BigEndian.AppendUint32(append(f, make([]byte, 30)...), round)
	}
	isMark := func(f []byte) bool { return bytes.Contains(f, []byte("pcapfilter-marker")) }
	// waitMark reads fd until the marker of round arrives and returns what came before it.
	waitMark := func(fd int, round uint32, resend bool) []skb {
		var seen []skb
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			if resend {
				require.NoError(t, unix.Sendto(send, marker(round), 0, dst))
			}
			v, err := recvAux(fd, 100*time.Millisecond)
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			require.NoError(t, err)
			if isMark(v.data) {
				if bytes.Equal(v.data, marker(round)) {
					return seen
				}
				continue // an earlier round's marker, resent while the bridge came up
			}
			seen = append(seen, v)
		}
		t.Fatalf("fd %d: marker %d not seen within 10s", fd, round)
		return nil
	}
	// Round 0: wait until the bridge forwards.
	waitMark(sink, 0, true)
	waitMark(tap, 0, false)

	frames := corpus(800, 7)
	forwarded, dropped, tagged := 0, 0, 0
	for round := uint32(1); round <= 4; round++ {
		for i, f := range frames[(round-1)*200 : round*200] {
			if len(f) < 14 {
				continue
			}
			f = binary.BigEndian.AppendUint32(append([]byte{}, f...), round<<16|uint32(i))
			require.NoError(t, unix.Sendto(send, f, 0, dst))
		}
		require.NoError(t, unix.Sendto(send, marker(round), 0, dst))
		atB0 := waitMark(tap, round, false)
		atS0 := waitMark(sink, round, false)
		var want []skb
		for _, v := range atB0 {
			if run(raw, v).ret != 0 {
				want = append(want, v)
				if v.vlanTagged {
					tagged++
				}
			} else {
				dropped++
			}
		}
		require.Equal(t, len(want), len(atS0), "frames forwarded in round %d", round)
		for i := range want {
			assert.Equal(t, want[i], atS0[i])
		}
		forwarded += len(atS0)
	}
	require.Positive(t, forwarded)
	require.Positive(t, dropped)
	require.Positive(t, tagged, "no VLAN-tagged frame crossed: the vlan primitive is untested here")
	t.Logf("%q: %d frames forwarded (%d VLAN-tagged), %d rejected by the filter and not forwarded", expr, forwarded, tagged, dropped)
}
