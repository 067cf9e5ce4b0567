//go:build linux

package ippair_test

import (
	"fmt"
	"log"
	"os"
	"testing"

	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/fanout/ippair"
	"github.com/afbridge/afbridge/internal/testenv"
)

// Example loads the program and joins a packet socket to a group it balances. Every member joins
// with the same Group; the program can be closed once all have joined.
func Example() {
	prog, err := ippair.Load(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer prog.Close()

	g := prog.Group(42, fanout.FlagIgnoreOutgoing)
	fmt.Println(g.Mode, g.ProgramFD > 0)

	var sock *os.File // an AF_PACKET socket bound to an interface with ETH_P_ALL
	if sock != nil {
		if _, err := fanout.Join(sock, g); err != nil {
			log.Fatal(err)
		}
	}
}

// TestExample runs Example's body where it can load a program.
func TestExample(t *testing.T) {
	testenv.RequirePriv(t)
	Example()
}
