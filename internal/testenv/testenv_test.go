//go:build linux

package testenv_test

import (
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPairCarriesFrames proves the fixture itself: frames sent on one end of the veth pair arrive
// intact and in order at the other end, in another namespace.
func TestPairCarriesFrames(t *testing.T) {
	p := testenv.NewPair(t, nil)
	local, remote := p.Local.Interface(t), p.Remote.Interface(t)

	var rx, tx *pktgen.Conn
	require.NoError(t, p.Local.NS.Do(func() (err error) { rx, err = pktgen.Open(local.Index); return }))
	defer rx.Close()
	require.NoError(t, p.Remote.NS.Do(func() (err error) { tx, err = pktgen.Open(remote.Index); return }))
	defer tx.Close()

	const n = 100
	for i := range n {
		require.NoError(t, tx.Send(pktgen.Frame(nil, local.HardwareAddr, remote.HardwareAddr, uint32(i), 60+i*10)))
	}
	got := rx.Collect(n, time.Second, 5*time.Second)
	require.Len(t, got, n)
	for i, f := range got {
		seq, ok := pktgen.Check(f)
		assert.True(t, ok, "frame %d intact", i)
		assert.Equal(t, uint32(i), seq, "in order")
	}
}

func TestNamespacesAreIsolated(t *testing.T) {
	a := testenv.NS(t, "a")
	out := testenv.MustRun(t, a, "ip", "-o", "link", "show")
	assert.NotContains(t, out, "afb0", "a new namespace holds only loopback")
	assert.Contains(t, out, "lo")
}
