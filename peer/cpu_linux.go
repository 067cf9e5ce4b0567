//go:build linux

package peer

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// checkCPUs reports a CPU in cpus that the calling thread may not run on.
func checkCPUs(cpus []int) error {
	if len(cpus) == 0 {
		return nil
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return os.NewSyscallError("sched_getaffinity", err)
	}
	for _, c := range cpus {
		if c < 0 || c >= len(allowed)*64 || !allowed.IsSet(c) {
			return fmt.Errorf("CPU %d is not one this process may run on (it may use %s); see taskset(1) and /sys/devices/system/cpu/online",
				c, cpuList(&allowed))
		}
	}
	return nil
}

// cpuList formats a CPU set as "0-3,6".
func cpuList(s *unix.CPUSet) string {
	out := ""
	for c := 0; c < len(s)*64; c++ {
		if !s.IsSet(c) {
			continue
		}
		end := c
		for end+1 < len(s)*64 && s.IsSet(end+1) {
			end++
		}
		if out != "" {
			out += ","
		}
		if end == c {
			out += fmt.Sprint(c)
		} else {
			out += fmt.Sprintf("%d-%d", c, end)
		}
		c = end
	}
	return out
}

// pin locks the calling goroutine to its OS thread and that thread to cpu. The goroutine must
// exit without unlocking, so the runtime ends the pinned thread instead of reusing it.
func pin(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return os.NewSyscallError("sched_setaffinity", err)
	}
	return nil
}
