//go:build linux

package testenv_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
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

// TestOneCPU: inside OneCPU the thread may run on exactly one of its CPUs; afterwards it has
// them all back, also when f ends the goroutine.
func TestOneCPU(t *testing.T) {
	var before unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &before))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	inside := -1
	require.NoError(t, testenv.OneCPU(func() {
		var s unix.CPUSet
		require.NoError(t, unix.SchedGetaffinity(0, &s))
		inside = s.Count()
	}))
	assert.Equal(t, 1, inside)
	var after unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &after))
	assert.Equal(t, before, after, "the CPUs are given back")

	done := make(chan unix.CPUSet, 1)
	go func() {
		runtime.LockOSThread() // kept: the thread is inspected after f ended the goroutine's work
		defer func() {
			var s unix.CPUSet
			_ = unix.SchedGetaffinity(0, &s)
			done <- s
		}()
		_ = testenv.OneCPU(runtime.Goexit)
	}()
	assert.Equal(t, before, <-done, "given back when f ends the goroutine")
}
