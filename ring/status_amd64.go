//go:build linux

package ring

import "unsafe"

// storeStatus needs only release ordering, and on amd64 every store is a release (TSO: a store
// is never reordered with earlier loads or stores), so a plain MOV does. atomic.StoreUint32
// would be an XCHG, a full barrier that stalls until the status line, last written by the
// kernel on another CPU, is owned again: once per frame, it cost 3% of the bridge's CPU in
// perf. What keeps the compiler from sinking an earlier load of the frame below this store is
// the gc compiler's scheduling (a load is placed before the next store to memory; loads are
// never moved past it), not a guarantee of the Go memory model; TestRXFrames and the peer
// tests check every frame's bytes, and status_other.go is the fallback if that ever changes.
func storeStatus(b []byte, v uint32) { *(*uint32)(unsafe.Pointer(&b[0])) = v }
