//go:build linux

package ring

import (
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// waitInside waits until n callers are inside ring methods, besides the Map itself.
func waitInside(t *testing.T, m *Map, n int64) {
	t.Helper()
	for i := 0; m.state.Load()&callMask != 1+n; i++ {
		require.Less(t, i, 1000, "a caller enters the ring")
		time.Sleep(time.Millisecond)
	}
}

func unmapped(m *Map) bool {
	select {
	case <-m.unmapped:
		return true
	default:
		return false
	}
}

// TestCloseWakesWait blocks a goroutine in Wait, with no deadline, and checks that Close from
// another goroutine wakes it with os.ErrClosed and unmaps.
func TestCloseWakesWait(t *testing.T) {
	for _, v := range []Version{V2, V3} {
		t.Run(v.String(), func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			sock := openSocket(t, p.Local, sockOpts{})
			m := newMap(t, sock, &Config{Version: v, TXFrameCount: 8})
			errc := make(chan error, 1)
			go func() { errc <- m.RX.Wait() }()
			waitInside(t, m, 1)
			time.Sleep(20 * time.Millisecond) // well into the poller

			require.NoError(t, m.Close())
			select {
			case err := <-errc:
				assert.ErrorIs(t, err, os.ErrClosed)
			case <-time.After(30 * time.Second): // a bound for a hang, not a measurement
				t.Fatal("Wait did not return after Close")
			}
			assert.True(t, unmapped(m), "Close returns after the munmap")
		})
	}
}

// TestCloseIdempotent closes from several goroutines at once, then checks every method.
func TestCloseIdempotent(t *testing.T) {
	p := testenv.NewPair(t, nil)
	sock := openSocket(t, p.Local, sockOpts{})
	m := newMap(t, sock, &Config{TXFrameCount: 8})

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = m.Close() })
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assert.NoError(t, m.Close())
	assert.True(t, unmapped(m))

	var f Frame
	assert.False(t, m.RX.Next(&f))
	assert.ErrorIs(t, m.RX.Release(), os.ErrClosed)
	assert.ErrorIs(t, m.RX.Wait(), os.ErrClosed)
	_, ok := m.TX.Reserve()
	assert.False(t, ok)
	assert.ErrorIs(t, m.TX.Commit(64), os.ErrClosed)
	assert.ErrorIs(t, m.TX.Flush(), os.ErrClosed)
	_, err := m.TX.Discard(0)
	assert.ErrorIs(t, err, os.ErrClosed)
	assert.Zero(t, m.TX.Free())
	assert.Zero(t, m.TX.Pending())
}

// TestWaitDeadline checks that the socket's read deadline bounds Wait.
func TestWaitDeadline(t *testing.T) {
	p := testenv.NewPair(t, nil)
	sock := openSocket(t, p.Local, sockOpts{})
	m := newMap(t, sock, nil)
	// Compared with the deadline itself, not with a duration measured from a later instant: on a
	// loaded machine the test goroutine may lose the CPU between setting the deadline and Wait.
	deadline := time.Now().Add(30 * time.Millisecond)
	require.NoError(t, sock.SetReadDeadline(deadline))
	err := m.RX.Wait()
	returned := time.Now()
	assert.Equal(t, os.ErrDeadlineExceeded, err, "the sentinel itself, not wrapped")
	assert.False(t, returned.Before(deadline), "not before the deadline: returned %v early", deadline.Sub(returned))
	assert.ErrorIs(t, m.RX.Wait(), os.ErrDeadlineExceeded, "a passed deadline fails at once")
}

// TestWaitAllHeld checks that Wait refuses to wait for a frame that cannot come before a
// Release, rather than hang.
func TestWaitAllHeld(t *testing.T) {
	p := testenv.NewPair(t, nil)
	local, remote := macs(t, p)
	sock := openSocket(t, p.Local, sockOpts{})
	m := newMap(t, sock, &Config{FrameCount: 5}) // one 8 KiB block of five 1584-byte slots
	gen := openPktgen(t, p.Remote)
	for i := range 5 {
		require.NoError(t, gen.Send(pktgen.Frame(nil, local, remote, uint32(i), 100)))
	}
	var f Frame
	held := 0
	for i := 0; held < 5 && i < 100; i++ {
		for m.RX.Next(&f) {
			held++
		}
		if held < 5 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	require.Equal(t, 5, held)
	err := m.RX.Wait()
	assert.ErrorIs(t, err, ErrAllHeld)
	assert.ErrorContains(t, err, "call Release before Wait")
	require.NoError(t, m.RX.Release())
}

// TestCloseWhileHolding closes the Map while the owner still holds a frame and a TX
// reservation: the memory stays mapped until the owner lets go of both, so no slice faults.
func TestCloseWhileHolding(t *testing.T) {
	for _, v := range []Version{V2, V3} {
		t.Run(v.String(), func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			local, remote := macs(t, p)
			sock := openSocket(t, p.Local, sockOpts{})
			cfg := Config{Version: v, TXFrameCount: 8}
			if v == V3 {
				cfg.BlockTimeout = time.Millisecond
			}
			m := newMap(t, sock, &cfg)
			gen := openPktgen(t, p.Remote)
			require.NoError(t, gen.Send(pktgen.Frame(nil, local, remote, 7, 200)))

			var f Frame
			require.NoError(t, sock.SetReadDeadline(time.Now().Add(5*time.Second)))
			for !m.RX.Next(&f) {
				require.NoError(t, m.RX.Wait())
			}
			buf, ok := m.TX.Reserve()
			require.True(t, ok)

			done := make(chan error, 1)
			go func() { done <- m.Close() }()
			require.NoError(t, <-done, "Close does not wait for holders")
			assert.False(t, unmapped(m), "still mapped for the holders")

			seq, ok := pktgen.Check(f.Data) // reads the ring after Close: must not fault
			assert.True(t, ok)
			assert.Equal(t, uint32(7), seq)
			copy(buf, f.Data) // writes the TX slot after Close
			assert.False(t, m.RX.Next(&f), "no new frames after Close")
			assert.ErrorIs(t, m.RX.Release(), os.ErrClosed)
			assert.False(t, unmapped(m), "the TX reservation still holds the mapping")
			assert.ErrorIs(t, m.TX.Commit(200), os.ErrClosed)
			assert.True(t, unmapped(m), "the last holder unmapped")
		})
	}
}

// TestCloseRace closes the Map at random moments while the owner receives, sends and waits,
// under -race: the owner must always stop with os.ErrClosed, and nothing may fault.
func TestCloseRace(t *testing.T) {
	p := testenv.NewPair(t, nil)
	local, remote := macs(t, p)
	gen := openPktgen(t, p.Remote)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		frame := pktgen.Frame(nil, local, remote, 0, 300)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = gen.Send(frame)
			time.Sleep(50 * time.Microsecond)
		}
	})
	defer func() { close(stop); wg.Wait() }()

	for i := range 20 {
		v := []Version{V2, V3}[i%2]
		sock := openSocket(t, p.Local, sockOpts{})
		cfg := Config{Version: v, TXFrameCount: 16, FrameCount: 64}
		if v == V3 {
			cfg = Config{Version: v, TXFrameCount: 16, BlockSize: 16384, BlockCount: 4, BlockTimeout: time.Millisecond}
		}
		m, err := New(sock, &cfg)
		require.NoError(t, err)
		owner := make(chan error, 1)
		go func() {
			var f Frame
			for {
				for m.RX.Next(&f) {
					if b, ok := m.TX.Reserve(); ok {
						n := copy(b, f.Data)
						_ = m.TX.Commit(n)
					}
				}
				_ = m.RX.Release()
				if err := m.TX.Flush(); errors.Is(err, os.ErrClosed) {
					owner <- err
					return
				}
				_ = sock.SetReadDeadline(time.Now().Add(time.Millisecond))
				if err := m.RX.Wait(); errors.Is(err, os.ErrClosed) {
					owner <- err
					return
				}
			}
		}()
		time.Sleep(time.Duration(i%7) * time.Millisecond)
		require.NoError(t, m.Close())
		select {
		case err := <-owner:
			require.ErrorIs(t, err, os.ErrClosed)
		case <-time.After(2 * time.Second):
			t.Fatalf("round %d: the owner did not stop after Close", i)
		}
		assert.True(t, unmapped(m), "round %d: unmapped once the owner let go", i)
	}
}

// TestNewErrors checks the errors New returns for sockets it cannot use.
func TestNewErrors(t *testing.T) {
	p := testenv.NewPair(t, nil)

	t.Run("vnet header missing", func(t *testing.T) {
		_, err := New(openSocket(t, p.Local, sockOpts{}), &Config{VnetHdr: true})
		assert.ErrorContains(t, err, "socket has no PACKET_VNET_HDR")
		var ce *ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "VnetHdr", ce.Field)
	})
	t.Run("vnet header unexpected", func(t *testing.T) {
		_, err := New(openSocket(t, p.Local, sockOpts{vnet: true}), nil)
		assert.ErrorContains(t, err, "Config.VnetHdr is not set")
	})
	t.Run("ring exists", func(t *testing.T) {
		sock := openSocket(t, p.Local, sockOpts{})
		newMap(t, sock, nil)
		_, err := New(sock, nil)
		assert.ErrorIs(t, err, unix.EBUSY)
		assert.ErrorContains(t, err, "must be set before the ring exists")
	})
	t.Run("bad geometry", func(t *testing.T) {
		_, err := New(openSocket(t, p.Local, sockOpts{}), &Config{FrameSize: 100})
		assert.ErrorContains(t, err, "FrameSize 100 is not a multiple of 16")
		var ce *ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "FrameSize", ce.Field)
	})
	t.Run("no memory", func(t *testing.T) {
		// Not provoked for real: the kernel would try hard to allocate the ring first.
		err := ringErr("PACKET_RX_RING", unix.ENOMEM, 1<<40, 1<<10, 1<<30)
		assert.ErrorIs(t, err, unix.ENOMEM)
		var se *os.SyscallError
		assert.ErrorAs(t, err, &se)
		assert.EqualError(t, err, "ring: setsockopt PACKET_RX_RING: cannot allocate memory (a ring of 1099511627776 bytes: 1024 blocks of 1073741824; use a smaller ring or smaller blocks)")
	})
	t.Run("not a socket", func(t *testing.T) {
		f, err := os.Open(os.DevNull)
		require.NoError(t, err)
		defer f.Close()
		_, err = New(f, nil)
		assert.ErrorIs(t, err, unix.ENOTSOCK)
	})
	t.Run("locked", func(t *testing.T) {
		sock := openSocket(t, p.Local, sockOpts{})
		m := newMap(t, sock, &Config{Locked: true, FrameCount: 64})
		assert.True(t, m.Config().Locked)
	})
}
