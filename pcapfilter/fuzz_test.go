package pcapfilter_test

import (
	"testing"

	"github.com/afbridge/afbridge/pcapfilter"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/bpf"
)

// FuzzCompile: Compile never panics, and every program it returns is valid for the VM and
// the kernel (bounded jumps, a return at the end, at most MaxInstructions) and terminates on
// any frame.
func FuzzCompile(f *testing.F) {
	for _, e := range exprs {
		f.Add(e)
	}
	for _, e := range vlanExprs {
		f.Add(e)
	}
	for _, e := range []string{"host example.com", "port http", "(tcp or", "ip[0:3] = 1", "len / 0 = 1",
		"host (198.18.0.1 or not 198.18.0.2)", "\\tcp", "ip6[40:4] > 0x7fffffff", "- - - len = 0"} {
		f.Add(e)
	}
	frames := corpus(64, 6)
	f.Fuzz(func(t *testing.T, expr string) {
		for _, cfg := range []*pcapfilter.Config{nil, {TagsInFrame: true}} {
			prog, err := pcapfilter.Compile(expr, cfg)
			if err != nil {
				var e *pcapfilter.Error
				require.ErrorAs(t, err, &e)
				require.Equal(t, expr, e.Expr)
				require.Nil(t, prog)
				continue
			}
			require.NotEmpty(t, prog)
			require.LessOrEqual(t, len(prog), pcapfilter.MaxInstructions)
			raw, err := bpf.Assemble(prog)
			require.NoError(t, err)
			if cfg != nil {
				vm, err := bpf.NewVM(prog)
				require.NoError(t, err)
				for _, fr := range frames {
					v, err := vm.Run(fr)
					require.NoError(t, err)
					require.Equal(t, uint32(v), run(raw, skb{data: fr}).ret)
				}
				continue
			}
			for _, fr := range frames {
				run(raw, kernelView(fr)) // panics on a jump out of the program
			}
		}
	})
}
