package rules

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLongestContentAndNewIn(t *testing.T) {
	s := mustParse(t, `alert tcp any any -> any any (content:"abc"; sid:1;)
alert tcp any any -> any any (content:"XyZ"; nocase; content:"q"; sid:2;)
alert tcp any any -> any any (sid:3;)`)
	assert.Equal(t, 3, s.LongestContent())
	assert.Zero(t, mustParse(t, `alert tcp any any -> any any (sid:1;)`).LongestContent())
	r1, r2, r3 := s.Rules()[0], s.Rules()[1], s.Rules()[2]
	assert.True(t, r1.HasContent())
	assert.False(t, r3.HasContent())
	for _, c := range []struct {
		r       *Rule
		payload string
		from    int
		want    bool
	}{
		{r1, "abc----", 3, false}, // ends before the new bytes
		{r1, "-abc---", 3, true},  // ends in them
		{r1, "abc-abc", 3, true},  // an old and a new occurrence
		{r1, "ab", 1, false},      // none at all
		{r2, "xyz--", 3, false},   // nocase, old
		{r2, "--xYz", 3, true},    // nocase, new
		{r2, "xyz-q", 3, true},    // another content is new
		{r3, "", 0, true},         // no content: always new
		{r1, "abc", 10, false},    // from past the end
	} {
		assert.Equal(t, c.want, c.r.NewIn([]byte(c.payload), c.from), "sid %d %q from %d", c.r.SID, c.payload, c.from)
	}
}
