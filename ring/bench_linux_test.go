//go:build linux

package ring

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/afbridge/afbridge/internal/tpacket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// flushAll flushes until the kernel has taken every committed frame, yielding while its
// queues are full.
func flushAll(tb testing.TB, tx *TX) {
	for try := 0; tx.Pending() > 0; try++ {
		if err := tx.Flush(); err != nil {
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.ENOBUFS) || try > 100000 {
				tb.Fatal(err)
			}
			runtime.Gosched()
		}
	}
}

// generate sends copies of frame from a TX ring on l, in batches of 64, until the returned
// function is called; that function returns how many it sent.
func generate(tb testing.TB, l testenv.Link, frame []byte) (stop func() uint64) {
	tb.Helper()
	sock := openSocket(tb, l, sockOpts{txOnly: true})
	m, err := New(sock, &Config{NoRX: true, TXFrameCount: 512})
	require.NoError(tb, err)
	var quit atomic.Bool
	var sent uint64
	var wg sync.WaitGroup
	wg.Go(func() {
		tx := m.TX
		for !quit.Load() {
			for range 64 {
				b, ok := tx.Reserve()
				if !ok {
					break
				}
				if tx.Commit(copy(b, frame)) == nil {
					sent++
				}
			}
			if err := tx.Flush(); err != nil {
				runtime.Gosched()
			}
		}
	})
	return func() uint64 {
		quit.Store(true)
		wg.Wait()
		require.NoError(tb, m.Close())
		return sent
	}
}

// BenchmarkRX receives frames a generator on the other end of the veth pair sends as fast as
// it can; frames the ring had no room for are dropped by the kernel and not counted.
func BenchmarkRX(b *testing.B) {
	for _, v := range []Version{V2, V3} {
		for _, size := range []int{64, 1514} {
			b.Run(fmt.Sprintf("%v/%dB", v, size), func(b *testing.B) {
				p := testenv.NewPair(b, nil)
				local, remote := macs(b, p)
				sock := openSocket(b, p.Local, sockOpts{})
				cfg := Config{Version: v}
				if v == V3 {
					cfg.BlockTimeout = time.Millisecond
				}
				m := newMap(b, sock, &cfg)
				stop := generate(b, p.Remote, pktgen.Frame(nil, local, remote, 0, size))
				require.NoError(b, sock.SetReadDeadline(time.Now().Add(time.Minute)))

				var f Frame
				got := 0
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for got < b.N {
					for got < b.N && m.RX.Next(&f) {
						got++
					}
					if err := m.RX.Release(); err != nil {
						b.Fatal(err)
					}
					if got < b.N {
						if err := m.RX.Wait(); err != nil {
							b.Fatal(err)
						}
					}
				}
				elapsed := time.Since(start)
				b.StopTimer()
				stop()
				b.ReportMetric(float64(got)/elapsed.Seconds(), "frames/s")
			})
		}
	}
}

// BenchmarkTX builds frames in the TX ring and flushes them 256 at a time.
func BenchmarkTX(b *testing.B) {
	for _, v := range []Version{V2, V3} {
		for _, size := range []int{64, 1514} {
			b.Run(fmt.Sprintf("%v/%dB", v, size), func(b *testing.B) {
				p := testenv.NewPair(b, nil)
				local, remote := macs(b, p)
				sock := openSocket(b, p.Local, sockOpts{txOnly: true})
				m := newMap(b, sock, &Config{Version: v, NoRX: true, TXFrameCount: 1024})
				tx := m.TX
				frame := pktgen.Frame(nil, remote, local, 0, size)

				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					buf, ok := tx.Reserve()
					if !ok {
						flushAll(b, tx)
						if buf, ok = tx.Reserve(); !ok {
							b.Fatal("no free slot after a flush")
						}
					}
					if err := tx.Commit(copy(buf, frame)); err != nil {
						b.Fatal(err)
					}
					if tx.Pending() == 256 {
						flushAll(b, tx)
					}
				}
				flushAll(b, tx)
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
				b.ReportMetric(float64(b.N)/float64(max(tx.sends, 1)), "frames/send")
			})
		}
	}
}

// TestAllocs checks that the hot path allocates nothing: Reserve, Commit and Flush on one
// end, Wait, Next and Release on the other.
func TestAllocs(t *testing.T) {
	for _, v := range []Version{V2, V3} {
		t.Run(v.String(), func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			local, remote := macs(t, p)
			txSock := openSocket(t, p.Remote, sockOpts{})
			rxSock := openSocket(t, p.Local, sockOpts{})
			cfg := Config{Version: v, TXFrameCount: 64}
			if v == V3 {
				cfg.BlockTimeout = time.Millisecond
			}
			tx := newMap(t, txSock, &cfg).TX
			rx := newMap(t, rxSock, &cfg).RX
			require.NoError(t, rxSock.SetReadDeadline(time.Now().Add(time.Minute)))
			frame := pktgen.Frame(nil, local, remote, 0, 100)

			var f Frame
			received := 0
			allocs := testing.AllocsPerRun(200, func() {
				for range 8 {
					buf, ok := tx.Reserve()
					if !ok {
						t.Fatal("TX ring full")
					}
					if err := tx.Commit(copy(buf, frame)); err != nil {
						t.Fatal(err)
					}
				}
				if err := tx.Flush(); err != nil {
					t.Fatal(err)
				}
				for got := 0; got < 8; {
					if err := rx.Wait(); err != nil {
						t.Fatal(err)
					}
					for rx.Next(&f) {
						if pktgen.IsTest(f.Data) {
							got++
						}
					}
					if err := rx.Release(); err != nil {
						t.Fatal(err)
					}
					received += got
				}
			})
			assert.Zero(t, allocs, "allocations per batch of 8 frames")
			assert.Positive(t, received)
		})
	}
}

// TestDeadlineErrorAllocs checks that a Wait ending at the deadline allocates nothing either,
// so a worker polling a stop flag with short deadlines costs nothing.
func TestDeadlineErrorAllocs(t *testing.T) {
	p := testenv.NewPair(t, nil)
	sock := openSocket(t, p.Local, sockOpts{})
	rx := newMap(t, sock, nil).RX
	require.NoError(t, sock.SetReadDeadline(time.Now()))
	allocs := testing.AllocsPerRun(100, func() {
		if err := rx.Wait(); err != os.ErrDeadlineExceeded {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

// BenchmarkNextSynthetic measures the ring's own cost per received frame, without the kernel:
// Next over a batch of ready slots, then Release, on plain memory.
func BenchmarkNextSynthetic(b *testing.B) {
	frame := pktgen.Frame(nil, nil, nil, 0, 64)
	const batch = 64
	b.Run("V2", func(b *testing.B) {
		const size = 256
		mem := aligned(nil, batch*size)
		for i := range batch {
			copy(mem[i*size:], v2Slot(frame, false, size))
		}
		r := &RX{m: syntheticMap(), mem: mem, slots: slotOffsets(batch, size, batch*size), frameSize: size}
		var f Frame
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			for r.Next(&f) {
				n++
			}
			_ = r.Release()
			for i := range batch {
				storeStatus(mem[i*size:], unix.TP_STATUS_USER)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
	})
	b.Run("V3", func(b *testing.B) {
		frames := make([][]byte, batch)
		for i := range frames {
			frames[i] = frame
		}
		block := v3Block(frames, false, 16384)
		r := v3RX(block, false)
		var f Frame
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			for r.Next(&f) {
				n++
			}
			_ = r.Release()
			storeStatus(block[tpacket.BlockStatusOff:], unix.TP_STATUS_USER)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
	})
}
