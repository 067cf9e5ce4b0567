//go:build linux

package main

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/peer"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHandlerBypass: the worker's handler bypasses a flow once it has passed -bypass-after bytes
// (both directions, frame bytes), at once for a pass rule with the bypass option, and never a
// flow that raised an alert or had a drop.
func TestHandlerBypass(t *testing.T) {
	const (
		P = verdict.Pass
		D = verdict.Drop
		B = verdict.Bypass
	)
	type frame struct {
		dir     verdict.Direction
		payload string
		want    verdict.Verdict
	}
	pad := strings.Repeat("x", 46) // 100-byte frames (longer with a rule's content)
	for _, tc := range []struct {
		name   string
		rules  string
		after  int64 // -1: no -bypass-after
		frames []frame
	}{
		{"after 0: the first frame", "", 0, []frame{{0, pad, B}, {1, pad, B}}},
		{"after 250: both directions count", "", 250, []frame{{0, pad, P}, {1, pad, P}, {0, pad, B}, {1, pad, B}}},
		{"off", "", -1, []frame{{0, pad, P}, {1, pad, P}, {0, pad, P}}},
		{"an alert keeps the flow inspected", `alert tcp any any -> any any (msg:"a"; content:"hello"; sid:1;)`, 0,
			[]frame{{0, "hello" + pad, P}, {1, pad, P}, {0, pad, P}}},
		{"a drop keeps it dropped", `drop tcp any any -> any any (msg:"d"; content:"bad"; sid:1;)`, 0,
			[]frame{{0, "bad" + pad, D}, {1, pad, D}}},
		{"passed before a drop rule matches", `drop tcp any any -> any any (msg:"d"; content:"bad"; sid:1;)`, 250,
			[]frame{{0, pad, P}, {1, "bad" + pad, D}, {0, pad, D}}},
		{"bypass rule", `pass tcp any any <> any 80 (bypass; sid:1;)`, -1, []frame{{0, pad, B}, {1, pad, B}}},
		{"bypass rule for another port", `pass tcp any any <> any 443 (bypass; sid:1;)`, -1, []frame{{0, pad, P}}},
		{"pass rule without bypass", `pass tcp any any <> any 80 (sid:1;)`, -1, []frame{{0, pad, P}, {1, pad, P}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := rules.Parse(strings.NewReader(tc.rules), "test.rules")
			require.NoError(t, err)
			b := newBridge(&engine{}, peer.Config{A: peer.Side{Interface: "b0"}, B: peer.Side{Interface: "b1"}}, "", set)
			if tc.after >= 0 {
				b.bypassAfter = tc.after
				b.setRules(set)
			}
			h := b.rulesFactory(set).New(0)
			seq := [2]uint32{1000, 5000}
			for i, f := range tc.frames {
				var data []byte
				if f.dir == verdict.AToB {
					data = tcpFrame(macClient, macServer, ipClient, ipServer, 40000, 80, f.payload)
				} else {
					data = tcpFrame(macServer, macClient, ipServer, ipClient, 80, 40000, f.payload)
				}
				binary.BigEndian.PutUint32(data[14+20+4:], seq[f.dir])
				binary.BigEndian.PutUint32(data[14+20+8:], seq[1-f.dir])
				seq[f.dir] += uint32(len(f.payload))
				assert.Equal(t, f.want, h.Handle(packet(data, f.dir)), "frame %d", i)
			}
		})
	}
}

// TestHandlerBypassAllocs: deciding to bypass allocates nothing per frame.
func TestHandlerBypassAllocs(t *testing.T) {
	b := newBridge(&engine{}, peer.Config{A: peer.Side{Interface: "b0"}, B: peer.Side{Interface: "b1"}}, "", nil)
	b.bypassAfter = 1 << 40
	b.setRules(nil)
	h := b.rulesFactory(nil).New(0)
	p := packet(fromClient(""), verdict.AToB) // no payload: nothing for the stream to keep
	h.Handle(p)
	assert.Zero(t, testing.AllocsPerRun(1000, func() { h.Handle(p) }))
}
