package pcapfilter

import (
	"net/netip"
	"strconv"
	"strings"
)

// The syntax tree. Boolean nodes are compiled in textual order, because a vlan primitive
// shifts the offsets of everything compiled after it, as libpcap's does.
type node interface{}

type (
	nAnd  struct{ a, b node }
	nOr   struct{ a, b node }
	nNot  struct{ a node }
	nTrue struct{} // the empty expression

	nLinkProto struct{ proto uint32 } // ether proto N, ip, ip6, arp, rarp
	nIPProto   struct {
		v4, v6 bool
		proto  uint32
	} // tcp, udp, …, ip proto N, ip6 proto N, proto N
	nHost4 struct {
		proto      pq // pDefault (ip, arp and rarp), pIP, pARP, pRARP
		dir        dir
		addr, mask uint32
	}
	nHost6 struct {
		dir        dir
		addr, mask [16]byte
	}
	nEther struct {
		dir dir
		mac [6]byte
	}
	nPort struct {
		proto  pq // pDefault (sctp, tcp and udp), pTCP, pUDP, pSCTP
		dir    dir
		lo, hi uint32
		rng    bool
	}
	nBroadcast struct{ ip bool }
	nMulticast struct{ proto pq } // pLink, pIP, pIP6
	nVLAN      struct {
		id    uint32
		hasID bool
	}
	nRel struct {
		op   string
		a, b arith
	}
)

type arith interface{}

type (
	aConst struct{ v uint32 }
	aLen   struct{}
	aLoad  struct {
		proto pq
		idx   arith
		size  int
	}
	aBin struct {
		op   string
		a, b arith
		col  int
	}
	aNeg struct{ a arith }
)

// pq is a protocol qualifier.
type pq uint8

const (
	pDefault pq = iota
	pLink
	pIP
	pIP6
	pARP
	pRARP
	pTCP
	pUDP
	pSCTP
	pICMP
	pICMP6
	pIGMP
)

var protoNames = map[string]pq{
	"ether": pLink, "link": pLink, "ip": pIP, "ip6": pIP6, "arp": pARP, "rarp": pRARP,
	"tcp": pTCP, "udp": pUDP, "sctp": pSCTP, "icmp": pICMP, "icmp6": pICMP6, "igmp": pIGMP,
}

// ipProtoNum is the IP protocol number of the transport qualifiers.
var ipProtoNum = map[pq]uint32{pTCP: 6, pUDP: 17, pSCTP: 132, pICMP: 1, pICMP6: 58, pIGMP: 2}

func (p pq) String() string {
	for k, v := range protoNames {
		if v == p && k != "link" {
			return k
		}
	}
	return "no protocol"
}

type dir uint8

const (
	dOr dir = iota // src or dst, the default
	dSrc
	dDst
	dAnd
)

type typ uint8

const (
	tyDefault typ = iota
	tyHost
	tyNet
	tyPort
	tyPortrange
)

// quals are the qualifiers of a primitive; a bare id after and/or inherits the last ones
// ("host 198.18.0.1 or 198.18.0.2").
type quals struct {
	proto pq
	dir   dir
	typ   typ
	ok    bool // false after a primitive that leaves nothing to inherit (tcp, vlan, len > 1)
}

// Named constants of pcap-filter(7), which libpcap's scanner turns into numbers.
var namedConst = map[string]uint32{
	"icmptype": 0, "icmpcode": 1, "tcpflags": 13,
	"icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
	"icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
	"icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
	"icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,
	"tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08, "tcp-ack": 0x10,
	"tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
	"icmp6type": 0, "icmp6code": 1,
	"icmp6-destinationunreach": 1, "icmp6-packettoobig": 2, "icmp6-timeexceeded": 3,
	"icmp6-parameterproblem": 4, "icmp6-echo": 128, "icmp6-echoreply": 129,
	"icmp6-multicastlistenerquery": 130, "icmp6-multicastlistenerreportv1": 131,
	"icmp6-multicastlistenerdone": 132, "icmp6-routersolicit": 133,
	"icmp6-routeradvert": 134, "icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136,
	"icmp6-redirect": 137,
}

// Protocol names accepted after a backslash: \tcp for ip proto, \ip for ether proto.
var ipProtoByName = map[string]uint32{
	"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "icmp6": 58,
	"ipv6-icmp": 58, "pim": 103, "vrrp": 112, "sctp": 132,
}

var etherTypeByName = map[string]uint32{"ip": 0x800, "ip6": 0x86dd, "arp": 0x806, "rarp": 0x8035}

var keywords = map[string]bool{
	"and": true, "or": true, "not": true, "host": true, "net": true, "mask": true, "port": true,
	"portrange": true, "src": true, "dst": true, "proto": true, "vlan": true, "less": true,
	"greater": true, "len": true, "broadcast": true, "multicast": true, "gateway": true,
}

// Primitives and qualifiers of pcap-filter(7) that this package refuses with ErrUnsupported.
var unsupportedWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`mpls pppoed pppoes geneve vxlan protochain decnet atalk aarp
		iso esis es-is isis is-is clnp stp ipx netbeui lat moprc mopdl sca inbound outbound ifname
		on rnr rulenum reason rset ruleset srnr subrulenum action wlan type subtype dir addr1 addr2
		addr3 addr4 ra ta fddi tr pim vrrp carp igrp ah esp llc slip ppp iso l1 l2 iih lsp snp csnp
		psnp atm lane oamf4 oamf4s oamf4e oam metac bcc sc ilmic connectmsg metaconnect vpi vci
		hdlc fisu lssu msu sio opc dpc sls hsio hopc hdpc hsls radio`) {
		unsupportedWords[w] = true
	}
}

type parser struct {
	toks []token
	pos  int
	last quals
}

func parse(expr string) (node, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	if p.peek().kind == tEOF {
		return nTrue{}, nil
	}
	n, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.expected(t, `"and", "or" or the end of the expression`)
	}
	return n, nil
}

func (p *parser) peek() token        { return p.toks[p.pos] }
func (p *parser) peekAt(i int) token { return p.toks[min(p.pos+i, len(p.toks)-1)] }
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) expected(t token, what string) error {
	return errorf(ErrSyntax, t.col, "expected %s, found %s", what, t)
}

func isAnd(t token) bool { return t.is("and") || t.is("&&") }
func isOr(t token) bool  { return t.is("or") || t.is("||") }
func isNot(t token) bool { return t.is("not") || t.is("!") }

// expr: and and or have equal precedence and associate to the left (pcap-filter(7)).
func (p *parser) expr() (node, error) {
	n, err := p.term()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if !isAnd(t) && !isOr(t) {
			return n, nil
		}
		p.next()
		m, err := p.term()
		if err != nil {
			return nil, err
		}
		if isAnd(t) {
			n = nAnd{n, m}
		} else {
			n = nOr{n, m}
		}
	}
}

func (p *parser) term() (node, error) {
	if isNot(p.peek()) {
		p.next()
		n, err := p.term()
		if err != nil {
			return nil, err
		}
		return nNot{n}, nil
	}
	return p.primary()
}

func (p *parser) primary() (node, error) {
	t := p.peek()
	switch {
	case t.is("("):
		// Either a parenthesised expression or the start of an arithmetic relation,
		// "(ip[0] & 0xf) > 5": try the relation first and keep the error that got further.
		start, saved := p.pos, p.last
		rel, relErr := p.relation()
		if relErr == nil {
			p.last = quals{}
			return rel, nil
		}
		p.pos, p.last = start, saved
		p.next()
		// As in libpcap, an id right after "(" has nothing to inherit.
		p.last = quals{}
		n, err := p.expr()
		if err == nil {
			if c := p.peek(); !c.is(")") {
				err = p.expected(c, `")"`)
			}
		}
		if err != nil {
			if col(relErr) > col(err) {
				return nil, relErr
			}
			return nil, err
		}
		p.next()
		return n, nil
	case t.is("-") || t.is("len") || (t.kind == tWord && isNumberWord(t.text) && startsArith(p.peekAt(1))):
		return p.relationPrim()
	case t.kind == tWord && protoNames[t.text] != pDefault && p.peekAt(1).is("["):
		return p.relationPrim()
	case t.is("vlan"):
		p.next()
		p.last = quals{}
		if w := p.peek(); w.kind == tWord && isNumberWord(w.text) {
			id, err := p.number(0xfff, "a VLAN id")
			if err != nil {
				return nil, err
			}
			return nVLAN{id: id, hasID: true}, nil
		}
		return nVLAN{}, nil
	case t.is("less") || t.is("greater"):
		p.next()
		p.last = quals{}
		v, err := p.number(0xffffffff, "a length")
		if err != nil {
			return nil, err
		}
		if t.text == "less" {
			return nRel{op: "<=", a: aLen{}, b: aConst{v}}, nil
		}
		return nRel{op: ">=", a: aLen{}, b: aConst{v}}, nil
	}
	return p.qualified()
}

func col(err error) int {
	if e, ok := err.(*Error); ok {
		return e.Column
	}
	return 0
}

// qualified parses [proto] [dir] [type] id, a protocol alone ("tcp"), proto N, broadcast,
// multicast, or a bare id that inherits the previous qualifiers.
func (p *parser) qualified() (node, error) {
	start := p.peek()
	q := quals{ok: true}
	head := false
	if t := p.peek(); t.kind == tWord && protoNames[t.text] != pDefault {
		q.proto = protoNames[t.text]
		p.next()
		head = true
	}
	if t := p.peek(); head && t.kind == tWord && unsupportedWords[t.text] {
		return nil, errorf(ErrUnsupported, t.col, "%s is valid pcap-filter but not compiled by pcapfilter", t)
	}
	sawDir := false
	if d, ok := p.dir(); ok {
		q.dir = d
		head, sawDir = true, true
	}
	t := p.peek()
	switch {
	case t.is("host"):
		q.typ = tyHost
	case t.is("net"):
		q.typ = tyNet
	case t.is("port"):
		q.typ = tyPort
	case t.is("portrange"):
		q.typ = tyPortrange
	case t.is("gateway"):
		return nil, errorf(ErrUnsupported, t.col, `"gateway" needs host name lookups, which pcapfilter does not do`)
	case t.is("proto") && q.dir == dOr:
		p.next()
		p.last = quals{}
		return p.protoPrim(q.proto, t)
	case (t.is("broadcast") || t.is("multicast")) && q.dir == dOr:
		p.next()
		p.last = quals{}
		return p.castPrim(q.proto, t)
	}
	if q.typ != tyDefault {
		p.next()
		head = true
	}
	if !head {
		if start.kind == tWord && unsupportedWords[start.text] {
			return nil, errorf(ErrUnsupported, start.col, "%s is valid pcap-filter but not compiled by pcapfilter", start)
		}
		if start.kind == tWord && keywords[start.text] {
			return nil, p.expected(start, "a primitive (host, net, port, a protocol, …)")
		}
		if start.kind != tWord && !start.is("(") {
			return nil, p.expected(start, "a primitive (host, net, port, a protocol, …)")
		}
		if !p.last.ok {
			return nil, errorf(ErrSyntax, start.col, "%s has no qualifier to inherit: write host, net, port or portrange before it", start)
		}
		q = p.last
		if start.is("(") {
			return p.idList(q)
		}
		return p.id(q)
	}
	if q.typ == tyDefault && !sawDir {
		// A protocol on its own: tcp, ip6, arp, ether (the last only as a qualifier).
		if q.proto == pLink {
			return nil, p.expected(p.peek(), `host, src, dst, proto, broadcast or multicast after "ether"`)
		}
		p.last = quals{}
		return protoPrim(q.proto), nil
	}
	if p.peek().is("(") {
		p.last = q
		return p.idList(q)
	}
	return p.id(q)
}

func (p *parser) dir() (dir, bool) {
	t := p.peek()
	if !t.is("src") && !t.is("dst") {
		return dOr, false
	}
	p.next()
	first := dSrc
	if t.is("dst") {
		first = dDst
	}
	if c, o := p.peekAt(0), p.peekAt(1); (isOr(c) || isAnd(c)) && (o.is("src") || o.is("dst")) && o.text != t.text {
		p.pos += 2
		if isOr(c) {
			return dOr, true
		}
		return dAnd, true
	}
	return first, true
}

// idList parses "( id [and|or id]… )" after qualifiers: host (198.18.0.1 or 198.18.0.2).
func (p *parser) idList(q quals) (node, error) {
	open := p.next()
	n, err := p.idItem(q)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		switch {
		case t.is(")"):
			p.next()
			p.last = q
			return n, nil
		case isAnd(t) || isOr(t):
			p.next()
			m, err := p.idItem(q)
			if err != nil {
				return nil, err
			}
			if isAnd(t) {
				n = nAnd{n, m}
			} else {
				n = nOr{n, m}
			}
		default:
			return nil, p.expected(t, `"and", "or" or ")" closing the "(" at column `+strconv.Itoa(open.col))
		}
	}
}

func (p *parser) idItem(q quals) (node, error) {
	switch t := p.peek(); {
	case isNot(t):
		p.next()
		n, err := p.idItem(q)
		if err != nil {
			return nil, err
		}
		return nNot{n}, nil
	case t.is("("):
		return p.idList(q)
	}
	return p.id(q)
}

// id turns one address, number or range into a primitive under the qualifiers q.
func (p *parser) id(q quals) (node, error) {
	t := p.next()
	if t.kind != tWord {
		return nil, p.expected(t, "an address, a number or a port")
	}
	p.last = q
	switch q.typ {
	case tyPort, tyPortrange:
		return p.portPrim(q, t)
	}
	if mac, ok := parseMAC(t.text); ok {
		if q.typ == tyNet {
			return nil, errorf(ErrSyntax, t.col, "%s is a MAC address, not a network", t)
		}
		if q.proto != pLink {
			return nil, errorf(ErrSyntax, t.col, "%s is a MAC address: write ether host, ether src or ether dst before it", t)
		}
		return nEther{dir: q.dir, mac: mac}, nil
	}
	if q.proto == pLink {
		return nil, errorf(ErrSyntax, t.col, `expected a MAC address after "ether", found %s`, t)
	}
	if a, err := netip.ParseAddr(t.text); err == nil && a.Is6() && a.Zone() == "" {
		return p.host6(q, t, a)
	}
	if v, bits, ok := parseIPv4(t.text, q.typ == tyNet); ok {
		return p.host4(q, t, v, bits)
	}
	if v, isNum, fits := parseNum(t.text); isNum && fits && q.typ != tyNet {
		// A number as a host is a 32-bit IPv4 address, as in libpcap ("src 53" is 0.0.0.53).
		return p.host4(q, t, v, 32)
	}
	if _, isNum, _ := parseNum(t.text); isNum {
		return nil, errorf(ErrSyntax, t.col, "%s is not an IPv4 address or network", t)
	}
	if keywords[t.text] || protoNames[t.text] != pDefault {
		return nil, p.expected(t, "an address")
	}
	return nil, errorf(ErrHostname, t.col, "%s is not an IP or MAC address: host names are not resolved (no DNS in a packet path); write the address", t)
}

// parseIPv4 reads a dotted quad, or for a network 1 to 3 leading bytes ("198.18" is
// 198.18.0.0/16, as in libpcap); it returns the address and the number of bits given.
func parseIPv4(s string, isNet bool) (uint32, int, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 || (len(parts) == 1 && !isNet) {
		return 0, 0, false
	}
	var v uint32
	for _, part := range parts {
		n, isNum, fits := parseNum(part)
		if !isNum || !fits || n > 255 || part == "" {
			return 0, 0, false
		}
		v = v<<8 | n
	}
	if len(parts) == 1 {
		// A bare number as a network: libpcap promotes it ("net 10" is 10.0.0.0/8).
		bits := 32
		for v != 0 && v&0xff000000 == 0 {
			v <<= 8
			bits -= 8
		}
		return v, bits, true
	}
	bits := 8 * len(parts)
	return v << (32 - bits), bits, true
}

func (p *parser) host4(q quals, t token, v uint32, bits int) (node, error) {
	switch q.proto {
	case pDefault, pIP, pARP, pRARP:
	default:
		return nil, errorf(ErrSyntax, t.col, "%s qualifier applied to the IPv4 address %s", q.proto, t)
	}
	mask := ^uint32(0) << (32 - bits)
	if bits == 0 {
		mask = 0
	}
	isNet := bits < 32
	switch {
	case p.peek().is("/"):
		if q.typ == tyHost {
			return nil, errorf(ErrSyntax, p.peek().col, `"/" after a host: write net %s/N`, t.text)
		}
		p.next()
		n, err := p.number(32, "a prefix length (0 to 32)")
		if err != nil {
			return nil, err
		}
		mask, isNet = 0, true
		if n > 0 {
			mask = ^uint32(0) << (32 - n)
		}
	case p.peek().is("mask"):
		if q.typ == tyHost {
			return nil, errorf(ErrSyntax, p.peek().col, `"mask" after a host: write net %s mask M`, t.text)
		}
		p.next()
		m := p.next()
		mv, mbits, ok := parseIPv4(m.text, false)
		if m.kind != tWord || !ok || mbits != 32 {
			return nil, p.expected(m, "a dotted IPv4 netmask")
		}
		mask, isNet = mv, true
	}
	if isNet && v&^mask != 0 {
		return nil, errorf(ErrSyntax, t.col, "non-network bits set in %s: the address has bits outside the mask", t)
	}
	return nHost4{proto: q.proto, dir: q.dir, addr: v, mask: mask}, nil
}

func (p *parser) host6(q quals, t token, a netip.Addr) (node, error) {
	if q.proto != pDefault && q.proto != pIP6 {
		return nil, errorf(ErrSyntax, t.col, "%s qualifier applied to the IPv6 address %s", q.proto, t)
	}
	bits := 128
	if p.peek().is("/") {
		if q.typ == tyHost {
			return nil, errorf(ErrSyntax, p.peek().col, `"/" after a host: write net %s/N`, t.text)
		}
		p.next()
		n, err := p.number(128, "a prefix length (0 to 128)")
		if err != nil {
			return nil, err
		}
		bits = int(n)
	} else if q.typ == tyNet {
		return nil, p.expected(p.peek(), `"/" and a prefix length after an IPv6 network`)
	}
	pfx := netip.PrefixFrom(a, bits)
	if pfx.Masked().Addr() != a {
		return nil, errorf(ErrSyntax, t.col, "non-network bits set in %s/%d", t.text, bits)
	}
	n := nHost6{dir: q.dir, addr: a.As16()}
	for i := 0; i < bits; i++ {
		n.mask[i/8] |= 0x80 >> (i % 8)
	}
	return n, nil
}

func (p *parser) portPrim(q quals, t token) (node, error) {
	switch q.proto {
	case pDefault, pTCP, pUDP, pSCTP:
	default:
		return nil, errorf(ErrSyntax, t.col, `%s qualifier of "port": port primitives take tcp, udp or sctp`, q.proto)
	}
	n := nPort{proto: q.proto, dir: q.dir, rng: q.typ == tyPortrange}
	lo, hi, dash := t.text, t.text, false
	if q.typ == tyPortrange {
		if i := strings.IndexByte(t.text, '-'); i > 0 {
			lo, hi, dash = t.text[:i], t.text[i+1:], true
		}
	}
	for i, s := range []string{lo, hi} {
		v, isNum, fits := parseNum(s)
		if !isNum {
			if dash || q.typ == tyPort && strings.ContainsAny(t.text, "-") {
				return nil, errorf(ErrSyntax, t.col, "%s is not a port number or a range a-b", t)
			}
			return nil, errorf(ErrUnsupported, t.col, "%s is not a port number: service names are not looked up; write the number", t)
		}
		if !fits || v > 65535 {
			return nil, errorf(ErrSyntax, t.col, "port %s is above 65535", s)
		}
		if i == 0 {
			n.lo = v
		} else {
			n.hi = v
		}
	}
	if n.lo > n.hi {
		n.lo, n.hi = n.hi, n.lo
	}
	return n, nil
}

func (p *parser) protoPrim(q pq, kw token) (node, error) {
	t := p.next()
	var v uint32
	switch {
	case t.kind == tWord && (keywords[t.text] || protoNames[t.text] != pDefault):
		return nil, errorf(ErrSyntax, t.col, `%s is a keyword: write \%s for the protocol`, t, t.text)
	case t.kind == tEscape || (t.kind == tWord && !isNumberWord(t.text)):
		var ok bool
		if q == pLink {
			v, ok = etherTypeByName[t.text]
		} else {
			v, ok = ipProtoByName[t.text]
		}
		if !ok {
			return nil, errorf(ErrUnsupported, t.col, "unknown protocol name %s after %q: write the number", t, kw.text)
		}
	case t.kind == tWord:
		n, _, fits := parseNum(t.text)
		if !fits {
			return nil, errorf(ErrSyntax, t.col, "%s does not fit in 32 bits", t)
		}
		v = n
	default:
		return nil, p.expected(t, `a protocol number or \name after "proto"`)
	}
	switch q {
	case pLink:
		if v > 0xffff {
			return nil, errorf(ErrSyntax, t.col, "ether proto %d is above 0xffff", v)
		}
		switch v {
		case 0xe0, 0x809b, 0x80f3: // IPX, AppleTalk, AARP: libpcap matches these through LLC/SNAP
			return nil, errorf(ErrUnsupported, t.col, "ether proto %#x needs LLC/SNAP matching, which pcapfilter does not compile", v)
		}
		return nLinkProto{v}, nil
	case pIP, pIP6, pDefault:
		if v > 255 {
			return nil, errorf(ErrSyntax, t.col, "IP protocol %d is above 255", v)
		}
		return nIPProto{v4: q != pIP6, v6: q != pIP, proto: v}, nil
	}
	return nil, errorf(ErrSyntax, kw.col, `"proto" after %s: it takes ether, ip or ip6`, q)
}

func protoPrim(q pq) node {
	switch q {
	case pIP:
		return nLinkProto{0x800}
	case pIP6:
		return nLinkProto{0x86dd}
	case pARP:
		return nLinkProto{0x806}
	case pRARP:
		return nLinkProto{0x8035}
	case pICMP, pIGMP:
		return nIPProto{v4: true, proto: ipProtoNum[q]}
	case pICMP6:
		return nIPProto{v6: true, proto: 58}
	}
	return nIPProto{v4: true, v6: true, proto: ipProtoNum[q]}
}

func (p *parser) castPrim(q pq, t token) (node, error) {
	bcast := t.text == "broadcast"
	switch {
	case q == pDefault || q == pLink:
		if bcast {
			return nBroadcast{}, nil
		}
		return nMulticast{pLink}, nil
	case q == pIP:
		if bcast {
			return nBroadcast{ip: true}, nil
		}
		return nMulticast{pIP}, nil
	case q == pIP6 && !bcast:
		return nMulticast{pIP6}, nil
	}
	return nil, errorf(ErrSyntax, t.col, "%s qualifier applied to %q", q, t.text)
}

func isNumberWord(s string) bool {
	if _, ok := namedConst[s]; ok {
		return true
	}
	_, isNum, _ := parseNum(s)
	return isNum
}

func startsArith(t token) bool {
	switch t.text {
	case "+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", "=", "==", "!=", "<", "<=", ">", ">=":
		return t.kind == tPunct
	}
	return false
}

// number reads a number (or named constant) no greater than max.
func (p *parser) number(max uint32, what string) (uint32, error) {
	t := p.next()
	if t.kind == tWord {
		if v, ok := namedConst[t.text]; ok && v <= max {
			return v, nil
		}
		if v, isNum, fits := parseNum(t.text); isNum {
			if !fits || v > max {
				return 0, errorf(ErrSyntax, t.col, "%s is out of range for %s (at most %d)", t, what, max)
			}
			return v, nil
		}
	}
	return 0, p.expected(t, what)
}

func (p *parser) relationPrim() (node, error) {
	n, err := p.relation()
	if err != nil {
		return nil, err
	}
	p.last = quals{}
	return n, nil
}

// relation: arith relop arith.
func (p *parser) relation() (node, error) {
	a, err := p.arith(0)
	if err != nil {
		return nil, err
	}
	op := p.next()
	switch op.text {
	case "=", "==", "!=", "<", "<=", ">", ">=":
		if op.kind != tPunct {
			return nil, p.expected(op, "a comparison (=, !=, <, <=, >, >=)")
		}
	default:
		return nil, p.expected(op, "a comparison (=, !=, <, <=, >, >=)")
	}
	b, err := p.arith(0)
	if err != nil {
		return nil, err
	}
	if op.text == "==" {
		op.text = "="
	}
	return nRel{op: op.text, a: a, b: b}, nil
}

// Binary operator levels. '%' and '^' have none: libpcap's grammar declares no precedence for
// them, so its parser always shifts them, which binds them to the operand on their left and
// to everything on their right ("2 * 3 % 4" is 2 * (3 % 4), "5 % 3 + 1" is 5 % (3 + 1)).
var arithPrec = map[string]int{"|": 1, "&": 2, "<<": 3, ">>": 3, "+": 4, "-": 4, "*": 5, "/": 5}

func (p *parser) arith(minPrec int) (arith, error) {
	a, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		prec, ok := arithPrec[t.text]
		if t.kind != tPunct || !ok || prec <= minPrec {
			return a, nil
		}
		p.next()
		b, err := p.arith(prec)
		if err != nil {
			return nil, err
		}
		a = aBin{op: t.text, a: a, b: b, col: t.col}
	}
}

func (p *parser) unary() (arith, error) {
	if t := p.peek(); t.is("-") {
		p.next()
		a, err := p.unary()
		if err != nil {
			return nil, err
		}
		return aNeg{a}, nil
	}
	a, err := p.operand()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.is("%") || t.is("^") {
		p.next()
		b, err := p.arith(0)
		if err != nil {
			return nil, err
		}
		return aBin{op: t.text, a: a, b: b, col: t.col}, nil
	}
	return a, nil
}

func (p *parser) operand() (arith, error) {
	t := p.next()
	switch {
	case t.is("("):
		a, err := p.arith(0)
		if err != nil {
			return nil, err
		}
		if c := p.next(); !c.is(")") {
			return nil, p.expected(c, `")"`)
		}
		return a, nil
	case t.is("len"):
		return aLen{}, nil
	case t.kind == tWord && protoNames[t.text] != pDefault:
		if o := p.next(); !o.is("[") {
			return nil, p.expected(o, `"[" after `+t.text+" in an arithmetic expression")
		}
		idx, err := p.arith(0)
		if err != nil {
			return nil, err
		}
		size := 1
		if p.peek().is(":") {
			p.next()
			s := p.next()
			v, isNum, _ := parseNum(s.text)
			if s.kind != tWord || !isNum || (v != 1 && v != 2 && v != 4) {
				return nil, p.expected(s, "a load size of 1, 2 or 4")
			}
			size = int(v)
		}
		if c := p.next(); !c.is("]") {
			return nil, p.expected(c, `"]"`)
		}
		return aLoad{proto: protoNames[t.text], idx: idx, size: size}, nil
	case t.kind == tWord:
		if v, ok := namedConst[t.text]; ok {
			return aConst{v}, nil
		}
		v, isNum, fits := parseNum(t.text)
		if isNum && !fits {
			return nil, errorf(ErrSyntax, t.col, "%s does not fit in 32 bits", t)
		}
		if isNum {
			return aConst{v}, nil
		}
	}
	return nil, p.expected(t, "a number, len, or a packet load such as ip[0] or tcp[13]")
}
