package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile("testdata/suricata.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(with())
	f.Add(with("    threads: auto", "  - interface: default", "    threads: 2", "    copy-mode: tap"))
	f.Add(with("    threads: lots", "    foo: 1"))
	f.Add(with("  - interface: eth0"))
	f.Add(doc("af-packet:", "  - interface: eth0", "    threads: &n 6", "  - interface: eth1", "    threads: *n"))
	f.Add(doc("%YAML 1.1", "---", "af-packet:", "  - interface: eth0", "---", "x: 1"))
	f.Add(doc("af-packet: *a"))
	f.Add(doc("? [a]", ": b", "af-packet: {interface: eth0}"))
	f.Add(doc("af-packet:", "  - [interface, eth0]"))
	f.Add([]byte("\x00"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data, "f.yaml")
		if err != nil {
			if file != nil {
				t.Fatal("Parse returned both a File and an error")
			}
			checkErrors(t, err)
			return
		}
		for _, n := range file.Notes {
			if !strings.HasPrefix(n, "f.yaml:") {
				t.Fatalf("note without the file name: %q", n)
			}
		}
		for _, i := range file.Interfaces {
			if i.Name == "" || i.Threads < 1 || i.ClusterType == 0 || i.ChecksumChecks == 0 {
				t.Fatalf("unresolved interface: %+v", i)
			}
		}
		bridges, err := file.Bridges()
		if err != nil {
			checkErrors(t, err)
			return
		}
		for _, b := range bridges {
			if b.A.CopyIface != b.B.Name || b.B.CopyIface != b.A.Name || b.A.Threads != b.B.Threads {
				t.Fatalf("bad bridge: %+v", b)
			}
		}
	})
}

// checkErrors fails unless every error in err is a *Error naming the file.
func checkErrors(t *testing.T, err error) {
	t.Helper()
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	for _, e := range list {
		var ce *Error
		if !errors.As(e, &ce) || ce.File != "f.yaml" {
			t.Fatalf("not a *Error for f.yaml: %T %v", e, e)
		}
	}
}
