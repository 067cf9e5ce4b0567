//go:build linux

package peer_test

import (
	"net"
	"testing"

	"github.com/afbridge/afbridge/internal/netns"
	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/afbridge/afbridge/peer"
	"github.com/stretchr/testify/require"
)

// topo is the three-namespace fixture: client c0 (198.18.0.1) == b0 [bridge] b1 == s0 server
// (198.18.0.2), all in 198.18.0.0/24 so the bridge is a pure layer-2 path.
type topo struct {
	client, bridge, server *netns.NS
	c0, b0, b1, s0         testenv.Link
	cIfi, sIfi             *net.Interface
}

const (
	clientIP = "198.18.0.1"
	serverIP = "198.18.0.2"
)

func newTopo(t testing.TB, veth *testenv.VethConfig) *topo {
	t.Helper()
	tp := &topo{client: testenv.NS(t, "client"), bridge: testenv.NS(t, "bridge"), server: testenv.NS(t, "server")}
	tp.c0, tp.b0 = testenv.Veth(t, tp.client, "c0", tp.bridge, "b0", veth)
	tp.b1, tp.s0 = testenv.Veth(t, tp.bridge, "b1", tp.server, "s0", veth)
	tp.c0.Run(t, "ip", "addr", "add", clientIP+"/24", "dev", "c0")
	tp.s0.Run(t, "ip", "addr", "add", serverIP+"/24", "dev", "s0")
	tp.cIfi, tp.sIfi = tp.c0.Interface(t), tp.s0.Interface(t)
	return tp
}

func (tp *topo) config(threads int) peer.Config {
	return peer.Config{
		A:       peer.Side{Interface: "b0"},
		B:       peer.Side{Interface: "b1"},
		Threads: threads,
	}
}

// start starts a bridge inside the bridge namespace; it is closed at cleanup.
func (tp *topo) start(t testing.TB, cfg peer.Config) *peer.Bridge {
	t.Helper()
	br, err := peer.New(cfg)
	require.NoError(t, err)
	require.NoError(t, tp.bridge.Do(br.Start))
	t.Cleanup(func() { br.Close() })
	return br
}

// open opens pktgen sockets on the client and server ends.
func (tp *topo) open(t testing.TB) (client, server *pktgen.Conn) {
	t.Helper()
	require.NoError(t, tp.client.Do(func() (err error) { client, err = pktgen.Open(tp.cIfi.Index); return }))
	t.Cleanup(func() { client.Close() })
	require.NoError(t, tp.server.Do(func() (err error) { server, err = pktgen.Open(tp.sIfi.Index); return }))
	t.Cleanup(func() { server.Close() })
	return client, server
}

// ping runs ping(8) from the client to the server and fails the test if it loses a packet.
func (tp *topo) ping(t *testing.T, count int) string {
	t.Helper()
	out, err := tp.client.Run("ping", "-c", itoa(count), "-i", "0.01", "-W", "2", serverIP)
	require.NoError(t, err, out)
	return out
}

func itoa(n int) string {
	return string(rune('0'+n/100%10)) + string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}
