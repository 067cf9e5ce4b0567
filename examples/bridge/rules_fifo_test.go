//go:build linux

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReloadRulesFIFO: a FIFO put in place of the rule file is refused on SIGHUP instead of
// blocking the main loop, so the bridge keeps its rules and SIGTERM still stops it.
func TestReloadRulesFIFO(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	rulesPath := writeFile(t, dir, "r.rules", `alert tcp any any -> any any (msg:"x"; content:"x"; sid:1;)`+"\n")
	p := start(t, tp.bridge, "-i", "b0:b1", "-rules", rulesPath)
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	require.NoError(t, os.Remove(rulesPath))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "r.rules"), 0o600))
	p.signal(syscall.SIGHUP)
	p.waitFor(`reload of .*r.rules refused; the 1 rules loaded before stay in force`, 10*time.Second)
	assert.Contains(t, p.stderr.String(), "not a regular file")
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.exitCode(30*time.Second), p.stderr.String())
}
