package flow_test

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/afbridge/afbridge/flow"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func parsed(t testing.TB, frame []byte) *flow.Packet {
	t.Helper()
	p := new(flow.Packet)
	require.NoError(t, flow.Parse(frame, p))
	return p
}

// udpFlow returns a parsed UDP frame of flow number i (distinct keys for distinct i).
func udpFlow(t testing.TB, i int, reversed bool) *flow.Packet {
	src, dst := "198.18.0.1", "198.19.0.1"
	sp, dp := uint16(i%60000+1024), uint16(53+i/60000)
	if reversed {
		src, dst, sp, dp = dst, src, dp, sp
	}
	return parsed(t, eth(flow.EtherTypeIPv4, nil, ip4(src, dst, flow.ProtoUDP, ip4opts{}, udp(sp, dp, []byte("q")))))
}

func newTable[V any](t testing.TB, cfg flow.Config[V]) *flow.Table[V] {
	t.Helper()
	tb, err := flow.NewTable(cfg)
	require.NoError(t, err)
	return tb
}

func TestNewTableConfig(t *testing.T) {
	for _, cfg := range []flow.Config[int]{
		{Capacity: -1},
		{Capacity: flow.MaxCapacity + 1},
		{Sweep: -1},
		{Timeouts: flow.Timeouts{UDP: -time.Second}},
	} {
		_, err := flow.NewTable(cfg)
		assert.ErrorIs(t, err, flow.ErrConfig, "%+v", cfg)
	}
	tb := newTable(t, flow.Config[int]{})
	assert.Equal(t, flow.DefaultCapacity, tb.Cap())
	tb = newTable(t, flow.Config[int]{Capacity: 1})
	assert.Equal(t, 1, tb.Cap())
}

func TestTableBothDirections(t *testing.T) {
	tb := newTable(t, flow.Config[int]{Capacity: 16})
	fwd, rev := udpFlow(t, 1, false), udpFlow(t, 1, true)
	f, created := tb.Lookup(fwd, t0)
	require.NotNil(t, f)
	assert.True(t, created)
	assert.False(t, f.Replied())
	f.State = 42
	assert.Equal(t, flow.DefaultTimeouts().Unreplied, f.Timeout())

	g, created := tb.Lookup(rev, t0.Add(time.Second))
	assert.False(t, created)
	assert.Same(t, f, g)
	assert.Equal(t, 42, g.State)
	assert.True(t, g.Replied())
	assert.Equal(t, flow.DefaultTimeouts().UDP, g.Timeout())
	assert.Equal(t, uint64(1), g.Packets(fwd.Src()))
	assert.Equal(t, uint64(1), g.Packets(rev.Src()))
	assert.Equal(t, uint64(fwd.Len), g.Bytes(fwd.Src()))
	assert.Equal(t, t0, g.First().UTC())
	assert.Equal(t, t0.Add(time.Second), g.Last().UTC())
	assert.Equal(t, fwd.Key, g.Key())
	assert.Same(t, f, tb.Get(fwd.Key))
	assert.Equal(t, 1, tb.Len())
	assert.Equal(t, flow.TableStats{Flows: 1, Created: 1}, tb.Stats())
}

func tcpSeg(t testing.TB, fromClient bool, fl flow.TCPFlags) *flow.Packet {
	if fromClient {
		return parsed(t, tcp4("198.18.0.9", 40000, "198.18.0.3", 80, fl, nil))
	}
	return parsed(t, tcp4("198.18.0.3", 80, "198.18.0.9", 40000, fl, nil))
}

func TestTableTCPStates(t *testing.T) {
	const c, s = true, false
	type seg struct {
		client bool
		flags  flow.TCPFlags
		want   flow.TCPState
	}
	S, SA, A, F, R := flow.TCPSYN, flow.TCPSYN|flow.TCPACK, flow.TCPACK, flow.TCPFIN|flow.TCPACK, flow.TCPRST
	cases := []struct {
		name string
		segs []seg
	}{
		{"handshake", []seg{{c, S, flow.TCPSynSent}, {s, SA, flow.TCPSynRecv}, {c, A, flow.TCPEstablished}, {s, A, flow.TCPEstablished}}},
		{"syn retransmitted", []seg{{c, S, flow.TCPSynSent}, {c, S, flow.TCPSynSent}}},
		{"ack from the syn side before the syn-ack is not established", []seg{{c, S, flow.TCPSynSent}, {c, A, flow.TCPSynSent}}},
		{"fin one way", []seg{{c, S, flow.TCPSynSent}, {s, SA, flow.TCPSynRecv}, {c, A, flow.TCPEstablished}, {c, F, flow.TCPClosing}, {s, A, flow.TCPClosing}}},
		{"fin both ways", []seg{{c, S, flow.TCPSynSent}, {s, SA, flow.TCPSynRecv}, {c, A, flow.TCPEstablished}, {c, F, flow.TCPClosing}, {s, F, flow.TCPClosed}, {c, A, flow.TCPClosed}}},
		{"rst", []seg{{c, S, flow.TCPSynSent}, {s, R, flow.TCPClosed}, {c, A, flow.TCPClosed}}},
		{"syn reopens a closed flow", []seg{{c, S, flow.TCPSynSent}, {s, R, flow.TCPClosed}, {c, S, flow.TCPSynSent}, {s, SA, flow.TCPSynRecv}, {c, A, flow.TCPEstablished}}},
		{"mid-stream pickup", []seg{{c, A, flow.TCPSynSent}, {c, A, flow.TCPSynSent}, {s, A, flow.TCPEstablished}}},
	}
	timeout := map[flow.TCPState]time.Duration{
		flow.TCPSynSent:     flow.DefaultTimeouts().TCPSyn,
		flow.TCPSynRecv:     flow.DefaultTimeouts().TCPSyn,
		flow.TCPEstablished: flow.DefaultTimeouts().TCPEstablished,
		flow.TCPClosing:     flow.DefaultTimeouts().TCPClosing,
		flow.TCPClosed:      flow.DefaultTimeouts().TCPClosed,
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable(t, flow.Config[struct{}]{Capacity: 4})
			for i, sg := range tc.segs {
				f, _ := tb.Lookup(tcpSeg(t, sg.client, sg.flags), t0.Add(time.Duration(i)*time.Millisecond))
				require.NotNil(t, f)
				assert.Equal(t, sg.want, f.TCPState(), "segment %d: %v", i, sg.want)
				assert.Equal(t, timeout[sg.want], f.Timeout(), "segment %d", i)
			}
			assert.Equal(t, 1, tb.Len())
		})
	}
}

func TestTableTimeoutsByProtocol(t *testing.T) {
	to := flow.Timeouts{Unreplied: 1 * time.Second, UDP: 2 * time.Second, ICMP: 3 * time.Second, Other: 4 * time.Second}
	tb := newTable(t, flow.Config[int]{Capacity: 8, Timeouts: to})
	icmpReq := parsed(t, eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", flow.ProtoICMP, ip4opts{}, icmp(8, 0, 1, 1, nil))))
	icmpRep := parsed(t, eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.2", "198.18.0.1", flow.ProtoICMP, ip4opts{}, icmp(0, 0, 1, 1, nil))))
	greA := parsed(t, eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.18.0.2", 47, ip4opts{}, nil)))
	greB := parsed(t, eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.2", "198.18.0.1", 47, ip4opts{}, nil)))
	for _, c := range []struct {
		a, b *flow.Packet
		want time.Duration
	}{
		{udpFlow(t, 1, false), udpFlow(t, 1, true), to.UDP},
		{icmpReq, icmpRep, to.ICMP},
		{greA, greB, to.Other},
	} {
		f, _ := tb.Lookup(c.a, t0)
		assert.Equal(t, to.Unreplied, f.Timeout())
		f, _ = tb.Lookup(c.b, t0)
		assert.Equal(t, c.want, f.Timeout())
	}
	assert.Equal(t, flow.DefaultTimeouts().TCPSyn, func() time.Duration {
		f, _ := tb.Lookup(tcpSeg(t, true, flow.TCPSYN), t0)
		return f.Timeout()
	}())
}

// reasons records OnRemove calls.
type reasons struct {
	keys []flow.Key
	why  []flow.Reason
	vals []int
}

func (r *reasons) onRemove(f *flow.Flow[int], why flow.Reason) {
	r.keys = append(r.keys, f.Key())
	r.why = append(r.why, why)
	r.vals = append(r.vals, f.State)
}

func TestTableExpire(t *testing.T) {
	var r reasons
	to := flow.Timeouts{Unreplied: 10 * time.Second, UDP: 100 * time.Second}
	tb := newTable(t, flow.Config[int]{Capacity: 64, Timeouts: to, Sweep: 8, OnRemove: r.onRemove})
	// 20 one-way flows at t0, one two-way flow at t0.
	for i := range 20 {
		f, _ := tb.Lookup(udpFlow(t, i, false), t0)
		f.State = i
	}
	tb.Lookup(udpFlow(t, 100, false), t0)
	tb.Lookup(udpFlow(t, 100, true), t0)

	assert.Zero(t, tb.Expire(t0.Add(10*time.Second)), "a flow expires after, not at, its timeout")
	// Sweep bounds the work: 8 per call.
	late := t0.Add(11 * time.Second)
	assert.Equal(t, 8, tb.Expire(late))
	assert.Equal(t, 8, tb.Expire(late))
	n := tb.Expire(late)
	for n > 0 {
		n = tb.Expire(late)
	}
	assert.Equal(t, 1, tb.Len(), "the two-way flow has the longer timeout")
	require.Len(t, r.why, 20)
	for i, why := range r.why {
		assert.Equal(t, flow.Expired, why)
		assert.Equal(t, i, r.vals[i], "OnRemove sees the flow's State; longest idle first")
	}
	assert.NotNil(t, tb.Get(udpFlow(t, 100, false).Key))
	assert.Equal(t, flow.TableStats{Flows: 1, Created: 21, Expired: 20}, tb.Stats())
}

// TestTableExpireSweepsPastLongTimeouts checks that a flow with a short timeout behind one with
// a long timeout in idle order is still found by Expire.
func TestTableExpireSweepsPastLongTimeouts(t *testing.T) {
	tb := newTable(t, flow.Config[int]{Capacity: 32, Sweep: 4, Timeouts: flow.Timeouts{TCPClosed: time.Second}})
	tb.Lookup(udpFlow(t, 1, false), t0) // unreplied: 30 s, idle longest
	tb.Lookup(tcpSeg(t, true, flow.TCPRST), t0.Add(time.Millisecond))
	removed := 0
	for range 32 / 4 {
		removed += tb.Expire(t0.Add(2 * time.Second))
	}
	assert.Equal(t, 1, removed)
	assert.Nil(t, tb.Get(tcpSeg(t, true, 0).Key))
	assert.NotNil(t, tb.Get(udpFlow(t, 1, false).Key))
}

func TestTableLookupExpires(t *testing.T) {
	var r reasons
	tb := newTable(t, flow.Config[int]{Capacity: 4, OnRemove: r.onRemove})
	p := udpFlow(t, 1, false)
	f, _ := tb.Lookup(p, t0)
	f.State = 7
	f.Drop()
	// No Expire call: the lookup itself sees the flow is past its timeout.
	g, created := tb.Lookup(p, t0.Add(flow.DefaultTimeouts().Unreplied+time.Nanosecond))
	assert.True(t, created)
	assert.Zero(t, g.State, "a new flow starts with the zero State")
	assert.False(t, g.Dropped(), "a flow drop lasts until the flow expires")
	assert.Equal(t, []flow.Reason{flow.Expired}, r.why)
	assert.Equal(t, []int{7}, r.vals)
	assert.Equal(t, flow.TableStats{Flows: 1, Created: 2, Expired: 1}, tb.Stats())
}

func TestTableFlowDrop(t *testing.T) {
	tb := newTable(t, flow.Config[int]{Capacity: 4})
	c := tcpSeg(t, true, flow.TCPSYN)
	tb.Lookup(c, t0)
	tb.Lookup(tcpSeg(t, false, flow.TCPSYN|flow.TCPACK), t0)
	f, _ := tb.Lookup(tcpSeg(t, true, flow.TCPACK), t0)
	f.Drop()
	for i, p := range []*flow.Packet{
		tcpSeg(t, true, flow.TCPACK|flow.TCPPSH), // more data
		tcpSeg(t, true, flow.TCPACK|flow.TCPPSH), // the retransmission
		tcpSeg(t, false, flow.TCPACK),            // the other direction
		tcpSeg(t, true, flow.TCPFIN|flow.TCPACK), // teardown
		tcpSeg(t, false, flow.TCPRST),            // reset
		tcpSeg(t, true, flow.TCPSYN),             // a new SYN on the same ports, within the timeout
	} {
		g, created := tb.Lookup(p, t0.Add(time.Duration(i)*time.Second))
		assert.False(t, created, "frame %d", i)
		assert.True(t, g.Dropped(), "frame %d", i)
	}
	other, _ := tb.Lookup(udpFlow(t, 1, false), t0)
	assert.False(t, other.Dropped())
	// Removal withdraws it.
	tb.Remove(tb.Get(c.Key))
	g, created := tb.Lookup(c, t0.Add(10*time.Second))
	assert.True(t, created)
	assert.False(t, g.Dropped())
}

func TestTableEvict(t *testing.T) {
	var r reasons
	tb := newTable(t, flow.Config[int]{Capacity: 4, OnRemove: r.onRemove})
	for i := range 4 {
		f, _ := tb.Lookup(udpFlow(t, i, false), t0.Add(time.Duration(i)*time.Second))
		f.State = i
	}
	// Flow 0 is seen again: flow 1 is now the one idle longest.
	tb.Lookup(udpFlow(t, 0, true), t0.Add(5*time.Second))
	f, created := tb.Lookup(udpFlow(t, 4, false), t0.Add(6*time.Second))
	require.NotNil(t, f)
	assert.True(t, created)
	assert.Equal(t, []flow.Reason{flow.Evicted}, r.why)
	assert.Equal(t, []int{1}, r.vals)
	assert.Nil(t, tb.Get(udpFlow(t, 1, false).Key))
	for _, i := range []int{0, 2, 3, 4} {
		assert.NotNil(t, tb.Get(udpFlow(t, i, false).Key), "flow %d", i)
	}
	// When the longest idle has expired anyway, it counts as expired.
	tb.Lookup(udpFlow(t, 5, false), t0.Add(time.Hour))
	assert.Equal(t, flow.Expired, r.why[1])
	assert.Equal(t, flow.TableStats{Flows: 4, Created: 6, Evicted: 1, Expired: 1, Full: 2}, tb.Stats())

	tb.Clear()
	assert.Zero(t, tb.Len())
	st := tb.Stats()
	assert.Equal(t, uint64(4), st.Removed)
	assert.Equal(t, st.Created, uint64(st.Flows)+st.Expired+st.Evicted+st.Removed)
}

func TestTableNoEvict(t *testing.T) {
	tb := newTable(t, flow.Config[int]{Capacity: 2, NoEvict: true})
	for i := range 2 {
		f, _ := tb.Lookup(udpFlow(t, i, false), t0)
		f.Drop()
	}
	f, created := tb.Lookup(udpFlow(t, 2, false), t0)
	assert.Nil(t, f)
	assert.False(t, created)
	// The dropped flows stay dropped under the flood.
	f, _ = tb.Lookup(udpFlow(t, 0, true), t0)
	assert.True(t, f.Dropped())
	assert.Equal(t, flow.TableStats{Flows: 2, Created: 2, Full: 1}, tb.Stats())
	// An expired flow still makes room.
	f, created = tb.Lookup(udpFlow(t, 2, false), t0.Add(time.Hour))
	assert.NotNil(t, f)
	assert.True(t, created)
}

// runModel applies a sequence of operations to a table and to a map and checks they agree;
// it exercises the index's backward-shift deletion under collisions.
func runModel(t *testing.T, capacity int, ops []byte) {
	tb := newTable(t, flow.Config[int]{Capacity: capacity, Sweep: 3})
	model := map[flow.Key]int{}
	last := map[flow.Key]int{} // lookup sequence number: the LRU order
	now := t0
	pkts := make([]*flow.Packet, 64)
	for i := range pkts {
		pkts[i] = udpFlow(t, i, i%2 == 1)
	}
	seq := 0
	for _, op := range ops {
		p := pkts[op&63]
		switch op >> 6 {
		case 0, 1:
			f, created := tb.Lookup(p, now)
			require.NotNil(t, f)
			_, had := model[p.Key]
			require.Equal(t, !had, created)
			if created {
				f.State = int(op)
				if len(model) == capacity {
					// The model evicts the least recently seen.
					var oldest flow.Key
					first := true
					for k := range model {
						if first || last[k] < last[oldest] {
							oldest, first = k, false
						}
					}
					delete(model, oldest)
				}
				model[p.Key] = int(op)
			}
			last[p.Key] = seq
			seq++
		case 2:
			if f := tb.Get(p.Key); f != nil {
				tb.Remove(f)
				delete(model, p.Key)
			}
		case 3:
			now = now.Add(time.Millisecond) // far below any timeout
			tb.Expire(now)
		}
		require.Equal(t, len(model), tb.Len())
	}
	for k, v := range model {
		f := tb.Get(k)
		require.NotNil(t, f, "%v", k)
		require.Equal(t, v, f.State)
	}
	st := tb.Stats()
	require.Equal(t, st.Created, uint64(st.Flows)+st.Expired+st.Evicted+st.Removed)
}

func TestTableModel(t *testing.T) {
	for _, capacity := range []int{1, 3, 16, 64} {
		t.Run(fmt.Sprint(capacity), func(t *testing.T) {
			ops := make([]byte, 5000)
			x := uint32(capacity)
			for i := range ops {
				x = x*1664525 + 1013904223
				ops[i] = byte(x >> 24)
			}
			runModel(t, capacity, ops)
		})
	}
}

func FuzzTable(f *testing.F) {
	f.Add(uint8(3), []byte{0, 1, 2, 3, 4, 130, 129, 192, 0, 5})
	f.Fuzz(func(t *testing.T, capacity uint8, ops []byte) {
		runModel(t, int(capacity%70)+1, ops)
	})
}

// churnFrames returns n parsed frames of distinct flows.
func churnFrames(t testing.TB, n int) []*flow.Packet {
	ps := make([]*flow.Packet, n)
	for i := range ps {
		b := eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.19.0.1", flow.ProtoUDP, ip4opts{}, udp(0, 0, nil)))
		binary.BigEndian.PutUint32(b[30:], uint32(0xc6130000+i/65536)) // 198.19.x.x
		binary.BigEndian.PutUint16(b[34:], uint16(i))
		ps[i] = parsed(t, b)
	}
	return ps
}

func TestTableAllocs(t *testing.T) {
	tb := newTable(t, flow.Config[[64]byte]{Capacity: 256, OnRemove: func(*flow.Flow[[64]byte], flow.Reason) {}})
	ps := churnFrames(t, 1024) // 4× the capacity: every new flow evicts one
	now := t0
	i := 0
	allocs := testing.AllocsPerRun(2000, func() {
		f, _ := tb.Lookup(ps[i%len(ps)], now)
		f.State[0]++
		i++
		now = now.Add(time.Microsecond)
		if i%64 == 0 {
			tb.Expire(now)
		}
	})
	assert.Zero(t, allocs)
	assert.NotZero(t, tb.Stats().Evicted)
}

func BenchmarkTable(b *testing.B) {
	for _, bc := range []struct {
		name     string
		capacity int
		flows    int
	}{
		{"hit-1k", 65536, 1024},
		{"hit-64k", 65536, 65536},
		{"evict-churn", 4096, 65536},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tb := newTable(b, flow.Config[uint64]{Capacity: bc.capacity})
			ps := churnFrames(b, bc.flows)
			now := t0
			i := 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				f, _ := tb.Lookup(ps[i%len(ps)], now)
				f.State++
				i++
				if i&1023 == 0 {
					now = now.Add(time.Millisecond)
					tb.Expire(now)
				}
			}
			st := tb.Stats()
			b.ReportMetric(float64(st.Evicted)/float64(b.N), "evictions/op")
		})
	}
}

func TestTableClientAndEstablished(t *testing.T) {
	client := tcpSeg(t, true, flow.TCPSYN).Src()
	cases := []struct {
		name        string
		first       *flow.Packet
		then        *flow.Packet
		established bool
	}{
		{"syn", tcpSeg(t, true, flow.TCPSYN), tcpSeg(t, false, flow.TCPSYN|flow.TCPACK), false},
		{"picked up at the syn-ack", tcpSeg(t, false, flow.TCPSYN|flow.TCPACK), tcpSeg(t, true, flow.TCPACK), true},
		{"mid-stream, client first", tcpSeg(t, true, flow.TCPACK), tcpSeg(t, false, flow.TCPACK), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := newTable(t, flow.Config[int]{Capacity: 2})
			tb.Lookup(c.first, t0)
			f, _ := tb.Lookup(c.then, t0)
			assert.Equal(t, client, f.Client())
			assert.Equal(t, c.established, f.Established())
		})
	}
	tb := newTable(t, flow.Config[int]{Capacity: 2})
	f, _ := tb.Lookup(udpFlow(t, 1, true), t0)
	assert.Equal(t, udpFlow(t, 1, true).Src(), f.Client())
	assert.False(t, f.Established())
	f, _ = tb.Lookup(udpFlow(t, 1, false), t0)
	assert.Equal(t, udpFlow(t, 1, true).Src(), f.Client(), "the first sender stays the client")
	assert.True(t, f.Established())
}

func TestTableNotIP(t *testing.T) {
	tb := newTable(t, flow.Config[int]{Capacity: 2})
	var p flow.Packet
	require.ErrorIs(t, flow.Parse(eth(0x0806, nil, make([]byte, 28)), &p), flow.ErrNotIP)
	f, created := tb.Lookup(&p, t0)
	assert.Nil(t, f)
	assert.False(t, created)
	assert.Zero(t, tb.Stats())
}

func TestTableAll(t *testing.T) {
	tb := newTable(t, flow.Config[int]{Capacity: 8})
	for _, i := range []int{3, 1, 2, 1} {
		f, _ := tb.Lookup(udpFlow(t, i, false), t0)
		f.State = i
	}
	var got []int
	for f := range tb.All() {
		got = append(got, f.State)
	}
	assert.Equal(t, []int{3, 2, 1}, got, "idle longest first")
	got = got[:0]
	for f := range tb.All() {
		got = append(got, f.State)
		break
	}
	assert.Equal(t, []int{3}, got)
}

func TestTableDefaultSweep(t *testing.T) {
	tb := newTable(t, flow.Config[int]{Capacity: 1024})
	for i := range 300 {
		tb.Lookup(udpFlow(t, i, false), t0)
	}
	assert.Equal(t, flow.DefaultSweep, tb.Expire(t0.Add(time.Hour)))
	assert.Equal(t, 300-flow.DefaultSweep, tb.Expire(t0.Add(time.Hour)))
}

// TestDefaultTimeouts keeps the numbers in DefaultTimeouts' doc comment true.
func TestDefaultTimeouts(t *testing.T) {
	assert.Equal(t, flow.Timeouts{
		TCPSyn: 60 * time.Second, TCPEstablished: 600 * time.Second, TCPClosing: 60 * time.Second,
		TCPClosed: 10 * time.Second, Unreplied: 30 * time.Second,
		UDP: 300 * time.Second, ICMP: 300 * time.Second, Other: 300 * time.Second,
	}, flow.DefaultTimeouts())
}

// TestFlowSize keeps Config.Capacity's memory estimate true.
func TestFlowSize(t *testing.T) {
	assert.LessOrEqual(t, unsafe.Sizeof(flow.Flow[struct{}]{}), uintptr(120))
}

func TestTableOnRemovePanics(t *testing.T) {
	panicky := true
	var seen []flow.Key
	var tb *flow.Table[int]
	tb = newTable(t, flow.Config[int]{Capacity: 2, OnRemove: func(f *flow.Flow[int], why flow.Reason) {
		assert.Nil(t, tb.Get(f.Key()), "the flow is out of the table when OnRemove runs")
		seen = append(seen, f.Key())
		if panicky {
			panic("user bug")
		}
	}})
	tb.Lookup(udpFlow(t, 1, false), t0)
	tb.Lookup(udpFlow(t, 2, false), t0)
	assert.Panics(t, func() { tb.Lookup(udpFlow(t, 3, false), t0) })
	panicky = false
	// The table is intact: the panicking eviction completed, and flow 3 can still be added.
	assert.Equal(t, 1, tb.Len())
	f, created := tb.Lookup(udpFlow(t, 3, false), t0)
	require.NotNil(t, f)
	assert.True(t, created)
	assert.NotNil(t, tb.Get(udpFlow(t, 2, false).Key))
	assert.Equal(t, 2, tb.Len())
	tb.Lookup(udpFlow(t, 4, false), t0)
	assert.Len(t, seen, 2)
	st := tb.Stats()
	assert.Equal(t, st.Created, uint64(st.Flows)+st.Expired+st.Evicted+st.Removed)
}

func TestNames(t *testing.T) {
	assert.Equal(t, []string{"expired", "evicted", "removed", "flow.Reason(9)"},
		[]string{flow.Expired.String(), flow.Evicted.String(), flow.Removed.String(), flow.Reason(9).String()})
	var got []string
	for s := flow.TCPNone; s <= flow.TCPClosed+1; s++ {
		got = append(got, s.String())
	}
	assert.Equal(t, []string{"none", "syn-sent", "syn-recv", "established", "closing", "closed", "flow.TCPState(6)"}, got)
}

// TestTableDroppedFlowKeepsItsTimeout: a RST (or FIN) of a dropped flow is dropped too, so it
// must not shorten the flow drop to the closed timeout.
func TestTableDroppedFlowKeepsItsTimeout(t *testing.T) {
	tb := newTable(t, flow.Config[int]{Capacity: 4})
	tb.Lookup(tcpSeg(t, true, flow.TCPSYN), t0)
	tb.Lookup(tcpSeg(t, false, flow.TCPSYN|flow.TCPACK), t0)
	f, _ := tb.Lookup(tcpSeg(t, true, flow.TCPACK), t0)
	require.Equal(t, flow.TCPEstablished, f.TCPState())
	f.Drop()
	f, _ = tb.Lookup(tcpSeg(t, true, flow.TCPRST), t0.Add(time.Second))
	assert.Equal(t, flow.TCPEstablished, f.TCPState())
	assert.Equal(t, flow.DefaultTimeouts().TCPEstablished, f.Timeout())
	// Long after the closed timeout, the retransmission still finds the flow dropped.
	f, created := tb.Lookup(tcpSeg(t, true, flow.TCPACK|flow.TCPPSH), t0.Add(time.Minute))
	assert.False(t, created)
	assert.True(t, f.Dropped())
	assert.Equal(t, uint64(4), f.Packets(tcpSeg(t, true, 0).Src()), "dropped frames still count")
}

// BenchmarkParseLookup is the per-frame cost of a stateful verdict's bookkeeping: Parse, then
// Lookup, for frames of 4,096 flows arriving in a shuffled order.
func BenchmarkParseLookup(b *testing.B) {
	const flows = 4096
	tb := newTable(b, flow.Config[uint64]{Capacity: 2 * flows})
	frames := make([][]byte, flows)
	for i := range frames {
		f := eth(flow.EtherTypeIPv4, nil, ip4("198.18.0.1", "198.19.0.1", flow.ProtoTCP, ip4opts{}, tcp(uint16(i+1024), 80, 0, 0, flow.TCPACK, make([]byte, 100))))
		frames[i] = f
	}
	rng := uint32(1)
	for i := len(frames) - 1; i > 0; i-- {
		rng = rng*1664525 + 1013904223
		j := int(rng>>8) % (i + 1)
		frames[i], frames[j] = frames[j], frames[i]
	}
	var p flow.Packet
	now := t0
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if err := flow.Parse(frames[i%flows], &p); err != nil {
			b.Fatal(err)
		}
		f, _ := tb.Lookup(&p, now)
		f.State += uint64(len(p.PayloadBytes(frames[i%flows])))
		i++
	}
}

// TestTableStatsFromAnotherGoroutine: Stats may be read while the owner works (run with -race).
func TestTableStatsFromAnotherGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	tb := newTable(t, flow.Config[int]{Capacity: 64})
	ps := churnFrames(t, 256)
	done := make(chan struct{})
	read := make(chan flow.TableStats)
	go func() {
		var last flow.TableStats
		for {
			select {
			case <-done:
				read <- last
				return
			default:
				last = tb.Stats()
			}
		}
	}()
	for i := range 5000 {
		tb.Lookup(ps[i%len(ps)], t0)
	}
	close(done)
	last := <-read
	assert.LessOrEqual(t, last.Created, uint64(5000))
	st := tb.Stats()
	assert.Equal(t, 64, st.Flows)
	assert.Equal(t, st.Created, uint64(st.Flows)+st.Evicted)
}
