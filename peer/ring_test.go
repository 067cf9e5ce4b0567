package peer

import (
	"testing"
	"time"

	"github.com/afbridge/afbridge/ring"
	"github.com/stretchr/testify/assert"
)

// FuzzRingOptions: whatever a caller puts in RingOptions, the ring configuration the bridge
// builds from it either fails Resolve (so Validate, and Start, refuse it) or has both an RX and
// a TX ring: no Config reaches a nil ring.
func FuzzRingOptions(f *testing.F) {
	f.Add(uint8(0), 0, 0, 0, 0, int64(0), 0, 0, 0, 1500, true)
	f.Add(uint8(3), 0, 0, 1<<20, 4, int64(time.Millisecond), 0, 0, 0, 9000, false)
	f.Add(uint8(2), 2048, 64, 0, 0, int64(0), 16, 2048, 4096, 1500, false)
	f.Fuzz(func(t *testing.T, v uint8, fs, fc, bs, bc int, bt int64, txc, txs, txb, mtu int, vnet bool) {
		o := RingOptions{Version: ring.Version(v % 5), FrameSize: fs % (1 << 20), FrameCount: fc % (1 << 16),
			BlockSize: bs % (1 << 24), BlockCount: bc % 1024, BlockTimeout: time.Duration(bt),
			TXFrameCount: txc % (1 << 16), TXFrameSize: txs % (1 << 20), TXBlockSize: txb % (1 << 24)}
		rc, err := ringConfig(o, mtu, vnet).Resolve()
		if err != nil {
			return
		}
		assert.False(t, rc.NoRX, "an RX ring")
		assert.Positive(t, rc.TXFrameCount, "a TX ring")
		assert.Equal(t, vnet, rc.VnetHdr)
		assert.Equal(t, mtu, rc.MTU)
	})
}
