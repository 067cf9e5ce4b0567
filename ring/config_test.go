package ring

import (
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConfigDefaults checks the geometry derived from the MTU, with and without the vnet header.
func TestConfigDefaults(t *testing.T) {
	if os.Getpagesize() != 4096 {
		t.Skipf("the expected sizes assume 4 KiB pages, not %d", os.Getpagesize())
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want Config
	}{
		{"zero", Config{},
			Config{Version: V2, MTU: 1500, FrameSize: 1584, BlockSize: 8192, FrameCount: 10240}},
		{"MTU 9000", Config{MTU: 9000},
			Config{Version: V2, MTU: 9000, FrameSize: 9088, BlockSize: 65536, FrameCount: 1792}},
		{"vnet", Config{VnetHdr: true},
			Config{Version: V2, MTU: 1500, VnetHdr: true, FrameSize: 69632, BlockSize: 1 << 20, FrameCount: 240}},
		{"vnet MTU 9000", Config{VnetHdr: true, MTU: 9000},
			Config{Version: V2, MTU: 9000, VnetHdr: true, FrameSize: 69632, BlockSize: 1 << 20, FrameCount: 240}},
		{"V3", Config{Version: V3},
			Config{Version: V3, MTU: 1500, BlockSize: 1 << 20, BlockCount: 16}},
		{"V3 vnet MTU 9000", Config{Version: V3, VnetHdr: true, MTU: 9000, BlockTimeout: 3 * time.Millisecond},
			Config{Version: V3, MTU: 9000, VnetHdr: true, BlockSize: 1 << 20, BlockCount: 16, BlockTimeout: 3 * time.Millisecond}},
		{"TX", Config{NoRX: true, TXFrameCount: 256},
			Config{Version: V2, MTU: 1500, NoRX: true, TXFrameSize: 1552, TXBlockSize: 8192, TXFrameCount: 260}},
		{"TX MTU 9000", Config{NoRX: true, TXFrameCount: 256, MTU: 9000},
			Config{Version: V2, MTU: 9000, NoRX: true, TXFrameSize: 9056, TXBlockSize: 65536, TXFrameCount: 259}},
		{"TX vnet", Config{NoRX: true, TXFrameCount: 256, VnetHdr: true},
			Config{Version: V2, MTU: 1500, NoRX: true, VnetHdr: true, TXFrameSize: 69632, TXBlockSize: 1 << 20, TXFrameCount: 270}},
		{"TX V3", Config{Version: V3, NoRX: true, TXFrameCount: 100},
			Config{Version: V3, MTU: 1500, NoRX: true, TXFrameSize: 1568, TXBlockSize: 8192, TXFrameCount: 100}},
		{"explicit", Config{FrameSize: 2048, FrameCount: 100, BlockSize: 16384, TXFrameCount: 7, TXFrameSize: 2048, TXBlockSize: 4096},
			Config{Version: V2, MTU: 1500, FrameSize: 2048, FrameCount: 104, BlockSize: 16384, TXFrameCount: 8, TXFrameSize: 2048, TXBlockSize: 4096}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.Resolve()
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			again, err := got.Resolve()
			require.NoError(t, err)
			assert.Equal(t, got, again, "resolving is idempotent")
		})
	}
}

// TestConfigLayout pins the slot layout the defaults derive from to what the kernel does.
func TestConfigLayout(t *testing.T) {
	assert.Equal(t, 66, rxMacOff(V2, false))
	assert.Equal(t, 76, rxMacOff(V2, true), "tp_mac with the vnet header on V2, as measured")
	assert.Equal(t, 82, rxMacOff(V3, false))
	assert.Equal(t, 92, rxMacOff(V3, true))
	assert.Equal(t, 76+65549, rxSlotNeed(V2, true, 1500), "tp_mac plus 65,549 bytes")
	assert.Equal(t, 32, txDataOff(V2))
	assert.Equal(t, 48, txDataOff(V3))
}

func TestPickBlockSize(t *testing.T) {
	for _, tc := range []struct{ frame, want int }{
		{1584, 8192}, {2048, 4096}, {9088, 65536}, {69632, 1 << 20}, {4096, 4096}, {3 << 20, 4 << 20},
	} {
		got := pickBlockSize(tc.frame, 4096)
		assert.Equal(t, tc.want, got, "frame %d", tc.frame)
		assert.GreaterOrEqual(t, got, tc.frame)
	}
}

// TestConfigErrors checks that impossible geometry is refused with a message saying what to
// change.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"version", Config{Version: 4}, "Version 4 is neither V2 nor V3"},
		{"MTU", Config{MTU: 50}, "MTU 50 is outside 68..65535"},
		{"negative", Config{FrameCount: -1}, "FrameCount -1 is negative"},
		{"negative timeout", Config{Version: V3, BlockTimeout: -time.Second}, "BlockTimeout -1s is negative"},
		{"frame alignment", Config{FrameSize: 2001}, "FrameSize 2001 is not a multiple of 16 (TPACKET_ALIGNMENT); use 2016"},
		{"frame too small", Config{FrameSize: 1024}, "FrameSize 1024 is too small for MTU 1500: a slot needs 1584 bytes"},
		{"frame too small for jumbo", Config{MTU: 9000, FrameSize: 2048}, "too small for MTU 9000: a slot needs 9084 bytes"},
		{"frame too small for GSO", Config{VnetHdr: true, FrameSize: 16384}, "FrameSize 16384 is too small for VnetHdr: a slot must hold a 64 KiB GSO super-frame"},
		{"block alignment", Config{BlockSize: 5000}, "BlockSize 5000 is not a multiple of the page size"},
		{"block holds no frame", Config{MTU: 9000, BlockSize: 4096}, "BlockSize 4096 cannot hold one 9088-byte frame"},
		{"V3 block too small", Config{Version: V3, BlockSize: 4096, MTU: 9000}, "BlockSize 4096 is too small for MTU 9000"},
		{"V3 block too small for GSO", Config{Version: V3, BlockSize: 65536, VnetHdr: true}, "too small for a 64 KiB GSO super-frame (VnetHdr): a block needs 65697 bytes; use at least 69632"},
		{"V3 block alignment", Config{Version: V3, BlockSize: 100000}, "BlockSize 100000 is not a multiple of the page size"},
		{"V3 with frames", Config{Version: V3, FrameCount: 10}, "FrameSize and FrameCount size V2 rings"},
		{"V2 with blocks", Config{BlockCount: 10}, "BlockCount 10 sizes V3 rings"},
		{"V2 with timeout", Config{BlockTimeout: time.Millisecond}, "BlockTimeout 1ms applies to V3 rings only"},
		{"timeout overflow", Config{Version: V3, BlockTimeout: 1 << 62}, "does not fit the kernel's 32-bit milliseconds"},
		{"NoRX with RX geometry", Config{NoRX: true, FrameSize: 2048, TXFrameCount: 1}, "NoRX is set but so is RX geometry"},
		{"nothing to map", Config{NoRX: true}, "nothing to map"},
		{"TX size without count", Config{TXFrameSize: 2048}, "TXFrameCount is 0, which means no TX ring"},
		{"TX alignment", Config{TXFrameCount: 8, TXFrameSize: 2050}, "TXFrameSize 2050 is not a multiple of 16"},
		{"TX too small", Config{TXFrameCount: 8, TXFrameSize: 1024}, "TXFrameSize 1024 is too small for MTU 1500: a slot needs 1550 bytes"},
		{"TX too small for vnet", Config{TXFrameCount: 8, TXFrameSize: 1552, VnetHdr: true}, "a slot needs 1560 bytes (32-byte header, then the 10-byte vnet header"},
		{"TX block alignment", Config{TXFrameCount: 8, TXBlockSize: 6000}, "TXBlockSize 6000 is not a multiple of the page size"},
		{"too large", Config{Version: V3, BlockSize: 1 << 30, BlockCount: 1 << 12}, "BlockCount 4096 makes a ring larger than the kernel accepts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.Resolve()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "ring: ")
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			_, ok := reflect.TypeFor[Config]().FieldByName(ce.Field)
			assert.True(t, ok, "Field %q names a Config field", ce.Field)
		})
	}
}

func TestCopyLargeGeometry(t *testing.T) {
	c, err := Config{MTU: 1500, VnetHdr: true, CopyLarge: true}.Resolve()
	require.NoError(t, err)
	assert.Less(t, c.FrameSize, 2048, "MTU-sized slots despite the vnet header")
	assert.GreaterOrEqual(t, c.FrameSize, rxMacOff(V2, true)+1500+14+4, "room for an MTU frame with a tag behind the vnet header")
	assert.Greater(t, c.FrameCount, 8000, "many more slots for the same memory")

	_, err = Config{Version: V3, CopyLarge: true}.Resolve()
	assert.ErrorContains(t, err, "V2 rings only")
}

// TestTXSlotSize: the slot size TXSlotSize gives is what Resolve needs for that frame, on both
// versions, with and without the vnet header.
func TestTXSlotSize(t *testing.T) {
	assert.Equal(t, 1568, TXSlotSize(V2, true, 1500+14+8), "32 + 10 + 1522, aligned")
	assert.Equal(t, 1584, TXSlotSize(V3, true, 1500+14+8), "48 + 10 + 1522, aligned")
	assert.Equal(t, TXSlotSize(V2, false, 100), TXSlotSize(0, false, 100), "0 is the default version")
	for _, v := range []Version{V2, V3} {
		for _, vnet := range []bool{false, true} {
			size := TXSlotSize(v, vnet, 1500+14+4)
			_, err := Config{Version: v, VnetHdr: vnet, TXFrameCount: 8, TXFrameSize: size, CopyLarge: v == V2}.Resolve()
			require.NoError(t, err, "%v vnet=%v", v, vnet)
			_, err = Config{Version: v, VnetHdr: vnet, TXFrameCount: 8, TXFrameSize: size - 16, CopyLarge: v == V2}.Resolve()
			assert.Error(t, err, "%v vnet=%v: one alignment unit less is too small", v, vnet)
		}
	}
}
