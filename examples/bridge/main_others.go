//go:build !linux

package main

import (
	"fmt"
	"os"
	"runtime"
)

// The bridge needs AF_PACKET sockets and network namespaces, which only Linux has.
func main() {
	fmt.Fprintf(os.Stderr, "bridge: runs on Linux only (AF_PACKET), not on %s\n", runtime.GOOS)
	os.Exit(1)
}
