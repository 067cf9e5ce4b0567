//go:build linux

package ring_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExamples runs the body of Example, the reflector, in a namespace with an eth0, and checks
// that frames sent to it come back with their addresses swapped.
func TestExamples(t *testing.T) {
	testenv.RequirePriv(t)
	local, remote := testenv.NS(t, "local"), testenv.NS(t, "remote")
	eth0, peer := testenv.Veth(t, local, "eth0", remote, "peer0", nil)
	mine, theirs := peer.Interface(t).HardwareAddr, eth0.Interface(t).HardwareAddr
	var gen *pktgen.Conn
	require.NoError(t, remote.Do(func() (err error) { gen, err = pktgen.Open(peer.Interface(t).Index); return }))
	defer gen.Close()

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = eth0.NS.Do(func() error { Example(); return nil }) // reflects for 10 s
	}()
	var back []byte
	for seq := uint32(0); back == nil && seq < 100; seq++ {
		require.NoError(t, gen.Send(pktgen.Frame(nil, theirs, mine, seq, 100)))
		for _, f := range gen.Collect(1, 200*time.Millisecond, 200*time.Millisecond) {
			if bytes.Equal(f[0:6], mine) && bytes.Equal(f[6:12], theirs) {
				back = f
			}
		}
	}
	require.NotNil(t, back, "a frame came back")
	_, ok := pktgen.Check(back)
	assert.True(t, ok, "intact apart from the swapped addresses")
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the example did not stop at its 10 s deadline")
	}
}
