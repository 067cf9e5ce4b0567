//go:build linux

package ring

import (
	"os"
	"testing"
	"time"

	"github.com/afbridge/afbridge/internal/pktgen"
	"github.com/afbridge/afbridge/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWaitWithoutPoller: on a socket outside the runtime poller (no deadlines), Wait still
// returns when a frame arrives, and Close still wakes it with os.ErrClosed.
func TestWaitWithoutPoller(t *testing.T) {
	for _, v := range []Version{V2, V3} {
		t.Run(v.String(), func(t *testing.T) {
			p := testenv.NewPair(t, nil)
			sock := openSocket(t, p.Local, sockOpts{blocking: true})
			require.ErrorIs(t, sock.SetReadDeadline(time.Now()), os.ErrNoDeadline, "the socket is outside the poller")
			cfg := &Config{Version: v, TXFrameCount: 8}
			if v == V3 {
				cfg.BlockTimeout = time.Millisecond
			}
			m := newMap(t, sock, cfg)
			gen := openPktgen(t, p.Remote)
			local, remote := macs(t, p)

			errc := make(chan error, 1)
			go func() { errc <- m.RX.Wait() }()
			require.NoError(t, gen.Send(pktgen.Frame(nil, local, remote, 1, 100)))
			select {
			case err := <-errc:
				require.NoError(t, err)
			case <-time.After(30 * time.Second):
				t.Fatal("Wait did not return when a frame arrived")
			}
			var f Frame
			for m.RX.Next(&f) {
			}
			require.NoError(t, m.RX.Release())

			go func() { errc <- m.RX.Wait() }()
			waitInside(t, m, 1)
			require.NoError(t, m.Close())
			select {
			case err := <-errc:
				assert.ErrorIs(t, err, os.ErrClosed)
			case <-time.After(30 * time.Second):
				t.Fatal("Wait did not return after Close")
			}
		})
	}
}
