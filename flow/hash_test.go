package flow

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTableHash: the table's hash depends on every bit of the Key, differs between tables (its
// keys are random per table), and spreads the upper half, which picks the index slot, evenly
// even for flows that differ only in a port.
func TestTableHash(t *testing.T) {
	t1, err := NewTable(Config[int]{Capacity: 64})
	require.NoError(t, err)
	t2, err := NewTable(Config[int]{Capacity: 64})
	require.NoError(t, err)
	k := Key{Addr: [2][4]uint32{{0xc6120001}, {0xc6130001}}, Port: [2]uint16{1024, 80}, Proto: ProtoTCP, Family: 4}
	base := t1.hash(&k)
	assert.NotEqual(t, base, t2.hash(&k), "keyed per table")
	b := (*[KeySize]byte)(unsafe.Pointer(&k))
	for i := range KeySize * 8 {
		b[i/8] ^= 1 << (i % 8)
		assert.NotEqual(t, base, t1.hash(&k), "bit %d", i)
		b[i/8] ^= 1 << (i % 8)
	}
	const buckets, flows = 64, 64 * 256
	var count [buckets]int
	for p := range flows {
		k.Port[0] = uint16(p)
		count[t1.hash(&k)>>32%buckets]++
	}
	for i, n := range count {
		assert.InDelta(t, flows/buckets, n, flows/buckets/3, "bucket %d", i)
	}
}
