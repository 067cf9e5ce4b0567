//go:build linux

package ring

import "unsafe"

// storeStatus needs only release ordering, and on amd64 every store is a release (TSO: a store
// is never reordered with earlier loads or stores), so a plain MOV does. atomic.StoreUint32
// would be an XCHG, a full barrier that stalls until the status line, last written by the
// kernel on another CPU, is owned again: once per frame, it cost 3% of the bridge's CPU in
// perf. The Go compiler keeps stores in program order after the loads that precede them, and
// the copy out of or into the frame is a call (memmove) it cannot move across.
func storeStatus(b []byte, v uint32) { *(*uint32)(unsafe.Pointer(&b[0])) = v }
