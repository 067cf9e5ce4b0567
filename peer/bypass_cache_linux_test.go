//go:build linux

package peer

import (
	"testing"

	"github.com/afbridge/afbridge/flow"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAddedCache: a flow added within addedTTL is not added again; after it, or once another
// flow took its slot, it is.
func TestAddedCache(t *testing.T) {
	var c addedCache
	a := flow.Key{Family: 4, Proto: 17, Port: [2]uint16{1000, 2000}}
	b := a
	b.Port[0]++
	const t0 = int64(1_000_000_000)
	assert.False(t, c.recent(a, t0), "first time: add")
	assert.True(t, c.recent(a, t0+addedTTL-1), "within the TTL: skip")
	assert.False(t, c.recent(a, t0+addedTTL), "past the TTL: add again")
	assert.False(t, c.recent(b, t0+addedTTL+1), "another flow: add")
	assert.True(t, c.recent(b, t0+addedTTL+2))
	// A flow whose slot another flow took is added again.
	var d flow.Key
	found := false
	for i := range uint16(65535) {
		d = a
		d.Port[1] = i
		if d != a && d.Hash()%uint64(len(c)) == a.Hash()%uint64(len(c)) {
			found = true
			break
		}
	}
	require.True(t, found, "a key sharing a's slot")
	assert.False(t, c.recent(d, t0+addedTTL+3))
	assert.False(t, c.recent(a, t0+addedTTL+4), "a lost its slot to d")
	assert.Zero(t, testing.AllocsPerRun(100, func() { c.recent(a, t0) }))
}
