//go:build linux

package pktgen

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCheck(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	for _, size := range []int{MinSize, 60, 1514, 9014} {
		f := Frame(nil, mac, mac, uint32(size), size)
		seq, ok := Check(f)
		assert.True(t, ok, "size %d intact", size)
		assert.Equal(t, uint32(size), seq)
		if size > HeaderLen {
			f[len(f)-1] ^= 1
			_, ok = Check(f)
			assert.False(t, ok, "size %d: a flipped payload bit is caught", size)
		}
		_, ok = Check(f[:len(f)-1])
		assert.False(t, ok, "size %d: a short frame is caught", size)
	}
	f := Frame(nil, mac, mac, 7, 1514)
	assert.Zero(t, testing.AllocsPerRun(100, func() { Check(f) }))
}
