//go:build linux

package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want options
	}{
		{[]string{"-i", "eth0:eth1"}, options{a: "eth0", b: "eth1", threads: 1, mode: peer.IPS}},
		{[]string{"-i", "eth0:eth1", "-threads", "4", "-mode", "tap", "-rules", "r", "-eve", "-", "-stats", "10s", "-metrics", "127.0.0.1:9101"},
			options{a: "eth0", b: "eth1", threads: 4, mode: peer.Tap, rules: "r", eve: "-", stats: 10 * time.Second, metrics: "127.0.0.1:9101"}},
		{[]string{"-c", "s.yaml", "-rules", "r"}, options{config: "s.yaml", threads: 1, rules: "r"}},
		{[]string{"-c", "s.yaml", "-i", "a:b"}, options{config: "s.yaml", a: "a", b: "b", threads: 1}},
		{[]string{"--demo"}, options{demo: true, threads: 1}},
		{[]string{"-demo"}, options{demo: true, threads: 1}},
		{[]string{"--i=x:y", "--threads=2"}, options{a: "x", b: "y", threads: 2}},
		{[]string{"-i", "x:y", "-bypass-after", "0"}, options{a: "x", b: "y", threads: 1, bypass: true}},
		{[]string{"-c", "s.yaml", "-bypass-after", "1048576"}, options{config: "s.yaml", threads: 1, bypass: true, bypassAfter: 1 << 20}},
		{[]string{"-i", "x:y", "-bypass-after", "0", "-bypass-handover", "256"}, options{a: "x", b: "y", threads: 1, bypass: true, bypassHandover: 256}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			o, err := parseFlags(c.args, io.Discard)
			require.NoError(t, err)
			assert.Equal(t, c.want, *o)
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" for an error the flag package reports itself
	}{
		{nil, "nothing to bridge"},
		{[]string{"-i", ":eth1"}, "two interface names"},
		{[]string{"-i", "a:b:c"}, "two interface names"},
		{[]string{"-i", "a:b", "-threads", "65537"}, "-threads 65537: want 1 to 65536"},
		{[]string{"-i", "a:b", "-stats", "-1s"}, "cannot be negative"},
		{[]string{"-i", "a:b", "-stats", "1ms"}, "at least 100ms"},
		{[]string{"-i", "a:b", "-rules", ""}, "-rules needs a file name"},
		{[]string{"-i", "a:b", "-eve", ""}, "-eve needs a file name"},
		{[]string{"-c", "f", "-mode", "tap"}, "-threads and -mode go with -i alone"},
		{[]string{"-demo", "-stats", "1s"}, "--demo takes no other flags (-stats given)"},
		{[]string{"-threads", "x"}, ""},
		{[]string{"-i", "a:b", "-bypass-after", "-1"}, ""},
		{[]string{"-i", "a:b", "-bypass-after", "1k"}, ""},
		{[]string{"-i", "a:b", "-bypass-handover", "-5"}, ""},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, err := parseFlags(c.args, io.Discard)
			require.Error(t, err)
			var u *usageError
			if c.want == "" {
				assert.False(t, errors.As(err, &u), "the flag package's own error: %v", err)
				return
			}
			require.True(t, errors.As(err, &u), "%v", err)
			assert.Contains(t, u.Error(), c.want)
		})
	}
	_, err := parseFlags([]string{"-h"}, io.Discard)
	assert.ErrorIs(t, err, flag.ErrHelp)
}

// TestRunUsage: run returns 2 and prints the usage for a bad command line, without touching any
// interface.
func TestRunUsage(t *testing.T) {
	var out strings.Builder
	assert.Equal(t, exitUsage, run([]string{"-i", "nocolon"}, io.Discard, &out))
	assert.Contains(t, out.String(), "bridge: -i \"nocolon\"")
	assert.Contains(t, out.String(), "usage:\n  bridge -i IFACE_A:IFACE_B")
	out.Reset()
	assert.Equal(t, exitOK, run([]string{"-h"}, io.Discard, &out))
	assert.Contains(t, out.String(), "-metrics ADDR")
}

func TestBanner(t *testing.T) {
	mk := func(threads int, a, b peer.CopyMode) *bridge {
		return newBridge(&engine{}, peer.Config{
			A: peer.Side{Interface: "eth0", CopyMode: a}, Threads: threads,
			B: peer.Side{Interface: "eth1", CopyMode: b},
		}, "", nil)
	}
	assert.Equal(t, "bridging eth0 <-> eth1 (ips, 2 workers)", mk(2, peer.IPS, peer.IPS).banner())
	assert.Equal(t, "bridging eth0 <-> eth1 (tap, 1 workers)", mk(1, peer.Tap, peer.Tap).banner())
	assert.Equal(t, "bridging eth0 <-> eth1 (ips eth0->eth1, tap eth1->eth0, 4 workers)", mk(4, peer.IPS, peer.Tap).banner())
	assert.Equal(t, "eth1->eth0", mk(1, peer.IPS, peer.IPS).dirName(verdict.BToA))
}
