package verdict_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example's flow key keeps its promises: the same key both ways, VLANs apart, fragments
// without ports, IPv6, and GSO frames whose length field is 0 counted by their real length.
func TestParseFlow(t *testing.T) {
	ab := tcp4(0, "198.18.0.1", "198.19.0.1", 40000, 443, 100)
	ba := tcp4(0, "198.19.0.1", "198.18.0.1", 443, 40000, 10)
	kab, n, ok := parseFlow(ab)
	require.True(t, ok)
	assert.Equal(t, 100, n)
	kba, _, _ := parseFlow(ba)
	assert.Equal(t, kab, kba, "direction-independent")
	kv, _, _ := parseFlow(tcp4(7, "198.18.0.1", "198.19.0.1", 40000, 443, 100))
	assert.NotEqual(t, kab, kv, "another VLAN, another flow")
	assert.Equal(t, uint16(7), kv.vlan)

	frag := tcp4(0, "198.18.0.1", "198.19.0.1", 40000, 443, 100)
	binary.BigEndian.PutUint16(frag[20:], 0x2000) // MF
	kf, nf, ok := parseFlow(frag)
	require.True(t, ok)
	assert.Zero(t, kf.lo.Port()+kf.hi.Port(), "a fragment's key has no ports")
	assert.Equal(t, 120, nf, "the whole IP payload")
	later := append([]byte(nil), frag...)
	binary.BigEndian.PutUint16(later[20:], 100) // offset 800, last fragment: no TCP header there
	kl, _, _ := parseFlow(later)
	assert.Equal(t, kf, kl, "every fragment of the datagram shares the key")

	gso := tcp4(0, "198.18.0.1", "198.19.0.1", 40000, 443, 30000)
	binary.BigEndian.PutUint16(gso[16:], 0)
	_, ng, _ := parseFlow(gso)
	assert.Equal(t, 30000, ng, "a GSO frame counts all its segments' bytes")

	v6 := make([]byte, 14+40+20)
	v6[12], v6[13] = 0x86, 0xdd
	v6[14] = 0x60
	binary.BigEndian.PutUint16(v6[18:], 20)
	v6[20] = 6
	copy(v6[22:], netip.MustParseAddr("2001:2::1").AsSlice())
	copy(v6[38:], netip.MustParseAddr("2001:2::2").AsSlice())
	binary.BigEndian.PutUint16(v6[54:], 5555)
	binary.BigEndian.PutUint16(v6[56:], 80)
	v6[66] = 5 << 4
	k6, n6, ok := parseFlow(v6)
	require.True(t, ok)
	assert.Equal(t, netip.MustParseAddrPort("[2001:2::1]:5555"), k6.lo)
	assert.Zero(t, n6)

	_, _, ok = parseFlow([]byte{1, 2, 3})
	assert.False(t, ok, "a runt")
}

// FuzzParseFlow: any bytes, no panic, a payload within the frame, and the key of a frame does
// not depend on the direction.
func FuzzParseFlow(f *testing.F) {
	f.Add(tcp4(0, "198.18.0.1", "198.19.0.1", 1, 2, 10))
	f.Add(tcp4(9, "198.18.0.1", "198.19.0.1", 1, 2, 0))
	f.Add(udp4(53))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, n, ok := parseFlow(b)
		if !ok {
			return
		}
		assert.LessOrEqual(t, n, len(b))
		assert.LessOrEqual(t, k.lo.Compare(k.hi), 0)
	})
}
