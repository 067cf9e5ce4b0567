//go:build linux && !amd64 && !arm64

package ring

// prefetch is a no-op where the package has no prefetch instruction.
func prefetch(addr uintptr) {}
