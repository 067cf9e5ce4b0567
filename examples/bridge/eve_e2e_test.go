//go:build linux

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEVEFailuresShown reproduces issue 14's hidden EVE failures: with -eve /dev/full, the
// bridge said events were written. Now each loss is logged when it happens and counted in the
// final line.
func TestEVEFailuresShown(t *testing.T) {
	tp := newTopo(t)
	rulesPath := writeFile(t, t.TempDir(), "a.rules", `alert icmp any any -> any any (msg:"ping"; sid:5;)`+"\n")
	p := start(t, tp.bridge, "-i", "b0:b1", "-rules", rulesPath, "-eve", "/dev/full", "-eve-allow-special")
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	tp.ping(t)
	p.waitFor(`EVE log: \d+ events lost: eve: write /dev/full: no space left on device`, 10*time.Second)
	p.signal(syscall.SIGTERM)
	require.Equal(t, 0, p.exitCode(30*time.Second), p.stderr.String())
	m := regexp.MustCompile(`alerts (\d+), .*EVE events written 0, dropped 0, failed (\d+)`).FindStringSubmatch(p.stderr.String())
	require.NotNil(t, m, "final line with the failures")
	assert.Equal(t, m[1], m[2], "every alert's event is counted as failed")
	n, _ := strconv.Atoi(m[2])
	assert.Positive(t, n)
}

// TestEVEFIFO reproduces issue 14's hang: the EVE path replaced by a FIFO made SIGHUP block
// the bridge for good, and SIGTERM then did nothing. Now the reopen is refused at once, the
// bridge goes on with the old file, and SIGTERM ends it. A FIFO or symlink given at start is
// refused with the flag to allow it.
func TestEVEFIFO(t *testing.T) {
	tp := newTopo(t)
	dir := t.TempDir()
	evePath := filepath.Join(dir, "eve.json")
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	require.NoError(t, os.Symlink("/etc/shadow", filepath.Join(dir, "link")))
	for _, name := range []string{"fifo", "link"} {
		p := start(t, tp.bridge, "-i", "b0:b1", "-eve", filepath.Join(dir, name))
		assert.Equal(t, exitUsage, p.exitCode(30*time.Second))
		assert.Regexp(t, `-eve: open .*`+name+`: eve: not a regular file: .*allow it with -eve-allow-special`, p.stderr.String())
	}

	p := start(t, tp.bridge, "-i", "b0:b1", "-eve", evePath)
	p.waitFor(`bridging b0 <-> b1`, 20*time.Second)
	require.NoError(t, os.Rename(evePath, evePath+".1"))
	require.NoError(t, syscall.Mkfifo(evePath, 0o600))
	p.signal(syscall.SIGHUP)
	p.waitFor(`SIGHUP: eve: reopen: open .*: eve: not a regular file: a FIFO .*\(still writing to the old file\)`, 10*time.Second)
	tp.ping(t)
	p.signal(syscall.SIGTERM)
	assert.Equal(t, 0, p.exitCode(30*time.Second), p.stderr.String())
}
