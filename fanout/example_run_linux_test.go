//go:build linux

package fanout_test

import (
	"io"
	"os"
	"testing"

	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// captureStdout runs fn with os.Stdout sent to a pipe and returns what it printed.
func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	saved := os.Stdout
	os.Stdout = w
	out := make(chan string, 1)
	go func() { b, _ := io.ReadAll(r); out <- string(b) }()
	fn()
	os.Stdout = saved
	w.Close()
	s := <-out
	r.Close()
	return s
}

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
			require.NoError(t, eth0.NS.Do(func() error { out = captureStdout(t, ex.fn); return nil }))
			assert.Contains(t, out, ex.want)
		})
	}
}
