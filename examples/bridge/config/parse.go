package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// numCPU is what threads "auto" resolves to; a variable so tests do not
// depend on the machine.
var numCPU = runtime.NumCPU

// section is the only top-level key read.
const section = "af-packet"

// defaultName is Suricata's name for the entry that holds defaults.
const defaultName = "default"

// maxThreads is PACKET_FANOUT_MAX, the kernel's ceiling on the sockets in
// one fanout group (older kernels stop at 256; the library finds out).
const maxThreads = 1 << 16

// maxIncludeDepth bounds how deeply include files may nest.
const maxIncludeDepth = 8

// Parse reads data, a YAML document such as a whole suricata.yaml: its
// af-packet section, the files named by include (relative to the directory
// of name, read in order as if their sections were written where the
// include is, nested at most 8 deep, a file including itself refused), and
// the few other sections the bridge uses (see [File]). name is used in
// errors and notes, typically the file's path. The other sections are
// listed in one note. Parse returns every syntax, type and unknown-key
// error it finds, joined; semantic checks that concern pairs of entries
// are left to [File.Bridges].
func Parse(data []byte, name string) (*File, error) {
	st := &state{}
	if abs, err := filepath.Abs(name); err == nil {
		st.stack = []string{abs}
	}
	p := &parser{name: name, st: st}
	p.parse(data)
	f := &File{Name: name, Interfaces: st.ifaces, RunAs: st.runas}
	st.finish(f)
	if len(st.errs) > 0 {
		return nil, joinErrors(st.errs)
	}
	f.Notes = st.notes
	return f, nil
}

// parse reads one file's document into p.st, then moves its notes there
// in line order.
func (p *parser) parse(data []byte) {
	root := p.document(data)
	if root != nil {
		p.top(root)
	}
	sort.SliceStable(p.notes, func(i, j int) bool { return p.notes[i].line < p.notes[j].line })
	for _, n := range p.notes {
		p.st.notes = append(p.st.notes, (&Error{File: p.name, Line: n.line, Msg: n.msg}).Error())
	}
	p.notes = nil
}

// joinErrors returns a lone error as itself, so callers that print it or
// compare it see the *Error, and several with errors.Join.
func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

type note struct {
	line int
	msg  string
}

// state is what the files of one Parse share.
type state struct {
	errs    []error
	notes   []string
	ifaces  []Interface
	afpFile string   // file of the af-packet section in force, "" if none yet
	afpLine int      // and its line
	stack   []string // absolute paths of the files being read, outermost first
	ignored []string // top-level sections not read, in order, without repeats
	runas   RunAs    // the run-as section, the last one read
	// other holds the last value of each other section read (a later one
	// replaces an earlier one, as in Suricata), with the file it is in.
	other map[string]located
}

// located is a node and the name of the file it was read from.
type located struct {
	file string
	n    *yaml.Node
}

// parser reads one file; it collects errors and notes rather than stopping
// at the first, so that one run of the binary shows everything to fix.
type parser struct {
	name  string
	st    *state
	notes []note
	depth int // include depth of this file, 0 for the file given to Parse
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.st.errs = append(p.st.errs, &Error{File: p.name, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) notef(line int, format string, args ...any) {
	p.notes = append(p.notes, note{line, fmt.Sprintf(format, args...)})
}

// yamlLine matches the position yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^line (\d+): `)

// document decodes data and returns its top-level node, or nil when there
// is nothing to read (an error has then been recorded).
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			if p.depth == 0 {
				p.errorf(0, "no %s section: the file is empty", section)
			}
		} else {
			p.yamlError(err)
		}
		return nil
	}
	// Only the first document is read; a second one is most likely a
	// stray "---", worth a note but harmless. A syntax error in it is
	// still an error: the file as a whole is broken.
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case err == nil:
		p.notef(more.Line, "only the first YAML document is read")
	case !errors.Is(err, io.EOF):
		p.yamlError(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		if p.depth == 0 {
			p.errorf(0, "no %s section", section)
		}
		return nil
	}
	return doc.Content[0]
}

// parserProblems are the messages of yaml.v3's parser (not its scanner).
// For these it prints the 0-based line of the mark, and drops the line
// altogether when that is 0, so one is added back.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlError records a yaml.v3 syntax error with the line taken out of its
// text, so it reads like every other error.
func (p *parser) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	if parserProblems[msg] {
		line++
	}
	p.errorf(line, "%s", msg)
}

// readSections are the top-level sections the bridge reads besides
// af-packet and include; see [File].
var readSections = []string{"default-rule-path", "rule-files", "default-log-dir", "outputs", "stats", "threading", "exception-policy"}

// top walks the top-level mapping, reading af-packet, following include
// and keeping the other sections the bridge reads.
func (p *parser) top(root *yaml.Node) {
	root = deref(root)
	if isNull(root) {
		if p.depth == 0 {
			// The null node sits past the last comment: no useful line.
			p.errorf(0, "no %s section: the document is empty", section)
		}
		return
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root.Line, "top level must be a mapping of sections, got %s", describe(root))
		return
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := deref(root.Content[i]), root.Content[i+1]
		switch {
		case k.Kind != yaml.ScalarNode:
			p.notef(k.Line, "%s key ignored (top-level keys are section names)", describe(k))
		case k.Value == section && p.st.afpFile == p.name:
			p.errorf(k.Line, "second %s section (the first is at line %d)", section, p.st.afpLine)
		case k.Value == section:
			if p.st.afpFile != "" {
				// As in Suricata, a section read later (from an include)
				// takes the place of an earlier one.
				p.notef(k.Line, "this %s section replaces the one at %s:%d", section, p.st.afpFile, p.st.afpLine)
				p.st.ifaces = nil
			}
			p.st.afpFile, p.st.afpLine = p.name, k.Line
			p.section(k, v)
		case k.Value == "run-as":
			p.runAs(k, v)
		case k.Value == "include":
			p.include(v)
		case slices.Contains(readSections, k.Value):
			if p.st.other == nil {
				p.st.other = map[string]located{}
			}
			p.st.other[k.Value] = located{p.name, v}
		default:
			if !slices.Contains(p.st.ignored, k.Value) {
				p.st.ignored = append(p.st.ignored, k.Value)
			}
		}
	}
	if p.depth == 0 && p.st.afpFile == "" {
		p.errorf(0, "no %s section", section)
	}
}

// include reads the files v names (one name or a list), relative to the
// directory of the including file.
func (p *parser) include(v *yaml.Node) {
	d := deref(v)
	var names []*yaml.Node
	switch {
	case isNull(d):
		return // "include:" with nothing: Suricata's default file has it commented out
	case d.Kind == yaml.ScalarNode:
		names = []*yaml.Node{v}
	case d.Kind == yaml.SequenceNode:
		names = d.Content
	default:
		p.errorf(v.Line, "include: expected a file name or a list of file names, got %s", describe(d))
		return
	}
	for _, n := range names {
		s, ok := p.scalar("include", "", n, "a file name")
		if !ok {
			continue
		}
		path := s
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(p.name), path)
		}
		if p.depth+1 > maxIncludeDepth {
			p.errorf(n.Line, "include %s: more than %d nested includes", path, maxIncludeDepth)
			continue
		}
		abs, err := filepath.Abs(path)
		if err == nil && slices.Contains(p.st.stack, abs) {
			p.errorf(n.Line, "include %s: the file includes itself (through %s)", path, strings.Join(p.st.stack, " -> "))
			continue
		}
		data, err := readInclude(path)
		if err != nil {
			p.errorf(n.Line, "include: %v", err)
			continue
		}
		p.st.stack = append(p.st.stack, abs)
		child := &parser{name: path, st: p.st, depth: p.depth + 1}
		child.parse(data)
		p.st.stack = p.st.stack[:len(p.st.stack)-1]
	}
}

// maxIncludeSize bounds an included file: a suricata.yaml is tens of KiB.
const maxIncludeSize = 16 << 20

// readInclude reads a regular file of at most maxIncludeSize bytes, so that
// an include of a device or a FIFO cannot block or exhaust memory.
func readInclude(path string) ([]byte, error) {
	// Stat before open: opening a FIFO for reading blocks.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > maxIncludeSize {
		return nil, fmt.Errorf("%s is larger than %d MiB", path, maxIncludeSize>>20)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxIncludeSize))
}

// field is one key of an entry with its value node.
type field struct {
	key  string
	line int
	v    *yaml.Node
}

// entry is one af-packet list item before resolution.
type entry struct {
	line   int
	name   string // "" when the interface key is missing or bad
	fields []field
}

// who names the entry in messages.
func (e *entry) who() string {
	if e.name == "" {
		return fmt.Sprintf("the entry at line %d", e.line)
	}
	return strconv.Quote(e.name)
}

// setting is a decoded value ready to apply to an Interface; decoding once
// means an error in the default entry is reported once, not per interface.
type setting struct {
	key   string
	line  int
	apply func(*Interface)
}

func (p *parser) section(k, v *yaml.Node) {
	v = deref(v)
	if isNull(v) {
		p.errorf(k.Line, "%s section is empty: expected a list of interface entries", section)
		return
	}
	if v.Kind != yaml.SequenceNode {
		p.errorf(v.Line, "%s must be a list of interface entries, got %s", section, describe(v))
		return
	}
	var entries []*entry
	var dflt *entry
	for _, item := range v.Content {
		e := p.entry(deref(item))
		if e == nil {
			continue
		}
		if e.name == defaultName {
			if dflt != nil {
				p.errorf(e.line, "second %q entry (the first is at line %d)", defaultName, dflt.line)
				continue
			}
			dflt = e
			continue
		}
		entries = append(entries, e)
	}
	var base []setting
	if dflt != nil {
		base = p.settings(dflt)
	}
	for _, e := range entries {
		own := p.settings(e)
		if e.name == "" {
			continue
		}
		p.resolve(e, base, own)
	}
}

// entry checks the shape of one list item: a mapping of known keys, each
// once, with an interface name.
func (p *parser) entry(m *yaml.Node) *entry {
	if m.Kind != yaml.MappingNode {
		p.errorf(m.Line, "%s entry must be a mapping of keys, got %s", section, describe(m))
		return nil
	}
	e := &entry{line: m.Line}
	// The name is looked up first so that messages about keys written
	// before "interface" can still say which entry they are in.
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == "interface" {
			e.name = p.ifname("interface", "", m.Content[i+1])
			break
		}
	}
	seen := map[string]int{}
	hasName := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := deref(m.Content[i])
		if k.Kind != yaml.ScalarNode {
			p.errorf(k.Line, "%s key in %s entry for %s: keys must be plain names", describe(k), section, e.who())
			continue
		}
		if first, dup := seen[k.Value]; dup {
			p.errorf(k.Line, "duplicate key %q in %s entry for %s (first at line %d)", k.Value, section, e.who(), first)
			continue
		}
		seen[k.Value] = k.Line
		if k.Value == "interface" {
			hasName = true
			continue
		}
		if _, ok := decoders[k.Value]; !ok {
			p.errorf(k.Line, "unknown key %q in %s entry for %s", k.Value, section, e.who())
			continue
		}
		e.fields = append(e.fields, field{key: k.Value, line: k.Line, v: m.Content[i+1]})
	}
	if !hasName {
		p.errorf(e.line, "%s entry has no interface key", section)
	}
	return e
}

// settings decodes the fields of e, reporting type errors.
func (p *parser) settings(e *entry) []setting {
	var out []setting
	for _, f := range e.fields {
		if apply := decoders[f.key](p, f.key, e.who(), f.v); apply != nil {
			out = append(out, setting{key: f.key, line: f.line, apply: apply})
		}
	}
	return out
}

// resolve builds the Interface for e: built-in defaults, then the default
// entry's settings for keys e leaves unset, then e's own settings.
func (p *parser) resolve(e *entry, base, own []setting) {
	ifc := defaults(e.name, e.line)
	written := map[string]bool{}
	for _, f := range e.fields {
		// Including keys whose value was bad: that is reported, and the
		// default must not quietly stand in for it.
		written[f.key] = true
	}
	from := map[string]int{} // key -> line its value came from
	for _, s := range base {
		if written[s.key] {
			continue
		}
		s.apply(&ifc)
		from[s.key] = s.line
		ifc.Inherited = append(ifc.Inherited, s.key)
	}
	for _, s := range own {
		s.apply(&ifc)
		from[s.key] = s.line
	}
	if ifc.ThreadsAuto {
		ifc.Threads = numCPU()
		if line, ok := from["threads"]; ok {
			p.notef(line, "threads auto for %q: using %d, the number of CPUs", ifc.Name, ifc.Threads)
		} else {
			p.notef(e.line, "threads not set for %q: using %d, the number of CPUs", ifc.Name, ifc.Threads)
		}
	}
	if _, ok := from["defrag"]; ok {
		ifc.DefragSet = true
	} else if ifc.CopyMode != CopyNone {
		ifc.Defrag = false // see Interface.Defrag
	}
	p.advise(&ifc, from)
	p.st.ifaces = append(p.st.ifaces, ifc)
}

// advise notes settings that are accepted but probably not what was meant.
func (p *parser) advise(ifc *Interface, from map[string]int) {
	at := func(key string) int {
		if line, ok := from[key]; ok {
			return line
		}
		return ifc.Line
	}
	if ifc.CopyMode == CopyNone {
		msg := fmt.Sprintf("%q has no copy-mode: capture only (IDS), not bridged", ifc.Name)
		if ifc.CopyIface != "" {
			msg += fmt.Sprintf("; copy-iface %q ignored", ifc.CopyIface)
		}
		p.notef(ifc.Line, "%s", msg)
		return
	}
	if ifc.Defrag && ifc.CopyIface != "" {
		// PACKET_FANOUT_FLAG_DEFRAG hands the socket the reassembled
		// datagram, not the fragments that came in.
		p.notef(at("defrag"), "defrag on %q with copy-mode %s: the kernel reassembles IPv4 fragments before the bridge sees them, so they leave %q reassembled, not as they came; Suricata's IPS example sets defrag: no, the default here for inline pairs",
			ifc.Name, ifc.CopyMode, ifc.CopyIface)
	}
	if ifc.TPacketV3 && ifc.UseMmap {
		p.notef(at("tpacket-v3"), "tpacket-v3 on %q with copy-mode %s: frames wait for a full block or block-timeout, which Suricata warns adds latency inline",
			ifc.Name, ifc.CopyMode)
	}
	if !ifc.UseMmap {
		for _, key := range []string{"tpacket-v3", "mmap-locked", "ring-size"} {
			if line, ok := from[key]; ok {
				p.notef(line, "%s on %q has no effect with use-mmap: no", key, ifc.Name)
			}
		}
	}
	if !ifc.TPacketV3 {
		// Suricata's own file writes the defaults out: only a value of one's own is worth a note.
		dflt := defaults("", 0)
		for _, x := range []struct {
			key  string
			same bool
		}{
			{"block-size", ifc.BlockSize == dflt.BlockSize},
			{"block-timeout", ifc.BlockTimeout == dflt.BlockTimeout},
		} {
			if line, ok := from[x.key]; ok && !x.same {
				p.notef(line, "%s on %q has no effect without tpacket-v3", x.key, ifc.Name)
			}
		}
	}
}

// decoder checks one value and returns how to apply it, or nil after
// reporting an error. who names the entry in messages.
type decoder func(p *parser, key, who string, v *yaml.Node) func(*Interface)

// decoders holds every key an entry may have besides "interface".
var decoders = map[string]decoder{
	"threads": func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
		const want = `an integer from 1 to 65536 or "auto"`
		s, ok := p.scalar(key, who, v, want)
		if !ok {
			return nil
		}
		if strings.EqualFold(s, "auto") {
			return func(i *Interface) { i.ThreadsAuto, i.Threads = true, 0 }
		}
		n, ok := p.integer(key, who, v, 1, maxThreads, want)
		if !ok {
			return nil
		}
		return func(i *Interface) { i.ThreadsAuto, i.Threads = false, int(n) }
	},
	"cluster-id": func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
		n, ok := p.integer(key, who, v, 0, math.MaxUint16, "an integer from 0 to 65535")
		if !ok {
			return nil
		}
		return func(i *Interface) { i.ClusterID = uint16(n) }
	},
	"cluster-type": func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
		if d := deref(v); d.Kind == yaml.ScalarNode && d.Value == "cluster_rollover" {
			p.notef(v.Line, "cluster-type cluster_rollover for %s: deprecated, cluster_flow is used instead, as Suricata does", who)
			return func(i *Interface) { i.ClusterType = ClusterFlow }
		}
		t, ok := enum(p, key, who, v, []ClusterType{ClusterFlow, ClusterCPU, ClusterQM, ClusterRoundRobin, ClusterRandom, ClusterEBPF}, false)
		if !ok {
			return nil
		}
		return func(i *Interface) { i.ClusterType = t }
	},
	"copy-mode": func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
		m, ok := enum(p, key, who, v, []CopyMode{CopyIPS, CopyTap, CopyNone}, false)
		if !ok {
			return nil
		}
		return func(i *Interface) { i.CopyMode = m }
	},
	"copy-iface": func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
		s := p.ifname(key, who, v)
		if s == "" {
			return nil
		}
		return func(i *Interface) { i.CopyIface = s }
	},
	"checksum-checks": func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
		// As Suricata: "auto" and "kernel" as written, then the boolean
		// forms of ConfValIsTrue and ConfValIsFalse in any case.
		const want = "one of kernel, auto, yes, no (or another boolean: true/false, on/off, 1/0)"
		s, ok := p.scalar(key, who, v, want)
		if !ok {
			return nil
		}
		var m ChecksumMode
		switch {
		case s == "kernel":
			m = ChecksumKernel
		case s == "auto":
			m = ChecksumAuto
		case isTrue(s):
			m = ChecksumYes
		case isFalse(s):
			m = ChecksumNo
		default:
			p.errorf(v.Line, "%s: expected %s, got %s", subject(key, who), want, describe(v))
			return nil
		}
		return func(i *Interface) { i.ChecksumChecks = m }
	},
	"bpf-filter": func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
		s, ok := p.scalar(key, who, v, "a pcap-filter expression")
		if !ok {
			return nil
		}
		return func(i *Interface) { i.BPFFilter = s }
	},
	"ebpf-lb-file": func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
		s, ok := p.scalar(key, who, v, "a file name")
		if !ok {
			return nil
		}
		return func(i *Interface) { i.EBPFLBFile = s }
	},
	"defrag":          boolField(func(i *Interface, b bool) { i.Defrag = b }),
	"use-mmap":        boolField(func(i *Interface, b bool) { i.UseMmap = b }),
	"mmap-locked":     boolField(func(i *Interface, b bool) { i.MmapLocked = b }),
	"tpacket-v3":      boolField(func(i *Interface, b bool) { i.TPacketV3 = b }),
	"disable-promisc": boolField(func(i *Interface, b bool) { i.DisablePromisc = b }),
	"bypass":          boolField(func(i *Interface, b bool) { i.Bypass = b }),
	"ring-size": intField(1, math.MaxInt32, "a number of frames from 1 to 2147483647",
		func(i *Interface, n int) { i.RingSize = n }),
	"block-size": intField(1, math.MaxInt32, "a size in bytes from 1 to 2147483647",
		func(i *Interface, n int) { i.BlockSize = n }),
	"block-timeout": intField(0, math.MaxInt32, "milliseconds from 0 to 2147483647",
		func(i *Interface, n int) { i.BlockTimeout = time.Duration(n) * time.Millisecond }),
	"buffer-size": intField(0, math.MaxInt32, "a size in bytes from 0 to 2147483647",
		func(i *Interface, n int) { i.BufferSize = n }),
}

func boolField(set func(*Interface, bool)) decoder {
	return func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
		b, ok := p.boolean(key, who, v)
		if !ok {
			return nil
		}
		return func(i *Interface) { set(i, b) }
	}
}

func intField(lo, hi int64, want string, set func(*Interface, int)) decoder {
	return func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
		n, ok := p.integer(key, who, v, lo, hi, want)
		if !ok {
			return nil
		}
		return func(i *Interface) { set(i, int(n)) }
	}
}

// scalar returns the text of v, reporting an error naming want if v is a
// list, a mapping or empty.
func (p *parser) scalar(key, who string, v *yaml.Node, want string) (string, bool) {
	// Errors point at v itself: for an alias, that is where it is used.
	d := deref(v)
	if d.Kind != yaml.ScalarNode || isNull(d) {
		p.errorf(v.Line, "%s: expected %s, got %s", subject(key, who), want, describe(d))
		return "", false
	}
	return d.Value, true
}

// boolean accepts the forms Suricata's ConfValIsTrue and ConfValIsFalse
// do, whatever the case. yaml.v3 follows YAML 1.2, where yes, no, on and
// off are strings, so the scalar's text is read rather than its tag.
func (p *parser) boolean(key, who string, v *yaml.Node) (bool, bool) {
	const want = "a boolean (yes/no, true/false, on/off, 1/0)"
	s, ok := p.scalar(key, who, v, want)
	if !ok {
		return false, false
	}
	switch {
	case isTrue(s):
		return true, true
	case isFalse(s):
		return false, true
	}
	p.errorf(v.Line, "%s: expected %s, got %s", subject(key, who), want, describe(v))
	return false, false
}

// isTrue and isFalse are Suricata's ConfValIsTrue and ConfValIsFalse.
func isTrue(s string) bool {
	switch strings.ToLower(s) {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}

func isFalse(s string) bool {
	switch strings.ToLower(s) {
	case "no", "false", "off", "0":
		return true
	}
	return false
}

// integer reads a decimal integer in [lo, hi], as Suricata's
// ConfGetChildValueInt does with strtoimax in base 10.
func (p *parser) integer(key, who string, v *yaml.Node, lo, hi int64, want string) (int64, bool) {
	s, ok := p.scalar(key, who, v, want)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		p.errorf(v.Line, "%s: expected %s, got %s", subject(key, who), want, describe(v))
		return 0, false
	}
	return n, true
}

// enum reads one of the String forms of vals; fold makes it
// case-insensitive.
func enum[T fmt.Stringer](p *parser, key, who string, v *yaml.Node, vals []T, fold bool) (T, bool) {
	var zero T
	names := make([]string, len(vals))
	for i, x := range vals {
		names[i] = x.String()
	}
	want := "one of " + strings.Join(names, ", ")
	s, ok := p.scalar(key, who, v, want)
	if !ok {
		return zero, false
	}
	for i, name := range names {
		if s == name || fold && strings.EqualFold(s, name) {
			return vals[i], true
		}
	}
	p.errorf(v.Line, "%s: expected %s, got %s", subject(key, who), want, describe(v))
	return zero, false
}

// ifname reads an interface name and checks it as the kernel's
// dev_valid_name does, so a typo is caught here rather than at bind time.
// It returns "" after reporting an error.
func (p *parser) ifname(key, who string, v *yaml.Node) string {
	const want = "an interface name"
	s, ok := p.scalar(key, who, v, want)
	if !ok {
		return ""
	}
	var why string
	switch {
	case s == "":
		why = "it is empty"
	case len(s) > 15:
		why = "it is longer than 15 bytes (IFNAMSIZ)"
	case s == "." || s == "..":
		why = "the kernel forbids it"
	case strings.ContainsAny(s, "/: \t\r\n\v\f\x00"):
		why = "it contains '/', ':', a space or a control character"
	default:
		return s
	}
	p.errorf(v.Line, "%s: %s is not a valid interface name: %s", subject(key, who), describe(v), why)
	return ""
}

// subject names a value in messages: the key, and the entry when known
// (the interface key itself is read before the entry has a name).
func subject(key, who string) string {
	if who == "" {
		return key
	}
	return key + " for " + who
}

// deref follows an alias to its anchored node. yaml.v3 rejects an alias
// to an anchor not yet complete, so one step is enough and cannot loop.
func deref(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe says what a node is for "got ..." in messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	}
	return "an alias"
}
