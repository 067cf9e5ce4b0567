//go:build linux

package peer

import (
	"fmt"

	"github.com/afbridge/afbridge/fanout"
	"github.com/afbridge/afbridge/fanout/ippair"
)

// loadBalancer loads the IP-pair program when Config.ClusterType is fanout.EBPF and there is
// more than one worker (see balance). The bridge
// keeps it for its whole life, because a re-bind joins new sockets to new groups.
func (b *Bridge) loadBalancer() error {
	if b.cfg.ClusterType != fanout.EBPF || b.cfg.Workers() == 1 {
		return nil
	}
	p, err := ippair.Load(nil)
	if err != nil {
		return fmt.Errorf("peer: cluster type ebpf: %w", err)
	}
	b.lb = p
	return nil
}

// balance gives a group of mode fanout.EBPF the IP-pair program. A group of one member (one
// worker) joins in fanout.CPU mode whatever Config.ClusterType says: every mode sends every
// frame to its only member, but hash mode dissects and hashes each frame to find that out. A
// group with one member uses no program either.
func (b *Bridge) balance(g *fanout.Group) {
	if b.cfg.Workers() == 1 {
		g.Mode, g.Program, g.ProgramFD = fanout.CPU, nil, 0
		return
	}
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
