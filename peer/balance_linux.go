//go:build linux

package peer

import (
	"fmt"

	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/fanout/ippair"
)

// loadBalancer loads the IP-pair program when Config.ClusterType is fanout.EBPF. The bridge
// keeps it for its whole life, because a re-bind joins new sockets to new groups.
func (b *Bridge) loadBalancer() error {
	if b.cfg.ClusterType != fanout.EBPF {
		return nil
	}
	p, err := ippair.Load(nil)
	if err != nil {
		return fmt.Errorf("peer: cluster type ebpf: %w", err)
	}
	b.lb = p
	return nil
}

// balance gives a group of mode fanout.EBPF the IP-pair program.
func (b *Bridge) balance(g *fanout.Group) {
	if g.Mode == fanout.EBPF && b.lb != nil {
		g.ProgramFD = b.lb.FD()
	}
}

// closeBalancer unloads the program; groups still using it keep their own reference.
func (b *Bridge) closeBalancer() {
	if b.lb != nil {
		b.lb.Close()
		b.lb = nil
	}
}
