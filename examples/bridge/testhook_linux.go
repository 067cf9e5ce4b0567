//go:build linux && afbridge_testhook

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// With the afbridge_testhook build tag (tests only), the bridge tries, right after dropping its
// privileges, what a compromised bridge would: open each file named in AFBRIDGE_PROBE_WRITE
// (colon-separated) for writing, and start a program. It prints one "probe:" line each, so a
// test can check from inside the process that its credentials protect what root owns.
func init() {
	afterDrop = func(printf func(string, ...any)) {
		for _, p := range strings.Split(os.Getenv("AFBRIDGE_PROBE_WRITE"), ":") {
			if p == "" {
				continue
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				f.Close()
			}
			printf("probe: write %s: %s", p, result(err))
		}
		printf("probe: exec /bin/true: %s", result(exec.Command("/bin/true").Run()))
	}
}

func result(err error) string {
	if err == nil {
		return "allowed"
	}
	return fmt.Sprintf("denied (%v)", err)
}
