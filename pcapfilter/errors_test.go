package pcapfilter_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/afbridge/afbridge/pcapfilter"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		expr   string
		kind   error
		column int
		msg    string // part of the message
	}{
		{"host example.com", pcapfilter.ErrHostname, 6, "host names are not resolved"},
		{"src foo or port 80", pcapfilter.ErrHostname, 5, `"foo"`},
		{"net intranet", pcapfilter.ErrHostname, 5, "write the address"},
		{"port http", pcapfilter.ErrUnsupported, 6, "service names"},
		{"gateway 198.18.0.1", pcapfilter.ErrUnsupported, 1, "gateway"},
		{"mpls 100", pcapfilter.ErrUnsupported, 1, "mpls"},
		{"ip proto \\nosuch", pcapfilter.ErrUnsupported, 10, "unknown protocol name"},
		{"ether proto 0x809b", pcapfilter.ErrUnsupported, 13, "LLC/SNAP"},
		{"tcp and", pcapfilter.ErrSyntax, 8, "end of expression"},
		{"tcp port", pcapfilter.ErrSyntax, 9, "expected an address, a number or a port"},
		{"(tcp or udp", pcapfilter.ErrSyntax, 12, `expected ")"`},
		{"tcp udp", pcapfilter.ErrSyntax, 5, `expected "and", "or"`},
		{"198.18.0.1", pcapfilter.ErrSyntax, 1, "no qualifier to inherit"},
		{"tcp or 80", pcapfilter.ErrSyntax, 8, "no qualifier to inherit"},
		{"port 70000", pcapfilter.ErrSyntax, 6, "above 65535"},
		{"vlan 4096", pcapfilter.ErrSyntax, 6, "out of range"},
		{"net 198.18.0.1/16", pcapfilter.ErrSyntax, 5, "non-network bits"},
		{"net 2001:2::1/48", pcapfilter.ErrSyntax, 5, "non-network bits"},
		{"net 198.18.0.0/33", pcapfilter.ErrSyntax, 16, "prefix length"},
		{"host 198.18.0.0/16", pcapfilter.ErrSyntax, 16, `"/" after a host`},
		{"ip host 2001:2::1", pcapfilter.ErrSyntax, 9, "ip qualifier applied to the IPv6 address"},
		{"ip6 host 198.18.0.1", pcapfilter.ErrSyntax, 10, "ip6 qualifier applied"},
		{"ether host 198.18.0.1", pcapfilter.ErrSyntax, 12, "MAC address"},
		{"icmp port 80", pcapfilter.ErrSyntax, 11, `qualifier of "port"`},
		{"len / 0 = 1", pcapfilter.ErrSyntax, 5, "division by zero"},
		{"len % (2 - 2) = 1", pcapfilter.ErrSyntax, 5, "modulus by zero"},
		{"len << 32 = 1", pcapfilter.ErrSyntax, 5, "shift by more than 31 bits"},
		{"ip[0:3] = 1", pcapfilter.ErrSyntax, 6, "load size of 1, 2 or 4"},
		{"ip[0 = 1", pcapfilter.ErrSyntax, 6, `expected "]"`},
		{"len = 0x100000000", pcapfilter.ErrSyntax, 7, "does not fit in 32 bits"},
		{"tcp[13] & 2 !! 0", pcapfilter.ErrSyntax, 13, "comparison"},
		{"host 198.18.0.1 $", pcapfilter.ErrSyntax, 17, "unexpected character"},
		{"ether", pcapfilter.ErrSyntax, 6, `after "ether"`},
		{"ip and arp", pcapfilter.ErrRejectsAll, 0, "drop all traffic"},
		{"arp and ip6", pcapfilter.ErrRejectsAll, 0, "matches no frame"},
		{"host 02:00:00:00:00:01", pcapfilter.ErrSyntax, 6, "write ether host"},
		{"proto tcp", pcapfilter.ErrSyntax, 7, `write \tcp`},
		{"host 198.18.0.1 or (198.18.0.2 and tcp)", pcapfilter.ErrSyntax, 21, "no qualifier to inherit"},
		{"ip6 protochain 6", pcapfilter.ErrUnsupported, 5, "protochain"},
		{"net 300", pcapfilter.ErrSyntax, 5, "not an IPv4 address or network"},
		{strings.Repeat("(", 101) + "tcp" + strings.Repeat(")", 101), pcapfilter.ErrTooComplex, 101, "nested more than 100"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			prog, err := pcapfilter.Compile(tt.expr, nil)
			require.Error(t, err)
			assert.Nil(t, prog)
			assert.ErrorIs(t, err, tt.kind)
			var e *pcapfilter.Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, tt.expr, e.Expr)
			assert.Equal(t, tt.column, e.Column, "column in %q", err)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

// TestTooLong: a program over the kernel's limit is refused with ErrTooComplex, and a long
// one under it still runs (its far jumps go through trampolines).
func TestTooLong(t *testing.T) {
	var terms []string
	for i := 0; i < 200; i++ {
		terms = append(terms, "portrange 1000-2000")
	}
	_, err := pcapfilter.Compile(strings.Join(terms, " or "), nil)
	require.ErrorIs(t, err, pcapfilter.ErrTooComplex)
	assert.Contains(t, err.Error(), "4096")

	prog, err := pcapfilter.Compile(strings.Join(terms[:30], " and "), nil)
	require.NoError(t, err)
	require.Greater(t, len(prog), 400)
	require.Less(t, len(prog), pcapfilter.MaxInstructions)
	vm, err := bpf.NewVM(prog)
	require.NoError(t, err)
	for _, f := range corpus(500, 4) {
		_, err := vm.Run(f)
		require.NoError(t, err)
	}
	var far bool
	for _, in := range prog {
		if j, ok := in.(bpf.Jump); ok && j.Skip > 255 {
			far = true
		}
	}
	assert.True(t, far, "no jump over 255 instructions: the test does not exercise trampolines")
}

// TestEmptyAcceptsAll: the empty expression accepts every frame, returning the snapshot
// length tcpdump returns.
func TestEmptyAcceptsAll(t *testing.T) {
	for _, expr := range []string{"", "  "} {
		prog, err := pcapfilter.Compile(expr, nil)
		require.NoError(t, err)
		vm, err := bpf.NewVM(prog)
		require.NoError(t, err)
		for _, f := range corpus(100, 5) {
			v, err := vm.Run(f)
			require.NoError(t, err)
			assert.Equal(t, 262144, v)
		}
	}
}

func TestErrorUnwrap(t *testing.T) {
	_, err := pcapfilter.Compile("host db1", nil)
	var e *pcapfilter.Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, pcapfilter.ErrHostname, e.Unwrap())
	assert.Equal(t, `pcapfilter: "host db1" column 6: "db1" is not an IP or MAC address: host names are not resolved (no DNS in a packet path); write the address`, err.Error())
}
