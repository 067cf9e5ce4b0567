//go:build linux

package bypass

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const helperEnv = "AFBRIDGE_BYPASS_HELPER"

// tcxPrograms counts the tcx ingress programs on the ports of a pair, inside its namespace.
func tcxPrograms(t *testing.T, pr testenv.Pair) int {
	t.Helper()
	n := 0
	for _, l := range []testenv.Link{pr.Local, pr.Remote} {
		idx := l.Interface(t).Index
		require.NoError(t, l.NS.Do(func() error {
			r, err := link.QueryPrograms(link.QueryOptions{Target: idx, Attach: ebpf.AttachTCXIngress})
			if err == nil {
				n += len(r.Programs)
			}
			return err
		}))
	}
	return n
}

// mapsGone reports whether none of the maps with these ids exists any more.
func mapsGone(ids []ebpf.MapID) bool {
	for _, id := range ids {
		m, err := ebpf.NewMapFromID(id)
		if err == nil {
			m.Close()
			return false
		}
		if !errors.Is(err, os.ErrNotExist) {
			return false
		}
	}
	return true
}

func (p *Path) mapIDs(t testing.TB) []ebpf.MapID {
	var ids []ebpf.MapID
	for _, m := range []*ebpf.Map{p.flows, p.ports, p.counters, p.seq} {
		info, err := m.Info()
		require.NoError(t, err)
		id, ok := info.ID()
		require.True(t, ok)
		ids = append(ids, id)
	}
	return ids
}

// eventually polls cond every 10 ms for up to 5 s: the kernel frees programs and maps after an
// RCU grace period, not at once.
func eventually(cond func() bool) bool {
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestCloseLeavesNothing(t *testing.T) {
	testenv.RequirePriv(t)
	// Two ports in one namespace: the local ends of two veth pairs.
	pr := testenv.NewPair(t, nil)
	local2, _ := testenv.Veth(t, pr.Local.NS, "afb2", pr.Remote.NS, "afb3", nil)
	p, err := Open(nil)
	require.NoError(t, err)
	ids := p.mapIDs(t)
	require.NoError(t, pr.Local.NS.Do(func() error {
		return p.Attach(pr.Local.Interface(t).Index, local2.Interface(t).Index)
	}))
	ports := testenv.Pair{Local: pr.Local, Remote: local2}
	assert.Equal(t, 2, tcxPrograms(t, ports))
	require.NoError(t, p.Close())
	assert.Equal(t, 0, tcxPrograms(t, ports), "no tcx program after Close")
	assert.True(t, eventually(func() bool { return mapsGone(ids) }), "no map after Close")
	require.NoError(t, p.Close(), "Close is idempotent")
	require.ErrorIs(t, p.Attach(1, 2), ErrClosed)
}

// TestKillLeavesNothing attaches the programs from a child process and kills it with SIGKILL:
// nothing is pinned, so the kernel removes the tcx links and maps with the process.
func TestKillLeavesNothing(t *testing.T) {
	testenv.RequirePriv(t)
	pr := testenv.NewPair(t, nil)
	local2, _ := testenv.Veth(t, pr.Local.NS, "afb2", pr.Remote.NS, "afb3", nil)
	ports := testenv.Pair{Local: pr.Local, Remote: local2}
	a, b := pr.Local.Interface(t).Index, local2.Interface(t).Index

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%d", helperEnv, a, b))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, pr.Local.NS.Do(cmd.Start)) // the child lives in the ports' namespace
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	var ids []ebpf.MapID
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
			for _, s := range strings.Fields(f) {
				id, err := strconv.ParseUint(s, 10, 32)
				require.NoError(t, err)
				ids = append(ids, ebpf.MapID(id))
			}
			break
		}
	}
	require.Len(t, ids, 4, "the helper reports its maps")
	assert.Equal(t, 2, tcxPrograms(t, ports), "the helper's programs are attached")

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	killed = true
	assert.True(t, eventually(func() bool { return tcxPrograms(t, ports) == 0 }), "no tcx program after kill -9")
	assert.True(t, eventually(func() bool { return mapsGone(ids) }), "no map after kill -9")
}

// TestHelperProcess is the child of TestKillLeavesNothing; it does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	arg := os.Getenv(helperEnv)
	if arg == "" {
		t.Skip("helper process for TestKillLeavesNothing")
	}
	var a, b int
	_, err := fmt.Sscanf(arg, "%d,%d", &a, &b)
	require.NoError(t, err)
	p, err := Open(nil)
	require.NoError(t, err)
	require.NoError(t, p.Attach(a, b))
	fmt.Print("ready")
	for _, id := range p.mapIDs(t) {
		fmt.Print(" ", id)
	}
	fmt.Println()
	time.Sleep(30 * time.Second) // killed long before
	t.Fatal("not killed")
}
