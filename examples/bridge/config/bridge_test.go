package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBridges(t *testing.T) {
	stubCPU(t, 4)
	tests := []struct {
		name string
		data []byte
		// want lists each bridge as A, B, AToB, BToA.
		want [][4]string
	}{
		{
			name: "one ips pair",
			data: with(),
			want: [][4]string{{"eth0", "eth1", "ips", "ips"}},
		},
		{
			name: "modes differ per direction",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    copy-mode: tap",
				"    copy-iface: eth1",
				"  - interface: eth1",
				"    copy-mode: ips",
				"    copy-iface: eth0",
			),
			want: [][4]string{{"eth0", "eth1", "tap", "ips"}},
		},
		{
			name: "two pairs interleaved, IDS entry left out",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    copy-mode: ips",
				"    copy-iface: eth2",
				"  - interface: eth1",
				"    copy-mode: ips",
				"    copy-iface: eth3",
				"  - interface: mon0",
				"  - interface: eth2",
				"    copy-mode: ips",
				"    copy-iface: eth0",
				"  - interface: eth3",
				"    copy-mode: tap",
				"    copy-iface: eth1",
			),
			want: [][4]string{{"eth0", "eth2", "ips", "ips"}, {"eth1", "eth3", "ips", "tap"}},
		},
		{
			name: "threads auto on both sides",
			data: with("    threads: auto"),
			want: [][4]string{{"eth0", "eth1", "ips", "ips"}},
		},
		{
			name: "copy-mode and threads from the default entry",
			data: doc(
				"af-packet:",
				"  - interface: default",
				"    copy-mode: ips",
				"    threads: 2",
				"  - interface: eth0",
				"    copy-iface: eth1",
				"  - interface: eth1",
				"    copy-iface: eth0",
			),
			want: [][4]string{{"eth0", "eth1", "ips", "ips"}},
		},
		{
			name: "distinct cluster-ids, or one side unset",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    copy-mode: ips",
				"    copy-iface: eth1",
				"    cluster-id: 99",
				"  - interface: eth1",
				"    copy-mode: ips",
				"    copy-iface: eth0",
				"    cluster-id: 98",
				"  - interface: eth2",
				"    copy-mode: ips",
				"    copy-iface: eth3",
				"    cluster-id: 99",
				"  - interface: eth3",
				"    copy-mode: ips",
				"    copy-iface: eth2",
			),
			want: [][4]string{{"eth0", "eth1", "ips", "ips"}, {"eth2", "eth3", "ips", "ips"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data, "s.yaml")
			require.NoError(t, err)
			bridges, err := f.Bridges()
			require.NoError(t, err)
			var got [][4]string
			for _, b := range bridges {
				assert.Equal(t, b.A.CopyMode, b.AToB)
				assert.Equal(t, b.B.CopyMode, b.BToA)
				got = append(got, [4]string{b.A.Name, b.B.Name, b.AToB.String(), b.BToA.String()})
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestBridgesErrors(t *testing.T) {
	stubCPU(t, 8)
	tests := []struct {
		name string
		data []byte
		want []*Error
	}{
		{
			name: "threads differ",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    threads: 2",
				"    copy-mode: ips",
				"    copy-iface: eth1",
				"  - interface: eth1",
				"    threads: 4",
				"    copy-mode: ips",
				"    copy-iface: eth0",
			),
			want: []*Error{want2(2, 6, "threads differ: eth0 has 2, eth1 has 4; an IPS pair needs equal threads so both directions of a flow meet on one worker")},
		},
		{
			name: "threads auto against a number",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    copy-mode: ips",
				"    copy-iface: eth1",
				"  - interface: eth1",
				"    threads: 4",
				"    copy-mode: ips",
				"    copy-iface: eth0",
			),
			want: []*Error{want2(2, 5, "threads differ: eth0 has auto (8), eth1 has 4; an IPS pair needs equal threads so both directions of a flow meet on one worker")},
		},
		{
			name: "same cluster-id",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    cluster-id: 99",
				"    copy-mode: ips",
				"    copy-iface: eth1",
				"  - interface: eth1",
				"    cluster-id: 99",
				"    copy-mode: ips",
				"    copy-iface: eth0",
			),
			want: []*Error{want2(2, 6, "cluster-id 99 used by both eth0 and eth1; each interface needs its own fanout group, the kernel refuses one across two devices")},
		},
		{
			name: "same cluster-id from the default entry",
			data: doc(
				"af-packet:",
				"  - interface: default",
				"    cluster-id: 99",
				"    copy-mode: ips",
				"  - interface: eth0",
				"    copy-iface: eth1",
				"  - interface: eth1",
				"    copy-iface: eth0",
			),
			want: []*Error{want2(5, 7, "cluster-id 99 used by both eth0 and eth1; each interface needs its own fanout group, the kernel refuses one across two devices")},
		},
		{
			name: "copy-iface with no entry",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    copy-mode: ips",
				"    copy-iface: eth9",
			),
			want: []*Error{want(2, "eth0 has copy-iface eth9, which has no af-packet entry")},
		},
		{
			name: "copy-iface points elsewhere",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    copy-mode: ips",
				"    copy-iface: eth1",
				"  - interface: eth1",
				"    copy-mode: ips",
				"    copy-iface: eth2",
				"  - interface: eth2",
				"    copy-mode: ips",
				"    copy-iface: eth1",
			),
			want: []*Error{want2(2, 5, "copy-iface not reciprocal: eth0 copies to eth1, but eth1 copies to eth2")},
		},
		{
			name: "peer is IDS only",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    copy-mode: ips",
				"    copy-iface: eth1",
				"  - interface: eth1",
				"    copy-iface: eth0",
			),
			want: []*Error{want2(2, 5, "copy-iface not reciprocal: eth0 copies to eth1, but eth1 has no copy-mode")},
		},
		{
			name: "copy-mode without copy-iface",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    copy-mode: tap",
				"    copy-iface: eth1",
				"  - interface: eth1",
				"    copy-mode: tap",
			),
			want: []*Error{
				want2(2, 5, "copy-iface not reciprocal: eth0 copies to eth1, but eth1 has no copy-iface"),
				want(5, "eth1 has copy-mode tap but no copy-iface"),
			},
		},
		{
			name: "copy-iface is itself",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    copy-mode: ips",
				"    copy-iface: eth0",
			),
			want: []*Error{want(2, "eth0 has copy-iface eth0: an interface cannot copy to itself")},
		},
		{
			name: "interface listed twice",
			data: with("  - interface: eth0", "    copy-mode: ips", "    copy-iface: eth1"),
			want: []*Error{want2(2, 8, "interface eth0 listed twice")},
		},
		{
			name: "no bridge",
			data: doc("af-packet:", "  - interface: eth0", "  - interface: eth1"),
			want: []*Error{{File: "s.yaml", Msg: "no bridge: no two af-packet entries name each other in copy-iface with copy-mode ips or tap"}},
		},
		{
			name: "every error in one pass",
			data: doc(
				"af-packet:",
				"  - interface: eth0",
				"    threads: 1",
				"    cluster-id: 5",
				"    copy-mode: ips",
				"    copy-iface: eth1",
				"  - interface: eth1",
				"    threads: 2",
				"    cluster-id: 5",
				"    copy-mode: ips",
				"    copy-iface: eth0",
				"  - interface: eth2",
				"    copy-mode: ips",
			),
			want: []*Error{
				want2(2, 7, "threads differ: eth0 has 1, eth1 has 2; an IPS pair needs equal threads so both directions of a flow meet on one worker"),
				want2(2, 7, "cluster-id 5 used by both eth0 and eth1; each interface needs its own fanout group, the kernel refuses one across two devices"),
				want(12, "eth2 has copy-mode ips but no copy-iface"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(tt.data, "s.yaml")
			require.NoError(t, err)
			bridges, err := f.Bridges()
			assert.Nil(t, bridges)
			assert.Equal(t, tt.want, allErrors(t, err))
		})
	}
}

func TestBridgesThreadsDifferMessage(t *testing.T) {
	// The exact text the bridge binary prints, as the spec gives it.
	f, err := Parse(doc(
		"af-packet:",
		"  - interface: eth0",
		"    threads: 2",
		"    copy-mode: ips",
		"    copy-iface: eth1",
		"  - interface: eth1",
		"    threads: 4",
		"    copy-mode: ips",
		"    copy-iface: eth0",
	), "suricata.yaml")
	require.NoError(t, err)
	_, err = f.Bridges()
	require.EqualError(t, err, "suricata.yaml:2,6: threads differ: eth0 has 2, eth1 has 4; an IPS pair needs equal threads so both directions of a flow meet on one worker")
}
