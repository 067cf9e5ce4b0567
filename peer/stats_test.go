package peer

import (
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCounterTable: Counters is all uint64 fields, so add, store, load and Sub may walk it as an
// array, and counterNames follows the fields' order.
func TestCounterTable(t *testing.T) {
	typ := reflect.TypeFor[Counters]()
	require.Equal(t, nCounters, typ.NumField())
	for i := range typ.NumField() {
		f := typ.Field(i)
		assert.Equal(t, reflect.Uint64, f.Type.Kind(), f.Name)
		assert.Equal(t, snake(f.Name), counterNames[i], "name of field %d", i)
	}
}

func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rune(s[i-1])) || i+1 < len(s) && unicode.IsLower(rune(s[i+1]))) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

func TestCountersArithmetic(t *testing.T) {
	a := Counters{Received: 10, Forwarded: 7, Freezes: 1}
	b := Counters{Received: 5, Forwarded: 4, Dropped: 1, Freezes: 1}
	sum := a
	sum.add(&b)
	assert.Equal(t, Counters{Received: 15, Forwarded: 11, Dropped: 1, Freezes: 2}, sum)
	assert.Equal(t, a, sum.Sub(b))
	assert.Equal(t, "received=15 forwarded=11 dropped=1 freezes=2", sum.String())
	assert.Equal(t, "0", Counters{}.String())

	var p published
	p.store(&sum)
	assert.Equal(t, sum, p.load())
	assert.Zero(t, testing.AllocsPerRun(100, func() { p.store(&sum); sum.add(&a) }))
}
