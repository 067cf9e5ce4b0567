//go:build linux && (amd64 || arm64)

package ring

// prefetch asks the CPU to start loading the cache line at addr and returns at once; it never
// faults, so addr need not be mapped. A load would do the same but hold the core until the line
// arrives; a frame the kernel wrote on another CPU is a cross-core miss, and a load-based
// read-ahead would only move that stall.
func prefetch(addr uintptr)
