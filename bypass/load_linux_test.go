//go:build linux

package bypass

import (
	"testing"

	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
)

// openPath opens a Path for a test and closes it at cleanup.
func openPath(tb testing.TB, cfg *Config) *Path {
	tb.Helper()
	testenv.RequirePriv(tb)
	p, err := Open(cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, p.Close()) })
	return p
}

func TestProgramsLoad(t *testing.T) {
	p := openPath(t, &Config{Members: 4})
	filters := map[string][]bpf.Instruction{
		"none":       nil,
		"accept all": {bpf.RetConstant{Val: 0x40000}},
		"tcpdump ip": {
			bpf.LoadAbsolute{Off: 12, Size: 2},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 1},
			bpf.RetConstant{Val: 262144},
			bpf.RetConstant{Val: 0},
		},
	}
	for name, user := range filters {
		t.Run(name, func(t *testing.T) {
			for _, side := range []Side{A, B} {
				f, err := p.Filter(side, 3, user)
				require.NoError(t, err)
				require.NoError(t, f.Close())
			}
		})
	}
}
