//go:build linux

package fanout_test

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/internal/netns"
	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sock is a plain AF_PACKET socket wrapped in an *os.File, which gives it the SyscallConn that
// fanout.Join takes.
type sock struct {
	*os.File
	fd int
}

// openSock opens a SOCK_RAW packet socket in ns and binds it to ifindex with proto (host byte
// order; 0 leaves it bound but not running).
func openSock(t *testing.T, ns *netns.NS, ifindex int, proto uint16) *sock {
	t.Helper()
	var s *sock
	require.NoError(t, ns.Do(func() error {
		// Protocol 0 at creation: nothing is captured before the bind names the interface.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return os.NewSyscallError("socket", err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifindex}); err != nil {
			unix.Close(fd)
			return os.NewSyscallError("bind", err)
		}
		s = &sock{File: os.NewFile(uintptr(fd), "packet"), fd: fd}
		return nil
	}))
	t.Cleanup(func() { s.Close() })
	return s
}

// join joins s inside ns, so that the package's diagnostics see the socket's namespace.
func join(t *testing.T, ns *netns.NS, s *sock, g fanout.Group) (fanout.Group, error) {
	t.Helper()
	var got fanout.Group
	var jerr error
	require.NoError(t, ns.Do(func() error {
		got, jerr = fanout.Join(s, g)
		return nil
	}))
	return got, jerr
}

// drain reads frames from s until none arrives for idle and returns the tags of the incoming
// test frames (udpFrame) it saw, and how many outgoing frames went by.
func (s *sock) drain(t *testing.T, idle time.Duration) (tags []uint32, outgoing int) {
	t.Helper()
	buf := make([]byte, 2048)
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	end := time.Now().Add(10 * time.Second)
	for time.Now().Before(end) {
		n, err := unix.Poll(fds, int(idle/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		require.NoError(t, err)
		if n == 0 {
			break
		}
		n, from, err := unix.Recvfrom(s.fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENETDOWN) {
			continue // ENETDOWN: the socket's pending error after its link went down, reported once
		}
		require.NoError(t, err)
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			outgoing++
			continue
		}
		if tag, ok := frameTag(buf[:n]); ok {
			tags = append(tags, tag)
		}
	}
	return tags, outgoing
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// otherHost is the destination MAC of test frames: nobody's, so the receiving stack drops them
// as PACKET_OTHERHOST at once and never answers.
var otherHost = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}

var magic = [4]byte{'A', 'F', 'B', 'F'}

// udpFrame builds an Ethernet/IPv4/UDP frame whose payload carries magic and tag.
func udpFrame(src net.HardwareAddr, sip, dip netip.Addr, sport, dport uint16, tag uint32) []byte {
	b := make([]byte, 0, 14+20+8+8)
	b = append(b, otherHost...)
	b = append(b, src...)
	b = binary.BigEndian.AppendUint16(b, unix.ETH_P_IP)
	ip := len(b)
	b = append(b, 0x45, 0)
	b = binary.BigEndian.AppendUint16(b, 20+8+8)
	b = append(b, 0, 0, 0x40, 0, 64, unix.IPPROTO_UDP, 0, 0) // id, DF, ttl, proto, checksum
	b = append(b, sip.AsSlice()...)
	b = append(b, dip.AsSlice()...)
	binary.BigEndian.PutUint16(b[ip+10:], ipChecksum(b[ip:ip+20]))
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, 8+8)
	b = append(b, 0, 0) // no UDP checksum
	b = append(b, magic[:]...)
	return binary.BigEndian.AppendUint32(b, tag)
}

func frameTag(f []byte) (uint32, bool) {
	if len(f) < 50 || binary.BigEndian.Uint16(f[12:]) != unix.ETH_P_IP || f[23] != unix.IPPROTO_UDP ||
		[4]byte(f[42:46]) != magic {
		return 0, false
	}
	return binary.BigEndian.Uint32(f[46:]), true
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// flow is one UDP flow between addresses of 198.18.0.0/15 (RFC 2544's benchmarking range).
type flow struct {
	sip, dip     netip.Addr
	sport, dport uint16
}

func flows(n int) []flow {
	out := make([]flow, n)
	for i := range out {
		out[i] = flow{
			sip:   netip.AddrFrom4([4]byte{198, 18, byte(i / 200), byte(1 + i%200)}),
			dip:   netip.AddrFrom4([4]byte{198, 19, byte(i * 7 % 256), byte(1 + i*13%250)}),
			sport: uint16(1024 + i*37%50000),
			dport: uint16(2000 + i*11%3000),
		}
	}
	return out
}

// frame returns the flow's frame in direction dir (0 forward, 1 reply: addresses and ports
// swapped), tagged i<<1|dir.
func (f flow) frame(src net.HardwareAddr, i, dir int) []byte {
	tag := uint32(i<<1 | dir)
	if dir == 0 {
		return udpFrame(src, f.sip, f.dip, f.sport, f.dport, tag)
	}
	return udpFrame(src, f.dip, f.sip, f.dport, f.sport, tag)
}

// fixture is a veth pair with a sender on the remote end.
type fixture struct {
	testenv.Pair
	local, remote *net.Interface
	tx            *pktgen.Conn
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	p := testenv.NewPair(t, nil)
	fx := &fixture{Pair: p, local: p.Local.Interface(t), remote: p.Remote.Interface(t)}
	require.NoError(t, p.Remote.NS.Do(func() (err error) { fx.tx, err = pktgen.Open(fx.remote.Index); return }))
	t.Cleanup(func() { fx.tx.Close() })
	return fx
}

// members opens n sockets on the local end, bound to ETH_P_ALL.
func (fx *fixture) members(t *testing.T, n int) []*sock {
	out := make([]*sock, n)
	for i := range out {
		out[i] = openSock(t, fx.Local.NS, fx.local.Index, unix.ETH_P_ALL)
	}
	return out
}

func (fx *fixture) send(t *testing.T, frames ...[]byte) {
	t.Helper()
	for _, f := range frames {
		require.NoError(t, fx.tx.Send(f))
	}
}

// sendN sends n frames of distinct flows and tags 0..n-1.
func (fx *fixture) sendN(t *testing.T, n int) {
	t.Helper()
	for i, f := range flows(n) {
		fx.send(t, udpFrame(fx.remote.HardwareAddr, f.sip, f.dip, f.sport, f.dport, uint32(i)))
	}
}

// counts drains every socket and returns how many test frames each received.
func counts(t *testing.T, socks []*sock) []int {
	t.Helper()
	out := make([]int, len(socks))
	for i, s := range socks {
		tags, _ := s.drain(t, 200*time.Millisecond)
		out[i] = len(tags)
	}
	return out
}

func TestHashSpreadsFlowsSymmetrically(t *testing.T) {
	fx := newFixture(t)
	socks := fx.members(t, 4)
	for i, s := range socks {
		g, err := join(t, fx.Local.NS, s, fanout.Group{ID: 42, Mode: fanout.Hash})
		require.NoError(t, err, "member %d", i)
		assert.Equal(t, fanout.Group{ID: 42, Mode: fanout.Hash}, g)
	}

	const nflows = 200
	fl := flows(nflows)
	for i, f := range fl {
		fx.send(t, f.frame(fx.remote.HardwareAddr, i, 0), f.frame(fx.remote.HardwareAddr, i, 1))
	}

	member := map[uint32]int{} // tag -> member index (join order)
	perMember := make([]int, len(socks))
	for m, s := range socks {
		tags, _ := s.drain(t, 300*time.Millisecond)
		perMember[m] = len(tags)
		for _, tag := range tags {
			prev, dup := member[tag]
			assert.False(t, dup, "frame %#x delivered to members %d and %d", tag, prev, m)
			member[tag] = m
		}
	}
	require.Len(t, member, 2*nflows, "every frame arrives exactly once in the group")
	for m, n := range perMember {
		assert.NotZero(t, n, "member %d got no flow: %v", m, perMember)
	}
	for i := range nflows {
		fwd, rev := member[uint32(i<<1)], member[uint32(i<<1|1)]
		assert.Equal(t, fwd, rev, "flow %d: forward on member %d, reply on member %d", i, fwd, rev)
	}
	t.Logf("frames per member: %v", perMember)
}

func TestLBSpreadsEvenly(t *testing.T) {
	fx := newFixture(t)
	socks := fx.members(t, 4)
	for _, s := range socks {
		_, err := join(t, fx.Local.NS, s, fanout.Group{ID: 43, Mode: fanout.LB})
		require.NoError(t, err)
	}
	const n = 400
	fx.sendN(t, n)
	got := counts(t, socks)
	total, lo, hi := 0, n, 0
	for _, c := range got {
		total += c
		lo, hi = min(lo, c), max(hi, c)
	}
	assert.Equal(t, n, total)
	// Round robin deals exactly n/4 each; a stray frame of the namespace could shift one.
	assert.LessOrEqual(t, hi-lo, 2, "per member: %v", got)
}

func TestUniqueIDCreatesDistinctGroups(t *testing.T) {
	fx := newFixture(t)
	socks := fx.members(t, 3)

	g1, err := join(t, fx.Local.NS, socks[0], fanout.Group{Flags: fanout.FlagUniqueID | fanout.FlagDefrag})
	require.NoError(t, err)
	g2, err := join(t, fx.Local.NS, socks[1], fanout.Group{Flags: fanout.FlagUniqueID | fanout.FlagDefrag})
	require.NoError(t, err)
	assert.NotEqual(t, g1.ID, g2.ID, "two kernel-chosen ids")
	assert.Equal(t, fanout.FlagDefrag, g1.Flags, "the kernel keeps no unique-id flag in the group")

	for i, want := range []fanout.Group{g1, g2} {
		got, ok, err := fanout.GroupOf(socks[i])
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, want, got)
	}
	_, ok, err := fanout.GroupOf(socks[2])
	require.NoError(t, err)
	assert.False(t, ok, "a socket in no group")

	const n = 50
	fx.sendN(t, n)
	assert.Equal(t, []int{n, n, n}, counts(t, socks), "each group of one gets every frame, and so does a socket in no group")

	// Another socket joins the first group by its id, without the flag.
	g3, err := join(t, fx.Local.NS, socks[2], fanout.Group{ID: g1.ID, Flags: fanout.FlagDefrag})
	require.NoError(t, err)
	assert.Equal(t, g1, g3)
	fx.sendN(t, n)
	got := counts(t, socks)
	assert.Equal(t, n, got[0]+got[2], "the first group's two members share the frames: %v", got)
	assert.Equal(t, n, got[1])
}

func TestGroupZeroIsTellable(t *testing.T) {
	// getsockopt answers 0 for "no group" and for group 0 in mode hash without flags alike.
	fx := newFixture(t)
	s := fx.members(t, 2)
	_, err := join(t, fx.Local.NS, s[0], fanout.Group{})
	require.NoError(t, err)
	require.NoError(t, fx.Local.NS.Do(func() error {
		g, ok, err := fanout.GroupOf(s[0])
		require.NoError(t, err)
		assert.True(t, ok, "sock_diag tells group 0 from no group")
		assert.Equal(t, fanout.Group{}, g)
		return nil
	}))

	// From outside the socket's namespace sock_diag cannot see it: Join still knows it joined,
	// GroupOf cannot tell.
	g, err := fanout.Join(s[1], fanout.Group{})
	require.NoError(t, err)
	assert.Equal(t, fanout.Group{}, g)
	_, ok, err := fanout.GroupOf(s[1])
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestJoinRefusalIsExplained(t *testing.T) {
	fx := newFixture(t)
	afb2Link, _ := testenv.Veth(t, fx.Local.NS, "afb2", fx.Remote.NS, "afb3", nil)
	afb2 := afb2Link.Interface(t)

	existing := fanout.Group{ID: 7, Mode: fanout.Hash, Flags: fanout.FlagDefrag}
	_, err := join(t, fx.Local.NS, fx.members(t, 1)[0], existing)
	require.NoError(t, err)

	tests := []struct {
		name    string
		ifindex int
		proto   uint16
		g       fanout.Group
		outside bool // join from a thread outside the socket's namespace
		want    []string
	}{
		{
			name: "mode", ifindex: fx.local.Index, proto: unix.ETH_P_ALL,
			g:    fanout.Group{ID: 7, Mode: fanout.LB, Flags: fanout.FlagDefrag},
			want: []string{"group 7 already exists with 1 member(s), mode hash", "its mode is hash, not lb"},
		},
		{
			name: "flags", ifindex: fx.local.Index, proto: unix.ETH_P_ALL,
			g:    fanout.Group{ID: 7, Mode: fanout.Hash},
			want: []string{"the same as this socket's, so its flags or member limit must differ"},
		},
		{
			name: "member limit", ifindex: fx.local.Index, proto: unix.ETH_P_ALL,
			g:    fanout.Group{ID: 7, Mode: fanout.Hash, Flags: fanout.FlagDefrag, MaxMembers: 8},
			want: []string{"its flags or member limit must differ"},
		},
		{
			name: "interface", ifindex: afb2.Index, proto: unix.ETH_P_ALL,
			g:    existing,
			want: []string{"bound to ifindex " + itoa(fx.local.Index), "this socket is bound to ifindex " + itoa(afb2.Index) + " instead"},
		},
		{
			name: "protocol", ifindex: fx.local.Index, proto: unix.ETH_P_IP,
			g:    existing,
			want: []string{"protocol 0x0003", "this socket is bound to protocol 0x0800 instead"},
		},
		{
			name: "not running", ifindex: fx.local.Index, proto: 0,
			g:    existing,
			want: []string{"this socket is bound with protocol 0", "bind it with a protocol"},
		},
		{
			name: "other namespace", ifindex: fx.local.Index, proto: unix.ETH_P_ALL, outside: true,
			g: fanout.Group{ID: 7, Mode: fanout.LB, Flags: fanout.FlagDefrag},
			want: []string{"a group with this id already exists with a different mode, flags, interface, protocol or member limit",
				"use another ID or the same settings"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openSock(t, fx.Local.NS, tt.ifindex, tt.proto)
			var err error
			if tt.outside {
				_, err = fanout.Join(s, tt.g)
			} else {
				_, err = join(t, fx.Local.NS, s, tt.g)
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, unix.EINVAL)
			var se *os.SyscallError
			assert.ErrorAs(t, err, &se)
			var fe *fanout.Error
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.g, fe.Group)
			assert.Equal(t, tt.ifindex, fe.Ifindex)
			assert.Contains(t, err.Error(), "fanout: join "+tt.g.String()+" on ifindex "+itoa(tt.ifindex)+": setsockopt: invalid argument: ")
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			t.Log(err)
		})
	}
}

func TestJoinTwiceIsExplained(t *testing.T) {
	fx := newFixture(t)
	s := fx.members(t, 1)[0]
	g := fanout.Group{ID: 9, Mode: fanout.CPU}
	_, err := join(t, fx.Local.NS, s, g)
	require.NoError(t, err)
	_, err = join(t, fx.Local.NS, s, fanout.Group{ID: 10})
	require.Error(t, err)
	assert.ErrorIs(t, err, unix.EALREADY)
	assert.Contains(t, err.Error(), "the socket is already in group 9 (mode cpu, flags none)")
	assert.Contains(t, err.Error(), "open a new socket")
}

func TestJoinValidates(t *testing.T) {
	tests := []struct {
		name string
		g    fanout.Group
		want string
	}{
		{"unknown mode", fanout.Group{ID: 1, Mode: 8}, "unknown mode 8"},
		{"unknown flag", fanout.Group{ID: 1, Flags: 0x0100}, "unknown flag bits 0x100"},
		{"rollover twice", fanout.Group{ID: 1, Mode: fanout.Rollover, Flags: fanout.FlagRollover}, "cannot be combined with the rollover mode"},
		{"unique id with id", fanout.Group{ID: 1, Flags: fanout.FlagUniqueID}, "needs ID 0"},
		{"program without cbpf", fanout.Group{ID: 1, Program: []bpf.Instruction{bpf.RetConstant{Val: 1}}}, "needs mode cbpf, not hash"},
		{"fd without ebpf", fanout.Group{ID: 1, Mode: fanout.CBPF, ProgramFD: 5}, "needs mode ebpf, not cbpf"},
		{"negative fd", fanout.Group{ID: 1, Mode: fanout.EBPF, ProgramFD: -1}, "not a file descriptor"},
		{"member limit", fanout.Group{ID: 1, MaxMembers: 1<<16 + 1}, "exceeds the kernel's limit of 65536"},
		{"bad program", fanout.Group{ID: 1, Mode: fanout.CBPF, Program: []bpf.Instruction{bpf.LoadConstant{Dst: 9}}}, "assemble program"},
		{"long program", fanout.Group{ID: 1, Mode: fanout.CBPF, Program: make([]bpf.Instruction, 4097)}, "more than the kernel's 4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Validation comes before the socket is touched.
			_, err := fanout.Join(nil, tt.g)
			require.Error(t, err)
			assert.ErrorIs(t, err, unix.EINVAL)
			assert.Contains(t, err.Error(), "fanout: join "+tt.g.String()+": invalid argument: ")
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestCBPFPicksMemberInJoinOrder(t *testing.T) {
	fx := newFixture(t)
	socks := fx.members(t, 4)
	// Join in an order unlike creation order: member index k is joinOrder[k].
	joinOrder := []int{2, 0, 3, 1}
	ret := func(k uint32) []bpf.Instruction { return []bpf.Instruction{bpf.RetConstant{Val: k}} }
	for i, j := range joinOrder {
		g := fanout.Group{ID: 11, Mode: fanout.CBPF, Program: []bpf.Instruction{}}
		if i == 0 {
			g.Program = ret(1) // set once, by the first member: the program is the group's
		}
		_, err := join(t, fx.Local.NS, socks[j], g)
		require.NoError(t, err)
	}

	tests := []struct {
		ret    uint32
		member int // index in join order: ret modulo 4
	}{{1, 1}, {0, 0}, {3, 3}, {6, 2}}
	for i, tt := range tests {
		if i > 0 { // the first case checks the program the first member joined with
			require.NoError(t, fanout.SetProgram(socks[joinOrder[i%4]], ret(tt.ret)))
		}
		const n = 40
		fx.sendN(t, n)
		want := make([]int, 4)
		want[joinOrder[tt.member]] = n
		assert.Equal(t, want, counts(t, socks), "program returns %d: all to member %d, socket %d", tt.ret, tt.member, joinOrder[tt.member])
	}
}

func TestSetProgramOutsideCBPFGroup(t *testing.T) {
	fx := newFixture(t)
	s := fx.members(t, 2)
	ret1 := []bpf.Instruction{bpf.RetConstant{Val: 1}}

	err := fanout.SetProgram(s[0], ret1)
	require.Error(t, err)
	assert.ErrorIs(t, err, unix.EINVAL)
	assert.Contains(t, err.Error(), "in no fanout group")

	_, err = join(t, fx.Local.NS, s[1], fanout.Group{ID: 12})
	require.NoError(t, err)
	err = fanout.SetProgram(s[1], ret1)
	require.Error(t, err)
	assert.ErrorIs(t, err, unix.EINVAL)
	assert.Contains(t, err.Error(), "fanout: set program group 12 (mode hash, flags none) on ifindex")
	assert.Contains(t, err.Error(), "only cbpf and ebpf groups take a program")
}

// loadRetProgram loads the eBPF socket filter "return k" and returns its fd.
func loadRetProgram(t *testing.T, k int32) int {
	t.Helper()
	insns := make([]byte, 0, 16)
	insns = append(insns, 0xb7, 0, 0, 0) // BPF_ALU64|BPF_MOV|BPF_K, r0
	insns = binary.NativeEndian.AppendUint32(insns, uint32(k))
	insns = append(insns, 0x95, 0, 0, 0, 0, 0, 0, 0) // BPF_JMP|BPF_EXIT
	license := []byte("GPL\x00")
	var attr [128]byte // union bpf_attr, BPF_PROG_LOAD view
	binary.NativeEndian.PutUint32(attr[0:], unix.BPF_PROG_TYPE_SOCKET_FILTER)
	binary.NativeEndian.PutUint32(attr[4:], 2)
	binary.NativeEndian.PutUint64(attr[8:], uint64(uintptr(unsafe.Pointer(&insns[0]))))
	binary.NativeEndian.PutUint64(attr[16:], uint64(uintptr(unsafe.Pointer(&license[0]))))
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(insns)
	runtime.KeepAlive(license)
	if errno != 0 {
		msg := "cannot load an eBPF socket filter: " + errno.Error()
		if testenv.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { unix.Close(int(fd)) })
	return int(fd)
}

func TestEBPFPicksMember(t *testing.T) {
	fx := newFixture(t)
	socks := fx.members(t, 3)
	ret1, ret2 := loadRetProgram(t, 1), loadRetProgram(t, 2)
	for i, s := range socks {
		g := fanout.Group{ID: 13, Mode: fanout.EBPF}
		if i == 0 {
			g.ProgramFD = ret1
		}
		got, err := join(t, fx.Local.NS, s, g)
		require.NoError(t, err)
		assert.Equal(t, fanout.EBPF, got.Mode)
	}
	const n = 30
	fx.sendN(t, n)
	assert.Equal(t, []int{0, n, 0}, counts(t, socks))

	require.NoError(t, fanout.SetProgramFD(socks[2], ret2))
	fx.sendN(t, n)
	assert.Equal(t, []int{0, 0, n}, counts(t, socks))
}

func TestIgnoreOutgoing(t *testing.T) {
	if !fanout.Supported(fanout.FlagIgnoreOutgoing) {
		t.Skip("kernel older than 6.2: PACKET_FANOUT_FLAG_IGNORE_OUTGOING unsupported")
	}
	tests := []struct {
		flags        fanout.Flags
		wantOutgoing bool
	}{{0, true}, {fanout.FlagIgnoreOutgoing, false}}
	for _, tt := range tests {
		t.Run(tt.flags.String(), func(t *testing.T) {
			fx := newFixture(t)
			socks := fx.members(t, 2)
			for _, s := range socks {
				_, err := join(t, fx.Local.NS, s, fanout.Group{ID: 14, Flags: tt.flags})
				require.NoError(t, err)
			}
			// A socket outside the group sends frames out of the local end: the host's own
			// outgoing traffic, as the group sees it.
			var out *pktgen.Conn
			require.NoError(t, fx.Local.NS.Do(func() (err error) { out, err = pktgen.Open(fx.local.Index); return }))
			defer out.Close()
			const n = 20
			for i := range n {
				require.NoError(t, out.Send(pktgen.Frame(nil, fx.remote.HardwareAddr, fx.local.HardwareAddr, uint32(i), 64)))
			}
			outgoing := 0
			for _, s := range socks {
				_, o := s.drain(t, 200*time.Millisecond)
				outgoing += o
			}
			if tt.wantOutgoing {
				assert.Equal(t, n, outgoing)
			} else {
				assert.Zero(t, outgoing)
			}
		})
	}
}

func TestIgnoreOutgoingRefusedOnOldKernels(t *testing.T) {
	fx := newFixture(t)
	s := fx.members(t, 1)[0]
	defer fanout.SetKernelRelease("6.1.0-13-amd64")()
	assert.False(t, fanout.Supported(fanout.FlagIgnoreOutgoing))
	assert.True(t, fanout.Supported(fanout.FlagDefrag|fanout.FlagUniqueID))

	_, err := join(t, fx.Local.NS, s, fanout.Group{ID: 15, Flags: fanout.FlagIgnoreOutgoing})
	require.Error(t, err)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.Contains(t, err.Error(), "PACKET_FANOUT_FLAG_IGNORE_OUTGOING needs Linux 6.2+, this kernel is 6.1.0-13-amd64")
	_, ok, err := fanout.GroupOf(s)
	require.NoError(t, err)
	assert.False(t, ok, "nothing was joined")
}

func TestSupported(t *testing.T) {
	tests := []struct {
		release string
		flags   fanout.Flags
		want    bool
	}{
		{"6.18.44-fc-v782", fanout.FlagIgnoreOutgoing | fanout.FlagDefrag, true},
		{"6.2.0", fanout.FlagIgnoreOutgoing, true},
		{"6.1.99", fanout.FlagIgnoreOutgoing, false},
		{"5.15.0-91-generic", fanout.FlagIgnoreOutgoing, false},
		{"5.15.0-91-generic", fanout.FlagUniqueID | fanout.FlagRollover | fanout.FlagDefrag, true},
		{"4.9.0", fanout.FlagUniqueID, false},
		{"6.18.0", 0x0100, false},
		{"garbage", fanout.FlagDefrag, false},
	}
	for _, tt := range tests {
		restore := fanout.SetKernelRelease(tt.release)
		assert.Equal(t, tt.want, fanout.Supported(tt.flags), "%s on %s", tt.flags, tt.release)
		restore()
	}
}

func TestLinkFlapRelinksInCreationOrder(t *testing.T) {
	fx := newFixture(t)
	socks := fx.members(t, 3)
	joinOrder := []int{2, 0, 1}
	for i, j := range joinOrder {
		g := fanout.Group{ID: 16, Mode: fanout.CBPF}
		if i == 0 {
			g.Program = []bpf.Instruction{bpf.RetConstant{Val: 0}}
		}
		_, err := join(t, fx.Local.NS, socks[j], g)
		require.NoError(t, err)
	}
	// memberOrder finds, for each member index, the socket that receives it.
	memberOrder := func() []int {
		var order []int
		for k := range socks {
			require.NoError(t, fanout.SetProgram(socks[0], []bpf.Instruction{bpf.RetConstant{Val: uint32(k)}}))
			fx.sendN(t, 5)
			got := counts(t, socks)
			for i, c := range got {
				if c == 5 {
					order = append(order, i)
				}
			}
			require.Len(t, order, k+1, "member %d: %v", k, got)
		}
		return order
	}
	require.Equal(t, joinOrder, memberOrder(), "before a flap: join order")

	fx.Local.Run(t, "ip", "link", "set", "afb0", "down")
	fx.Local.Run(t, "ip", "link", "set", "afb0", "up")
	// Wait for the carrier: frames sent before it returns are lost.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var up bool
		require.NoError(t, fx.Local.NS.Do(func() error {
			ifi, err := net.InterfaceByIndex(fx.local.Index)
			up = err == nil && ifi.Flags&net.FlagRunning != 0
			return nil
		}))
		if up {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	assert.Equal(t, []int{0, 1, 2}, memberOrder(), "after a flap: creation order")
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestJoinWhileLinkDown(t *testing.T) {
	fx := newFixture(t)
	fx.Local.Run(t, "ip", "link", "set", "afb0", "down")
	// Bound while the link is down, the socket is not running.
	s := openSock(t, fx.Local.NS, fx.local.Index, unix.ETH_P_ALL)
	_, err := join(t, fx.Local.NS, s, fanout.Group{ID: 17})

	var u unix.Utsname
	require.NoError(t, unix.Uname(&u))
	major, minor, ok := fanout.ParseRelease(unix.ByteSliceToString(u.Release[:]))
	require.True(t, ok)
	if major < 6 || major == 6 && minor < 13 {
		require.Error(t, err, "before Linux 6.13 only a running socket joins")
		assert.ErrorIs(t, err, unix.EINVAL)
		assert.Contains(t, err.Error(), "this socket is not running: its interface is down")
		return
	}
	require.NoError(t, err, "since Linux 6.13 a socket joins while its link is down")
	fx.Local.Run(t, "ip", "link", "set", "afb0", "up")
	require.Eventually(t, func() bool {
		fx.sendN(t, 1)
		tags, _ := s.drain(t, 50*time.Millisecond)
		return len(tags) > 0
	}, 5*time.Second, 10*time.Millisecond, "the member receives once the link is up")
}

func TestParseRelease(t *testing.T) {
	tests := []struct {
		in           string
		major, minor int
		ok           bool
	}{
		{"6.18.44-fc-v782", 6, 18, true},
		{"5.15.0-91-generic", 5, 15, true},
		{"6.2", 6, 2, true},
		{"4.19.0+", 4, 19, true},
		{"6.10-rc1", 6, 10, true},
		{"", 0, 0, false},
		{"6", 0, 0, false},
		{"x.1", 0, 0, false},
		{"6.x", 0, 0, false},
		{"-1.5", 0, 0, false},
		{"+6.1", 0, 0, false},
	}
	for _, tt := range tests {
		major, minor, ok := fanout.ParseRelease(tt.in)
		assert.Equal(t, tt.ok, ok, tt.in)
		if tt.ok {
			assert.Equal(t, [2]int{tt.major, tt.minor}, [2]int{major, minor}, tt.in)
		}
	}
}

func FuzzParseRelease(f *testing.F) {
	for _, s := range []string{"6.18.44-fc-v782", "5.15.0", "6", "", "1.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		major, minor, ok := fanout.ParseRelease(s)
		if ok && (major < 0 || minor < 0) {
			t.Fatalf("%q: %d.%d", s, major, minor)
		}
	})
}
