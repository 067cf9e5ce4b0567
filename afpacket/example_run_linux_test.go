//go:build linux

package afpacket_test

import (
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExamples runs the body of Example, which needs privileges and an eth0, in a namespace
// whose eth0 receives IPv4 frames from its veth peer.
func TestExamples(t *testing.T) {
	testenv.RequirePriv(t)
	local, remote := testenv.NS(t, "local"), testenv.NS(t, "remote")
	eth0, peer := testenv.Veth(t, local, "eth0", remote, "peer0", nil)
	var gen *pktgen.Conn
	require.NoError(t, remote.Do(func() (err error) { gen, err = pktgen.Open(peer.Interface(t).Index); return }))
	defer gen.Close()
	ipv4 := make([]byte, 60)
	copy(ipv4, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45})
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for range 3000 { // 30 s at most
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			_ = gen.Send(ipv4)
		}
	}()
	var out string
	require.NoError(t, eth0.NS.Do(func() error { out = testenv.CaptureStdout(t, Example); return nil }))
	close(stop)
	<-sent
	assert.Contains(t, out, "60 bytes, packet type 1\n", "broadcast IPv4 frames were read")
	assert.Contains(t, out, "kernel: ")
}
