package peer

import "fmt"

// Severity ranks a preflight finding.
type Severity uint8

const (
	// Warning: the bridge works, but something will surprise an operator.
	Warning Severity = iota
	// Critical: the IPS will be silently ineffective (traffic bypasses it or never reaches it).
	Critical
)

// String returns "warning" or "critical".
func (s Severity) String() string {
	if s == Critical {
		return "critical"
	}
	return "warning"
}

// Finding is one problem Preflight found, with the change that fixes it.
type Finding struct {
	Severity  Severity
	Interface string // the interface concerned, or "" for a host-wide setting
	Problem   string
	Fix       string
}

// String formats the finding for a log line.
func (f Finding) String() string {
	where := "host"
	if f.Interface != "" {
		where = f.Interface
	}
	return fmt.Sprintf("%s: %s: %s; fix: %s", f.Severity, where, f.Problem, f.Fix)
}
