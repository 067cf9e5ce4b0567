//go:build linux

package peer_test

import (
	"testing"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/ring"
	"github.com/afbridge/afbridge/verdict"
	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"
)

// TestRingV3 runs the bridge on TPACKET_V3 rings (Suricata's tpacket-v3: yes): tagged and
// untagged frames arrive exactly once, and TCP with offloads on crosses it.
func TestRingV3(t *testing.T) {
	tp := newTopo(t, nil)
	cfg := tp.config(2)
	cfg.A.Ring.Version, cfg.B.Ring.Version = ring.V3, ring.V3
	br := tp.start(t, cfg)
	client, server := tp.open(t)
	var frames [][]byte
	for i := range 600 {
		f := pktgen.Frame(nil, tp.sIfi.HardwareAddr, tp.cIfi.HardwareAddr, uint32(i), 60+i*2)
		if i%2 == 1 {
			f = pktgen.Tag(f, unix.ETH_P_8021AD, uint16(i))
		}
		frames = append(frames, f)
	}
	checkExact(t, frames, exchange(t, client, server, frames))
	tcpTransfer(t, tp, 4<<20)
	c := br.Stats().Dir(verdict.AToB)
	assert.Zero(t, c.Truncated+c.Oversize+c.TXErrors)
}
