package eve_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/afbridge/afbridge/examples/bridge/eve"
)

// Example opens an EVE log as the bridge does: regular files only, failures reported as they
// happen, one event a line.
func Example() {
	dir, err := os.MkdirTemp("", "eve-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "eve.json")

	w, err := eve.Open(path, &eve.Options{OnError: func(err error, lost uint64) {
		fmt.Printf("EVE log: %d events lost: %v\n", lost, err)
	}})
	if err != nil {
		panic(err)
	}
	port := uint16(80)
	w.Write(eve.Event{
		Timestamp: eve.Time(time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)),
		EventType: "alert", SrcIP: "198.18.0.1", DestIP: "198.18.0.2", DestPort: &port, Proto: "TCP",
		Alert: &eve.Alert{Action: eve.Blocked, GID: 1, SignatureID: 1, Signature: "demo block", Severity: 3},
	})
	if err := w.Close(); err != nil {
		panic(err)
	}
	b, _ := os.ReadFile(path)
	fmt.Print(string(b))
	fmt.Println("written", w.Written(), "failed", w.Failed())

	// A symbolic link (or a FIFO, or a device) is refused unless AllowSpecial.
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(path, link); err != nil {
		panic(err)
	}
	_, err = eve.Open(link, nil)
	fmt.Println(errors.Is(err, eve.ErrSpecial))
	// Output:
	// {"timestamp":"2026-11-29T12:00:00.000000+0000","event_type":"alert","src_ip":"198.18.0.1","dest_ip":"198.18.0.2","dest_port":80,"proto":"TCP","alert":{"action":"blocked","gid":1,"signature_id":1,"rev":0,"signature":"demo block","category":"","severity":3}}
	// written 1 failed 0
	// true
}
