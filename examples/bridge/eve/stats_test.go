package eve

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStatsEventLayout: a stats event has Suricata's layout (event_type stats, stats.uptime,
// stats.capture.kernel_packets and kernel_drops, stats.ips.accepted, blocked and rejected),
// and none of an alert's fields.
func TestStatsEventLayout(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, 0)
	ts := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	require.True(t, w.Write(Event{Timestamp: Time(ts), EventType: "stats", Stats: &Stats{
		Uptime:  42,
		Capture: StatsCapture{KernelPackets: 1000, KernelDrops: 3},
		Decoder: StatsDecoder{Pkts: 997, Bytes: 123456},
		IPS:     StatsIPS{Accepted: 990, Blocked: 7, Rejected: 2, DropReason: map[string]uint64{"rules": 5, "port_down": 2}},
	}}))
	require.NoError(t, w.Close())
	assert.JSONEq(t, `{"timestamp":"2026-11-29T12:00:00.000000+0000","event_type":"stats","stats":{"uptime":42,
		"capture":{"kernel_packets":1000,"kernel_drops":3},"decoder":{"pkts":997,"bytes":123456},
		"ips":{"accepted":990,"blocked":7,"rejected":2,"drop_reason":{"port_down":2,"rules":5}}}}`, buf.String())
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m))
	assert.NotContains(t, m, "src_ip")
	assert.NotContains(t, m, "proto")
}
