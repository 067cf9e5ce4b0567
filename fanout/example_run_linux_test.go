//go:build linux

package fanout_test

import (
	"testing"

	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestExamples runs the bodies of the examples that need privileges and an eth0, in a
// namespace that has one.
func TestExamples(t *testing.T) {
	testenv.RequirePriv(t)
	for _, ex := range []struct {
		name string
		fn   func()
		want string
	}{
		{"Example", Example, "member 3 joined"},
		{"ExampleJoin_uniqueID", ExampleJoin_uniqueID, "kernel-chosen id: "},
		{"ExampleSetProgram", ExampleSetProgram, ""},
	} {
		t.Run(ex.name, func(t *testing.T) {
			local, remote := testenv.NS(t, "local"), testenv.NS(t, "remote")
			eth0, _ := testenv.Veth(t, local, "eth0", remote, "peer0", nil)
			var out string
			require.NoError(t, eth0.NS.Do(func() error { out = testenv.CaptureStdout(t, ex.fn); return nil }))
			assert.Contains(t, out, ex.want)
		})
	}
}
