package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLimits crosses each limit (lowered, so the test stays small) and
// checks the error names the first rule over it, with file and line.
func TestLimits(t *testing.T) {
	rule := func(sid int, content string) string {
		return fmt.Sprintf(`alert tcp any any -> any any (content:"%s"; sid:%d;)`, content, sid)
	}
	lines := []string{rule(1, "abcdef"), "# comment", rule(2, "abcdefgh"), rule(3, "xyz"), rule(4, "abcdef")}
	text := strings.Join(lines, "\n")
	// The automaton estimate after the first two rules: the third crosses it.
	tr := newTrie(0)
	tr.add([]byte("abcdef"), false)
	tr.add([]byte("abcdefgh"), false)
	twoRules := tr.memEstimate()
	tests := []struct {
		name  string
		lim   limits
		limit string
		line  int
		value int
	}{
		{"rules", limits{2, 100, 100, 1 << 30}, "MaxRules", 4, 4},
		{"content length", limits{10, 7, 100, 1 << 30}, "MaxContentLen", 3, 8},
		{"pattern bytes", limits{10, 100, 16, 1 << 30}, "MaxPatternBytes", 4, 17},
		{"automaton", limits{10, 100, 100, twoRules}, "MaxAutomatonBytes", 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rules []*Rule
			for i, l := range lines {
				p := parser{file: "big.rules", line: i + 1, s: l}
				r, perr := p.rule()
				require.Nil(t, perr)
				if r != nil {
					rules = append(rules, r)
				}
			}
			_, err := compileLimits(rules, tt.lim)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrLimit)
			var le *LimitError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, tt.limit, le.Limit)
			assert.Equal(t, "big.rules", le.File)
			assert.Equal(t, tt.line, le.Line)
			if tt.value != 0 {
				assert.Equal(t, tt.value, le.Value)
			}
			assert.Greater(t, le.Value, le.Max)
			assert.Contains(t, err.Error(), fmt.Sprintf("big.rules:%d: rule set too large", tt.line))
			assert.NotEmpty(t, le.Hint)
		})
	}
	// Within the limits, the same rules compile.
	_, err := Parse(strings.NewReader(text), "big.rules")
	require.NoError(t, err)
}

// TestLimitContentLenParse checks the default limit end to end: a content
// over MaxContentLen is refused by Parse with its line, and one at the limit
// is accepted.
func TestLimitContentLenParse(t *testing.T) {
	ok := "alert tcp any any -> any any (content:\"" + strings.Repeat("a", MaxContentLen) + "\"; sid:1;)\n"
	_, err := Parse(strings.NewReader(ok), "ok.rules")
	require.NoError(t, err)

	big := "# one MiB content\n" + "alert tcp any any -> any any (content:\"" + strings.Repeat("a", 1<<20) + "\"; sid:1;)\n"
	_, err = Parse(strings.NewReader(big), "big.rules")
	var le *LimitError
	require.True(t, errors.As(err, &le), "%v", err)
	assert.Equal(t, 2, le.Line)
	assert.Equal(t, "MaxContentLen", le.Limit)
	assert.Contains(t, err.Error(), "big.rules:2: rule set too large: the length of a content is 1048576, over the limit of 65536")
}

// A rule set over a limit is refused, and the error names the rule.
func ExampleLimitError() {
	text := "# a content longer than anything real\n" +
		`drop tcp any any -> any 80 (content:"` + strings.Repeat("A", MaxContentLen+1) + `"; sid:1;)`
	_, err := Parse(strings.NewReader(text), "big.rules")
	var le *LimitError
	if errors.As(err, &le) {
		fmt.Println(le.File, le.Line, le.Limit, le.Value, le.Max)
	}
	fmt.Println(errors.Is(err, ErrLimit))
	// Output:
	// big.rules 2 MaxContentLen 65537 65536
	// true
}
