package verdict_test

import (
	"bytes"
	"fmt"

	"github.com/afbridge/afbridge/verdict"
)

// A per-worker verdict with state and no lock: it drops frames that carry a marker and counts what
// it saw. The bridge asks the Factory once per worker; here two workers are simulated.
func Example() {
	type counting struct{ seen, dropped int }
	stats := make([]*counting, 2)
	factory := verdict.FactoryFunc(func(worker int) verdict.Handler {
		st := &counting{}
		stats[worker] = st
		return verdict.Func(func(p *verdict.Packet) verdict.Verdict {
			st.seen++
			if bytes.Contains(p.Data, []byte("forbidden")) {
				st.dropped++
				return verdict.Drop
			}
			return verdict.Pass
		})
	})

	h0, h1 := factory.New(0), factory.New(1)
	fmt.Println(h0.Handle(&verdict.Packet{Data: []byte("GET /index.html")}))
	fmt.Println(h0.Handle(&verdict.Packet{Data: []byte("GET /forbidden")}))
	fmt.Println(h1.Handle(&verdict.Packet{Data: []byte("GET /")}))
	fmt.Printf("worker 0: %+v, worker 1: %+v\n", *stats[0], *stats[1])
	// Output:
	// pass
	// drop
	// pass
	// worker 0: {seen:2 dropped:1}, worker 1: {seen:1 dropped:0}
}
