package fanout_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/afbridge/afbridge/fanout"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseClusterType(t *testing.T) {
	tests := []struct {
		in    string
		mode  fanout.Mode
		flags fanout.Flags
	}{
		{"", fanout.Hash, fanout.FlagDefrag}, // Suricata's default when cluster-type is unset
		{"cluster_flow", fanout.Hash, 0},
		{"cluster_round_robin", fanout.LB, 0},
		{"cluster_cpu", fanout.CPU, 0},
		{"cluster_qm", fanout.QM, 0},
		{"cluster_random", fanout.Random, 0},
		{"cluster_rollover", fanout.Rollover, 0},
		{"cluster_ebpf", fanout.EBPF, 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			mode, flags, err := fanout.ParseClusterType(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.mode, mode)
			assert.Equal(t, tt.flags, flags)
		})
	}

	for _, bad := range []string{"cluster_cbpf", "flow", "CLUSTER_FLOW", " cluster_flow", "cluster_flow "} {
		t.Run("bad/"+bad, func(t *testing.T) {
			_, _, err := fanout.ParseClusterType(bad)
			require.Error(t, err)
			assert.ErrorIs(t, err, fanout.ErrClusterType)
			assert.Contains(t, err.Error(), `"`+bad+`"`)
			for _, name := range []string{"cluster_flow", "cluster_round_robin", "cluster_cpu", "cluster_qm",
				"cluster_random", "cluster_rollover", "cluster_ebpf"} {
				assert.Contains(t, err.Error(), name, "the error lists the valid names")
			}
		})
	}
}

func TestModeString(t *testing.T) {
	tests := map[fanout.Mode]string{
		fanout.Hash: "hash", fanout.LB: "lb", fanout.CPU: "cpu", fanout.Rollover: "rollover",
		fanout.Random: "random", fanout.QM: "qm", fanout.CBPF: "cbpf", fanout.EBPF: "ebpf",
		8: "Mode(8)", 255: "Mode(255)",
	}
	for m, want := range tests {
		assert.Equal(t, want, m.String())
		assert.Equal(t, !strings.HasPrefix(want, "Mode("), m.Valid(), "%v is valid exactly when it has a name", m)
	}
	var zero fanout.Mode
	assert.Equal(t, fanout.Hash, zero, "the zero Mode is Hash on purpose")
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		f    fanout.Flags
		want string
	}{
		{0, "none"},
		{fanout.FlagDefrag, "defrag"},
		{fanout.FlagRollover, "rollover"},
		{fanout.FlagUniqueID, "unique-id"},
		{fanout.FlagIgnoreOutgoing, "ignore-outgoing"},
		{fanout.FlagDefrag | fanout.FlagRollover, "rollover|defrag"},
		{fanout.FlagDefrag | fanout.FlagIgnoreOutgoing | fanout.FlagUniqueID | fanout.FlagRollover,
			"rollover|unique-id|ignore-outgoing|defrag"},
		{fanout.FlagDefrag | 0x0100, "defrag|0x100"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.f.String())
	}
}

func TestFlagsAreNotModes(t *testing.T) {
	// Every flag lies above the mode byte, so no flag can be mistaken for a mode.
	for _, f := range []fanout.Flags{fanout.FlagDefrag, fanout.FlagRollover, fanout.FlagUniqueID, fanout.FlagIgnoreOutgoing} {
		assert.Zero(t, uint16(f)&0xff, "flag %s", f)
	}
}

func TestGroupString(t *testing.T) {
	g := fanout.Group{ID: 7, Mode: fanout.Hash, Flags: fanout.FlagDefrag}
	assert.Equal(t, "group 7 (mode hash, flags defrag)", g.String())
}

func TestErrorMessage(t *testing.T) {
	cause := errors.New("invalid argument")
	e := &fanout.Error{Op: "join", Group: fanout.Group{ID: 7, Flags: fanout.FlagDefrag}, Ifindex: 3, Err: cause, Hint: "why"}
	assert.Equal(t, "fanout: join group 7 (mode hash, flags defrag) on ifindex 3: invalid argument: why", e.Error())
	assert.ErrorIs(t, e, cause)

	e = &fanout.Error{Op: "read group", Ifindex: -1, Err: cause}
	assert.Equal(t, "fanout: read group: invalid argument", e.Error())
}

func FuzzParseClusterType(f *testing.F) {
	for _, s := range []string{"", "cluster_flow", "cluster_ebpf", "cluster_", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mode, flags, err := fanout.ParseClusterType(s)
		if err != nil {
			if !errors.Is(err, fanout.ErrClusterType) {
				t.Fatalf("error %v does not wrap ErrClusterType", err)
			}
			return
		}
		if s != "" && !strings.HasPrefix(s, "cluster_") {
			t.Fatalf("%q accepted", s)
		}
		if mode > fanout.EBPF || flags&^fanout.FlagDefrag != 0 {
			t.Fatalf("%q gave mode %v flags %v", s, mode, flags)
		}
	})
}
