package testenv

import (
	"io"
	"os"
	"sync"
	"testing"
)

// stdoutMu serialises CaptureStdout: os.Stdout is process-wide.
var stdoutMu sync.Mutex

// CaptureStdout runs fn with os.Stdout sent to a pipe and returns what it printed: how a test runs
// the body of an Example that needs privileges and checks its output. os.Stdout is restored even
// if fn panics.
func CaptureStdout(tb testing.TB, fn func()) string {
	tb.Helper()
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatalf("capture stdout: %v", err)
	}
	saved := os.Stdout
	os.Stdout = w
	out := make(chan string, 1)
	go func() { b, _ := io.ReadAll(r); out <- string(b) }()
	defer func() {
		os.Stdout = saved
		w.Close()
		r.Close()
	}()
	fn()
	os.Stdout = saved
	w.Close()
	return <-out
}
