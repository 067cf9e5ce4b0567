//go:build linux && !amd64

package ring

import (
	"sync/atomic"
	"unsafe"
)

// storeStatus uses the atomic store, a store-release on every other architecture Go supports
// (STLR on arm64).
func storeStatus(b []byte, v uint32) { atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[0])), v) }
