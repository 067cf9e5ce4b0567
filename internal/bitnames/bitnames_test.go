package bitnames

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestJoin(t *testing.T) {
	names := []string{"a", "b", "c"}
	for _, tc := range []struct {
		bits uint64
		want string
	}{
		{0, "none"},
		{1, "a"},
		{0b101, "a|c"},
		{0b111, "a|b|c"},
		{1 << 40, "none"}, // a bit with no name
	} {
		assert.Equal(t, tc.want, Join(tc.bits, names...), "%b", tc.bits)
	}
}
