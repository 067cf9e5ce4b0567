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
	// A set holds addedWays flows: one more evicts the oldest, which is then added again.
	same := []flow.Key{a}
	for i := range uint16(65535) {
		d := a
		d.Port[1] = i
		if d != a && d.HashSeed(c.seed)%addedSets == a.HashSeed(c.seed)%addedSets {
			same = append(same, d)
			if len(same) == addedWays+1 {
				break
			}
		}
	}
	require.Len(t, same, addedWays+1, "keys sharing a's set")
	now := t0 + 2*addedTTL
	for i, k := range same[:addedWays] {
		assert.False(t, c.recent(k, now+int64(i)), "flow %d: add", i)
	}
	for i, k := range same[:addedWays] {
		assert.True(t, c.recent(k, now+addedWays), "flow %d: a set holds %d", i, addedWays)
	}
	assert.False(t, c.recent(same[addedWays], now+addedWays+1), "a fifth flow: add")
	assert.False(t, c.recent(a, now+addedWays+2), "a, the oldest, lost its way to it")
	assert.Zero(t, testing.AllocsPerRun(100, func() { c.recent(a, t0) }))
}
