package rules

import "slices"

// The port pre-filter: with tens of thousands of rules, most of them name a
// destination port (ET Open: 80, 443, 53, ...). Rules whose destination, or
// else source, port field is a short positive list (exact ports and small
// ranges) are indexed by each port they name; every other rule goes in a list
// shared by all frames of its protocol group. A frame then checks only the
// shared rules of its group and the rules indexed under its own two ports, as
// Suricata's signature group heads do, so its cost does not grow with rules
// for other ports.

// maxIndexPorts is the most ports one rule may name and still be indexed;
// a rule naming more goes in the shared list, which bounds the index at
// maxIndexPorts entries per rule.
const maxIndexPorts = 128

// portGroups are the protocol groups whose frames carry ports.
var portGroups = [numGroups]int{groupTCP: 1, groupUDP: 2}

// portTable lists rules by one port of a frame, in file order:
// ids[start[p]:start[p+1]] for port p. region[p] is the widest region the
// content rules indexed under p scan.
type portTable struct {
	start  []int32 // 65537 entries
	ids    []int32
	region []scanRegion // 65536 entries
}

// lookup returns the rules indexed under port p.
func (t *portTable) lookup(p uint16) []int32 {
	if t == nil {
		return nil
	}
	return t.ids[t.start[p]:t.start[int(p)+1]]
}

// scanOf returns the region the content rules indexed under p scan.
func (t *portTable) scanOf(p uint16) scanRegion {
	if t == nil {
		return scanNone
	}
	return t.region[p]
}

// portTableBuilder collects (port, rule) pairs in file order.
type portTableBuilder struct {
	count  []int32 // per port
	pairs  []uint64
	region []scanRegion
}

func (b *portTableBuilder) add(ports []uint16, rule int32, content bool, region scanRegion) {
	if b.count == nil {
		b.count = make([]int32, 1<<16)
		b.region = make([]scanRegion, 1<<16)
	}
	for _, p := range ports {
		if content {
			b.region[p] = max(b.region[p], region)
			continue
		}
		b.count[p]++
		b.pairs = append(b.pairs, uint64(p)<<32|uint64(rule))
	}
}

func (b *portTableBuilder) build() *portTable {
	if b.count == nil {
		return nil
	}
	t := &portTable{start: make([]int32, 1<<16+1), ids: make([]int32, len(b.pairs)), region: b.region}
	for p, n := range b.count {
		t.start[p+1] = t.start[p] + n
	}
	fill := make([]int32, 1<<16)
	copy(fill, t.start)
	for _, pr := range b.pairs { // in file order, so each port's list is too
		p := pr >> 32
		t.ids[fill[p]] = int32(uint32(pr))
		fill[p]++
	}
	return t
}

// indexPorts returns the ports a port list matches when it is a positive
// list of at most maxIndexPorts ports, else nil.
func indexPorts(l *list) []uint16 {
	if l.any {
		return nil
	}
	var out []uint16
	if !l.appendPorts(&out) {
		return nil
	}
	return out
}

func (l *list) appendPorts(out *[]uint16) bool {
	for i := range l.items {
		it := &l.items[i]
		switch {
		case it.neg, it.any:
			return false
		case it.sub != nil:
			if !it.sub.appendPorts(out) {
				return false
			}
		default:
			if len(*out)+int(it.hi)-int(it.lo)+1 > maxIndexPorts {
				return false
			}
			for p := int(it.lo); p <= int(it.hi); p++ {
				*out = append(*out, uint16(p))
			}
		}
	}
	return true
}

// dedupPorts sorts ports and removes repeats, so that a rule is listed once
// per port even when its list names a port twice.
func dedupPorts(ports []uint16) []uint16 {
	slices.Sort(ports)
	return slices.Compact(ports)
}

// The address pre-filter, for rules without content that the port index does
// not hold: ET's block lists name a few to hundreds of source networks and no
// port, and checking each of thousands of such lists per frame would cost
// more than the rest of Match. A rule whose source (else destination) field
// is a positive list of IPv4 networks of /8 or longer is indexed by the top
// 16 bits of every address it covers, in a table of the same shape as the
// port index. An IPv6 frame skips these tables: an IPv4 network never holds
// an IPv6 address.

// maxIndexNets is the most /16 keys one rule may cover and still be indexed.
const maxIndexNets = 1024

// indexNets returns the /16 keys an address list covers when it is a
// positive list of IPv4 networks of /8 or longer with at most maxIndexNets
// keys, else nil.
func indexNets(l *list) []uint16 {
	if l.any {
		return nil
	}
	var out []uint16
	if !l.appendNets(&out) {
		return nil
	}
	return dedupPorts(out)
}

func (l *list) appendNets(out *[]uint16) bool {
	for i := range l.items {
		it := &l.items[i]
		switch {
		case it.neg, it.any:
			return false
		case it.sub != nil:
			if !it.sub.appendNets(out) {
				return false
			}
		default:
			if !it.prefix.Addr().Is4() || it.prefix.Bits() < 8 {
				return false
			}
			a := it.prefix.Masked().Addr().As4()
			first := uint16(a[0])<<8 | uint16(a[1])
			n := 1
			if b := it.prefix.Bits(); b < 16 {
				n = 1 << (16 - b)
			}
			if len(*out)+n > maxIndexNets {
				return false
			}
			for k := range n {
				*out = append(*out, first+uint16(k))
			}
		}
	}
	return true
}

// netKey returns the key of an IPv4 address in the address index.
func netKey(a [4]byte) uint16 { return uint16(a[0])<<8 | uint16(a[1]) }
