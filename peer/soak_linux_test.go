//go:build linux

package peer_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// soakSize is the size of soak frame seq: every size from 60 to 1514 bytes in turn.
func soakSize(seq uint32) int { return 60 + int(seq*131)%1455 }

// soakSink receives the soak's frames on the server and checks each byte for byte against the
// frame its sequence number names, without allocating, so that it keeps up with the bridge.
type soakSink struct {
	fd       int
	dst, src []byte
	seen     []uint64 // bitmap of sequence numbers received
	got      atomic.Int64
	dup, bad atomic.Int64
	done     chan struct{}
}

// newSoakSink opens a raw socket on the server's interface; Run it in a goroutine.
func newSoakSink(t testing.TB, tp *topo, n int) *soakSink {
	t.Helper()
	s := &soakSink{dst: tp.sIfi.HardwareAddr, src: tp.cIfi.HardwareAddr, seen: make([]uint64, (n+63)/64),
		done: make(chan struct{})}
	require.NoError(t, tp.server.Do(func() (err error) {
		s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(pktgen.EtherType)))
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20); err != nil {
			return err
		}
		return unix.Bind(s.fd, &unix.SockaddrLinklayer{Protocol: htons(pktgen.EtherType), Ifindex: tp.sIfi.Index})
	}))
	t.Cleanup(func() { unix.Close(s.fd) })
	return s
}

// run receives until want frames have arrived or none arrives for idle.
func (s *soakSink) run(want int, idle time.Duration) {
	defer close(s.done)
	tv := unix.NsecToTimeval(int64(idle))
	_ = unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	buf := make([]byte, 1<<16)
	exp := make([]byte, 1<<16)
	var from unix.RawSockaddrLinklayer
	for s.got.Load() < int64(want) {
		l := uint32(unix.SizeofSockaddrLinklayer)
		n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0,
			uintptr(unsafe.Pointer(&from)), uintptr(unsafe.Pointer(&l)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return // idle
		}
		f := buf[:n]
		if from.Pkttype == unix.PACKET_OUTGOING || !pktgen.IsTest(f) || len(f) < pktgen.HeaderLen {
			continue
		}
		seq := uint32(f[18])<<24 | uint32(f[19])<<16 | uint32(f[20])<<8 | uint32(f[21])
		// Every byte as Frame wrote it, addresses included (pktgen.Check skips those).
		if int(seq) >= len(s.seen)*64 || !bytes.Equal(f, pktgen.Frame(exp, s.dst, s.src, seq, soakSize(seq))) {
			s.bad.Add(1)
			continue
		}
		if s.seen[seq/64]&(1<<(seq%64)) != 0 {
			s.dup.Add(1)
			continue
		}
		s.seen[seq/64] |= 1 << (seq % 64)
		s.got.Add(1)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// soakSender sends soak frames from the client.
type soakSender struct {
	c        *pktgen.Conn
	dst, src []byte
	buf      []byte
}

func (s *soakSender) send(t testing.TB, seq uint32) {
	if err := s.c.Send(pktgen.Frame(s.buf, s.dst, s.src, seq, soakSize(seq))); err != nil {
		t.Fatal(err)
	}
}

// measureCapacity sends n frames with at most window in flight, as fast as the sink sees them
// arrive, and returns the rate the whole path carried: sender, bridge and checking sink.
func measureCapacity(t testing.TB, tp *topo, n int) float64 {
	t.Helper()
	client, _ := tp.open(t)
	sink := newSoakSink(t, tp, n)
	go sink.run(n, time.Second)
	snd := &soakSender{c: client, dst: tp.sIfi.HardwareAddr, src: tp.cIfi.HardwareAddr, buf: make([]byte, 2048)}
	const window = 128
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for i := 0; i < n; i++ {
		for int64(i)-sink.got.Load() >= window {
			if time.Now().After(deadline) {
				t.Fatalf("capacity probe stalled at %d of %d frames", sink.got.Load(), i)
			}
			time.Sleep(20 * time.Microsecond)
		}
		snd.send(t, uint32(i))
	}
	<-sink.done
	el := time.Since(start)
	require.Equal(t, int64(n), sink.got.Load(), "the capacity probe lost no frame")
	return float64(n) / el.Seconds()
}

// soak sends n frames at rate frames/s and returns what the sink saw.
func soak(t testing.TB, tp *topo, rate float64, n int) (sink *soakSink, took time.Duration) {
	t.Helper()
	client, _ := tp.open(t)
	sink = newSoakSink(t, tp, n)
	go sink.run(n, 2*time.Second)
	snd := &soakSender{c: client, dst: tp.sIfi.HardwareAddr, src: tp.cIfi.HardwareAddr, buf: make([]byte, 2048)}
	start := time.Now()
	for i := 0; i < n; {
		due := int(time.Since(start).Seconds() * rate)
		if i >= due {
			time.Sleep(200 * time.Microsecond)
			continue
		}
		for ; i < min(due, n); i++ {
			snd.send(t, uint32(i))
		}
	}
	took = time.Since(start)
	<-sink.done
	return sink, took
}

// TestModerateLoad measures the path's capacity with a short burst, then offers half of it
// for 60 s (3 s with -short): every frame sent must arrive exactly once, byte for byte.
func TestModerateLoad(t *testing.T) {
	dur := 60 * time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	tp := newTopo(t, nil)
	br := tp.start(t, tp.config(2))
	capacity := measureCapacity(t, tp, 20000)
	rate := capacity / 2
	n := int(rate * dur.Seconds())
	before := br.Stats().Dir(verdict.AToB)
	sink, took := soak(t, tp, rate, n)
	st := checkIdentity(t, br)
	ab := st.Dir(verdict.AToB)
	lost := int64(n) - sink.got.Load()
	t.Logf("A->B %+v", ab)
	report(t, "moderate load: capacity %.0f frames/s, %d frames at %.0f/s for %v: %d received, %d lost, %d duplicated, %d damaged, %d kernel drops",
		capacity, n, float64(n)/took.Seconds(), took.Round(time.Millisecond), sink.got.Load(), lost, sink.dup.Load(),
		sink.bad.Load(), ab.KernelDrops-before.KernelDrops)
	assert.Zero(t, lost, "frames lost")
	assert.Zero(t, sink.dup.Load(), "frames duplicated")
	assert.Zero(t, sink.bad.Load(), "frames damaged")
	assert.Equal(t, uint64(n), ab.Forwarded-before.Forwarded)
}

// BenchmarkSoak is the long form of TestModerateLoad: it offers half the measured capacity, so
// -benchtime sets the duration (-benchtime=10m soaks for ten minutes), and reports loss.
func BenchmarkSoak(b *testing.B) {
	tp := newTopo(b, nil)
	tp.start(b, tp.config(2))
	capacity := measureCapacity(b, tp, 20000)
	b.ResetTimer()
	sink, took := soak(b, tp, capacity/2, b.N)
	b.StopTimer()
	b.ReportMetric(capacity, "capacity-frames/s")
	b.ReportMetric(float64(b.N)/took.Seconds(), "frames/s")
	b.ReportMetric(float64(int64(b.N)-sink.got.Load()), "lost")
	b.ReportMetric(float64(sink.dup.Load()+sink.bad.Load()), "damaged+dup")
	if lost := int64(b.N) - sink.got.Load(); lost != 0 || sink.dup.Load() != 0 || sink.bad.Load() != 0 {
		b.Errorf("%d of %d frames lost, %d duplicated, %d damaged", lost, b.N, sink.dup.Load(), sink.bad.Load())
	}
}
