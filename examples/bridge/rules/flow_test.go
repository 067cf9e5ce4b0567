package rules

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlow(t *testing.T) {
	tests := []struct {
		in, want string // want "" means the input itself
	}{
		{`alert tcp any any -> any 80 (content:"x"; flow:established,to_server; sid:1;)`, ""},
		{`alert tcp any any -> any 80 (flow: from_client , Established; sid:1;)`,
			`alert tcp any any -> any 80 (flow:established,to_server; sid:1;)`},
		{`alert udp any any -> any any (flow:to_client; sid:1;)`, ""},
		{`alert udp any any -> any any (flow:from_server,not_established; sid:1;)`,
			`alert udp any any -> any any (flow:not_established,to_client; sid:1;)`},
		{`alert udp any any -> any any (flow:stateless; sid:1;)`, `alert udp any any -> any any (sid:1;)`},
	}
	for _, tt := range tests {
		want := tt.want
		if want == "" {
			want = tt.in
		}
		r := parseOne(t, tt.in)
		assert.Equal(t, want, r.String())
		assert.Equal(t, want, parseOne(t, r.String()).String(), "round trip")
	}
	for in, msg := range map[string]string{
		`alert tcp any any -> any any (flow:to_server,to_client; sid:1;)`:         "exclude each other",
		`alert tcp any any -> any any (flow:established,not_established; sid:1;)`: "exclude each other",
		`alert tcp any any -> any any (flow:only_stream; sid:1;)`:                 `unknown flow option "only_stream"`,
		`alert tcp any any -> any any (flow:to_server; flow:established; sid:1;)`: `duplicate option "flow"`,
		`alert tcp any any -> any any (flow; sid:1;)`:                             `needs a value`,
	} {
		_, err := Parse(strings.NewReader(in), "test.rules")
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), msg, in)
	}
}

func TestMatchFlow(t *testing.T) {
	s := mustParse(t, `drop tcp any any -> any 80 (content:"GET"; flow:established,to_server; sid:1;)
alert tcp any any -> any 80 (flow:not_established; sid:2;)
alert tcp any any -> any any (flow:to_client; sid:3;)
alert tcp any any -> any any (content:"GET"; sid:4;)`)
	frame := tcp4("198.18.0.1", "198.18.0.2", 40000, 80, "GET / HTTP/1.1\r\n").build()
	tests := []struct {
		flow Flow
		want []uint32
	}{
		{0, []uint32{4}}, // no flow tracking: rules with a flow option never match
		{FlowToServer | FlowEstablished, []uint32{1, 4}},
		{FlowToServer | FlowNotEstablished, []uint32{2, 4}},
		{FlowToClient | FlowEstablished, []uint32{3, 4}},
	}
	for _, tt := range tests {
		r := Result{Flow: tt.flow}
		s.Match(frame, &r)
		assert.Equal(t, tt.want, sids(r.Alerts), "flow %v", tt.flow)
		assert.Equal(t, tt.flow, r.Flow, "Match leaves Flow alone")
	}
}
