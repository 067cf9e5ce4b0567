package verdict

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// BPF returns a Handler that runs a classic BPF program over each frame (as Data, VLAN tag
// included) in golang.org/x/net/bpf's virtual machine, with tcpdump's convention: a program that
// returns 0 drops the frame, any other value passes it. A program that fails at run time (for
// example, a load beyond the frame) returns 0 and so drops, as the kernel's filter would.
//
// The returned Handler is safe for concurrent use.
func BPF(prog []bpf.Instruction) (Handler, error) {
	if len(prog) == 0 {
		return nil, fmt.Errorf("verdict: empty BPF program")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		return nil, fmt.Errorf("verdict: BPF program: %w", err)
	}
	return Func(func(p *Packet) Verdict {
		n, err := vm.Run(p.Data)
		if err != nil || n == 0 {
			return Drop
		}
		return Pass
	}), nil
}
