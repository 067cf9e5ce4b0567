//go:build !linux

package peer

import "fmt"

func checkCPUs(cpus []int) error {
	if len(cpus) == 0 {
		return nil
	}
	return fmt.Errorf("CPU pinning is implemented on Linux only")
}
