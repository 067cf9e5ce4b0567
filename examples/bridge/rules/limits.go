package rules

import (
	"errors"
	"fmt"
)

// Limits on what one rule set may hold. They keep a hostile or mistaken rule
// file from exhausting memory: compile memory is linear in the rule set (see
// [MaxAutomatonBytes]), and these bound the set itself. A rule set that
// crosses one is refused with a [*LimitError] naming the first rule over it,
// and [ErrLimit] matches it with errors.Is.
const (
	// MaxRules is the most rules one Set holds: ten times ET Open.
	MaxRules = 500_000
	// MaxContentLen is the longest single content pattern, in bytes. Real
	// rules stay under a few hundred bytes; Suricata reads rule lines of up to
	// 64 KiB.
	MaxContentLen = 64 << 10
	// MaxPatternBytes bounds the total bytes of the distinct content
	// patterns of a Set (ET Open has about 1 MiB).
	MaxPatternBytes = 16 << 20
	// MaxAutomatonBytes bounds the estimated memory of the content
	// automaton while it is built (about 60 bytes per distinct pattern byte,
	// less where patterns share prefixes). Kept alive afterwards is about
	// half of it.
	MaxAutomatonBytes = 512 << 20
)

// ErrLimit is matched by errors.Is for every [*LimitError].
var ErrLimit = errors.New("rule set limit exceeded")

// LimitError says which rule made a rule set cross one of the limits
// ([MaxRules], [MaxContentLen], [MaxPatternBytes], [MaxAutomatonBytes]).
type LimitError struct {
	// File and Line locate the first rule over the limit.
	File string
	Line int
	// Limit names the limit, for example "MaxContentLen".
	Limit string
	// Value is what the rule set reached with this rule; Max is the limit.
	Value, Max int
	// Hint says what to do about it.
	Hint string
}

// Error returns "FILE:LINE: ..." like a [*ParseError].
func (e *LimitError) Error() string {
	return fmt.Sprintf("%s:%d: rule set too large: %s is %d, over the limit of %d (%s): %s",
		e.File, e.Line, limitWhat[e.Limit], e.Value, e.Max, e.Limit, e.Hint)
}

// Is makes errors.Is(err, ErrLimit) true.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

var limitWhat = map[string]string{
	"MaxRules":          "the number of rules",
	"MaxContentLen":     "the length of a content",
	"MaxPatternBytes":   "the total bytes of distinct contents",
	"MaxAutomatonBytes": "the estimated memory of the content automaton",
}

// limits are the values compile enforces; tests lower them.
type limits struct {
	rules, contentLen, patternBytes, automatonBytes int
}

var defaultLimits = limits{MaxRules, MaxContentLen, MaxPatternBytes, MaxAutomatonBytes}

func limitError(r *Rule, limit string, value, max int) *LimitError {
	hints := map[string]string{
		"MaxRules":          "split the rules over several bridges or drop disabled rules from the file",
		"MaxContentLen":     "shorten the content to the part that identifies the traffic",
		"MaxPatternBytes":   "remove rules with long or many contents",
		"MaxAutomatonBytes": "remove rules with long or many contents",
	}
	return &LimitError{File: r.File, Line: r.Line, Limit: limit, Value: value, Max: max, Hint: hints[limit]}
}
