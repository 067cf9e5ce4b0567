//go:build linux

package ring

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestRXFrames injects numbered frames of varied sizes from the remote end and checks that the
// ring hands each over exactly once, in order, byte for byte, with its lengths and addressing.
func TestRXFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"V2", Config{Version: V2}},
		{"V2/vnet", Config{Version: V2, VnetHdr: true}},
		{"V2/small-ring", Config{Version: V2, FrameCount: 64}},
		{"V3", Config{Version: V3, BlockTimeout: time.Millisecond}},
		{"V3/vnet", Config{Version: V3, VnetHdr: true}},
		{"V3/small-blocks", Config{Version: V3, BlockSize: 16384, BlockCount: 8, BlockTimeout: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			local, remote := macs(t, p)
			sock := openSocket(t, p.Local, sockOpts{vnet: tc.cfg.VnetHdr})
			m := newMap(t, sock, &tc.cfg)
			gen := openPktgen(t, p.Remote)
			ifindex := p.Local.Interface(t).Index

			const n = 1000
			// The sender waits, after every 16 frames, until the reader has taken all it sent:
			// the small rings never overflow however slowly a loaded machine runs the reader.
			// It sends from one CPU so that the frames arrive in the order sent (see testenv.OneCPU).
			var taken atomic.Int64
			keep := func(f *Frame) bool {
				if !isTest(f) {
					return false
				}
				taken.Add(1)
				return true
			}
			done := make(chan error, 1)
			go func() {
				var err error
				if perr := testenv.OneCPU(func() {
					for i := range n {
						if err = gen.Send(pktgen.Frame(nil, local, remote, uint32(i), frameSize(i, 1514))); err != nil {
							return
						}
						if i%16 == 15 {
							for end := time.Now().Add(30 * time.Second); taken.Load() <= int64(i) && time.Now().Before(end); {
								time.Sleep(100 * time.Microsecond)
							}
						}
					}
				}); perr != nil {
					err = perr
				}
				done <- err
			}()
			got := collect(t, m.RX, sock, n, 60*time.Second, keep)
			require.NoError(t, <-done)
			require.Len(t, got, n, "every frame exactly once")
			for i, f := range got {
				seq, ok := pktgen.Check(f.Data)
				require.True(t, ok, "frame %d intact", i)
				require.Equal(t, uint32(i), seq, "in order")
				size := frameSize(i, 1514)
				assert.Equal(t, size, f.Len)
				assert.Equal(t, size, f.SnapLen)
				assert.False(t, f.Truncated())
				assert.Equal(t, PacketHost, f.PacketType)
				assert.Equal(t, ifindex, f.Ifindex)
				assert.Zero(t, f.Status&(StatusVLANValid|StatusCopy|StatusLosing))
				assert.WithinDuration(t, time.Now(), f.Timestamp(), time.Minute)
				if tc.cfg.VnetHdr {
					h, ok := f.VnetHdr()
					require.True(t, ok)
					assert.Equal(t, VnetHdr{}, h, "a non-TCP frame has an all-zero vnet header")
				} else {
					assert.Nil(t, f.Vnet)
				}
			}
			packets, drops := packetStats(t, sock)
			assert.Zero(t, drops)
			assert.GreaterOrEqual(t, packets, uint32(n))
		})
	}
}

// TestRXVLAN sends tagged frames and checks that the kernel's stripped tag is reported with its
// TPID, a TCI of 0 included, while Data holds the untagged frame.
func TestRXVLAN(t *testing.T) {
	tags := []struct{ tpid, tci uint16 }{
		{unix.ETH_P_8021Q, 0}, {unix.ETH_P_8021Q, 0xa00 | 100}, {unix.ETH_P_8021AD, 0}, {unix.ETH_P_8021AD, 4094},
	}
	for _, v := range []Version{V2, V3} {
		t.Run(v.String(), func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			local, remote := macs(t, p)
			sock := openSocket(t, p.Local, sockOpts{})
			cfg := Config{Version: v}
			if v == V3 {
				cfg.BlockTimeout = time.Millisecond
			}
			m := newMap(t, sock, &cfg)
			gen := openPktgen(t, p.Remote)
			for i, tag := range tags {
				frame := pktgen.Frame(nil, local, remote, uint32(i), 100)
				require.NoError(t, gen.Send(pktgen.Tag(frame, tag.tpid, tag.tci)))
			}
			got := collect(t, m.RX, sock, len(tags), 5*time.Second, isTest)
			require.Len(t, got, len(tags))
			for i, f := range got {
				seq, ok := pktgen.Check(f.Data)
				assert.True(t, ok, "frame %d is the untagged frame", i)
				assert.Equal(t, uint32(i), seq)
				assert.Equal(t, StatusVLANValid|StatusVLANTPIDValid, f.Status&(StatusVLANValid|StatusVLANTPIDValid), "tag %d flags", i)
				assert.Equal(t, tags[i].tci, f.VLANTCI, "tag %d TCI", i)
				assert.Equal(t, tags[i].tpid, f.VLANTPID, "tag %d TPID", i)
				assert.Equal(t, 100, f.Len, "the stripped tag is not counted")
			}
		})
	}
}

// TestRXDrops fills a small ring that nobody reads: the kernel drops the frames that do not
// fit, counts them in PACKET_STATISTICS and flags the next frames StatusLosing until the
// statistics are read.
func TestRXDrops(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		fit  int // frames of 500 bytes the ring holds
	}{
		{"V2", Config{Version: V2, FrameCount: 5}, 5},
		{"V3", Config{Version: V3, BlockSize: 4096, BlockCount: 2, BlockTimeout: time.Millisecond}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			local, remote := macs(t, p)
			sock := openSocket(t, p.Local, sockOpts{})
			m := newMap(t, sock, &tc.cfg)
			gen := openPktgen(t, p.Remote)

			// A second socket on the same port sees every frame the ring socket is offered, in
			// the same softirq pass: once it has all n, the kernel has offered them all to the
			// ring, however long a loaded machine delayed that work. Reading the ring before
			// then would free blocks for late frames.
			witness := openPktgen(t, p.Local)
			const n = 100
			require.NoError(t, testenv.OneCPU(func() { // in order: see testenv.OneCPU
				for i := range n {
					require.NoError(t, gen.Send(pktgen.Frame(nil, local, remote, uint32(i), 500)))
				}
			}))
			require.Len(t, witness.Collect(n, 30*time.Second, 30*time.Second), n, "every frame reached the local port")
			time.Sleep(20 * time.Millisecond) // past the V3 block timeout
			got := collect(t, m.RX, sock, n, 200*time.Millisecond, isTest)
			require.NotEmpty(t, got)
			assert.LessOrEqual(t, len(got), tc.fit, "only what fits the ring")
			for i, f := range got {
				seq, ok := pktgen.Check(f.Data)
				assert.True(t, ok)
				assert.Equal(t, uint32(i), seq, "the first frames, in order")
			}

			// The ring has room again, but the drops are not read yet: the next frame says so.
			require.NoError(t, gen.Send(pktgen.Frame(nil, local, remote, n, 500)))
			got = collect(t, m.RX, sock, 1, 2*time.Second, isTest)
			require.Len(t, got, 1)
			assert.NotZero(t, got[0].Status&StatusLosing, "losing until the statistics are read")

			packets, drops := packetStats(t, sock)
			assert.GreaterOrEqual(t, drops, uint32(n-tc.fit), "the kernel counted the drops")
			assert.GreaterOrEqual(t, packets, uint32(n+1), "tp_packets includes the drops")

			require.NoError(t, gen.Send(pktgen.Frame(nil, local, remote, n+1, 500)))
			got = collect(t, m.RX, sock, 1, 2*time.Second, isTest)
			require.Len(t, got, 1)
			assert.Zero(t, got[0].Status&StatusLosing, "reading the statistics clears it")
		})
	}
}

// TestRXChecksumNotReady captures, on the sending side, the SYN of a TCP connection the local
// stack opens over a veth with checksum offload on: the kernel has not computed its checksum
// (StatusCsumNotReady), and the vnet header says where it goes.
func TestRXChecksumNotReady(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"V2", Config{Version: V2}},
		{"V2/vnet", Config{Version: V2, VnetHdr: true}},
		{"V3", Config{Version: V3, BlockTimeout: time.Millisecond}},
		{"V3/vnet", Config{Version: V3, VnetHdr: true, BlockTimeout: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			p.Local.Run(t, "ip", "addr", "add", "198.18.0.1/24", "dev", p.Local.Name)
			p.Remote.Run(t, "ip", "addr", "add", "198.18.0.2/24", "dev", p.Remote.Name)
			sock := openSocket(t, p.Local, sockOpts{vnet: tc.cfg.VnetHdr})
			m := newMap(t, sock, &tc.cfg)

			var ln net.Listener
			require.NoError(t, p.Remote.NS.Do(func() (err error) {
				ln, err = net.Listen("tcp4", "198.18.0.2:0")
				return
			}))
			accepted := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					c.Close()
				}
				accepted <- err
			}()
			require.NoError(t, p.Local.NS.Do(func() error {
				c, err := net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
				if err == nil {
					c.Close()
				}
				return err
			}))
			require.NoError(t, <-accepted)
			ln.Close()

			syn := func(f *Frame) bool {
				d := f.Data
				return f.PacketType == PacketOutgoing && len(d) >= 54 &&
					binary.BigEndian.Uint16(d[12:]) == unix.ETH_P_IP && d[23] == unix.IPPROTO_TCP &&
					d[47]&0x12 == 0x02 // SYN without ACK
			}
			got := collect(t, m.RX, sock, 1, 5*time.Second, syn)
			require.Len(t, got, 1, "the outgoing SYN was captured")
			f := got[0]
			assert.NotZero(t, f.Status&StatusCsumNotReady, "status %v", f.Status)
			assert.Zero(t, f.Status&StatusCsumValid)
			if tc.cfg.VnetHdr {
				h, ok := f.VnetHdr()
				require.True(t, ok)
				assert.Equal(t, uint8(VnetNeedsCsum), h.Flags&VnetNeedsCsum)
				assert.Equal(t, uint16(34), h.CsumStart, "the TCP header, after Ethernet and IPv4")
				assert.Equal(t, uint16(16), h.CsumOffset, "the TCP checksum field")
				assert.Equal(t, uint8(VnetGSONone), h.GSOType)
			}
		})
	}
}

// readAhead must stay inside the ring however few slots it has, from every position.
func TestReadAheadSmallRings(t *testing.T) {
	for slots := 1; slots <= 2*prefetchAhead+1; slots++ {
		r := &RX{frameSize: 2048, mem: make([]byte, slots*2048)}
		for i := range slots {
			r.slots = append(r.slots, i*2048)
		}
		for head := range slots {
			r.head = head
			cur := r.mem[r.slots[head] : r.slots[head]+r.frameSize]
			assert.NotPanics(t, func() { r.readAhead(cur) }, "%d slots, head %d", slots, head)
		}
	}
}
