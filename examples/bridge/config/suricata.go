package config

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// accepted are the af-packet keys Suricata reads that the bridge has no use
// for. Each value is checked as Suricata would read it, and a value that
// asks for something the bridge does not do gets one note (at the key's
// line, once even when the "interface: default" entry passes it to every
// interface) saying what the bridge does instead.
var accepted = map[string]struct {
	kind kind
	// instead returns the note for value s, or "" when the value asks for
	// nothing the bridge leaves undone (such as use-emergency-flush: no).
	instead func(s string) string
}{
	"v2-block-size": {kindInt, func(string) string {
		return "the bridge sizes TPACKET_V2 rings from ring-size and the interface's MTU"
	}},
	"use-emergency-flush": {kindBool, ifTrue("the bridge never empties a full ring to catch up; frames the kernel cannot queue are counted as kernel drops")},
	"rollover":            {kindBool, ifTrue("not used (Suricata deprecated it too): moving a flow to another worker when a ring fills would break flow affinity")},
	"disable-hwtimestamp": {kindBool, ifFalse("the bridge reads no hardware timestamps")},
	"enable-hwtimestamp":  {kindBool, ifTrue("the bridge reads no hardware timestamps")},
	"ebpf-filter-file": {kindString, func(string) string {
		return "the bridge loads no external eBPF filter: every frame is inspected"
	}},
	"xdp-filter-file": {kindString, func(string) string {
		return "the bridge loads no XDP program: every frame is inspected"
	}},
	"xdp-mode": {kindXDPMode, func(string) string {
		return "the bridge loads no XDP program"
	}},
	"xdp-cpu-redirect": {kindAny, func(string) string {
		return "the bridge loads no XDP program; workers spread frames by fanout"
	}},
	"pinned-maps":     {kindBool, ifTrue("the bridge pins no eBPF maps")},
	"use-percpu-hash": {kindBool, ifTrue("the bridge keeps no eBPF flow table")},
	"pinned-maps-name": {kindString, func(string) string {
		return "the bridge pins no eBPF maps"
	}},
}

type kind int

const (
	kindBool kind = iota
	kindInt
	kindString
	kindXDPMode
	kindAny
)

func ifTrue(msg string) func(string) string {
	return func(s string) string {
		if isTrue(s) {
			return msg
		}
		return ""
	}
}

func ifFalse(msg string) func(string) string {
	return func(s string) string {
		if isFalse(s) {
			return msg
		}
		return ""
	}
}

func init() {
	for key, a := range accepted {
		decoders[key] = func(p *parser, key, who string, v *yaml.Node) func(*Interface) {
			var s string
			switch a.kind {
			case kindBool:
				b, ok := p.boolean(key, who, v)
				if !ok {
					return nil
				}
				s = strconv.FormatBool(b)
			case kindInt:
				n, ok := p.integer(key, who, v, 1, 1<<31-1, "a size in bytes from 1 to 2147483647")
				if !ok {
					return nil
				}
				s = strconv.FormatInt(n, 10)
			case kindString:
				var ok bool
				if s, ok = p.scalar(key, who, v, "a name"); !ok {
					return nil
				}
			case kindXDPMode:
				const want = "one of soft, driver, hw, none"
				var ok bool
				if s, ok = p.scalar(key, who, v, want); !ok {
					return nil
				}
				if !slices.Contains([]string{"soft", "driver", "hw", "none"}, s) {
					p.errorf(v.Line, "%s: expected %s, got %s", subject(key, who), want, describe(v))
					return nil
				}
			case kindAny:
				s = describe(v)
			}
			if msg := a.instead(s); msg != "" {
				p.notef(v.Line, "%s for %s ignored: %s", key, who, msg)
			}
			return func(*Interface) {}
		}
	}
}

// exceptionPolicies maps Suricata's exception-policy values onto the
// bridge's two failure policies.
var exceptionPolicies = map[string]ExceptionPolicy{
	"auto":        ExceptionFailClosed, // drop-flow in IPS mode
	"drop-packet": ExceptionFailClosed,
	"drop-flow":   ExceptionFailClosed,
	"reject":      ExceptionFailClosed,
	"pass-packet": ExceptionFailOpen,
	"pass-flow":   ExceptionFailOpen,
	"bypass":      ExceptionFailOpen,
	"ignore":      ExceptionFailOpen,
}

// maxCPU bounds a CPU number in threading.cpu-affinity (the kernel's
// NR_CPUS tops out at 8192).
const maxCPU = 8191

// finish interprets the sections kept by top, once every file is read, and
// adds the note listing the sections not read.
func (st *state) finish(f *File) {
	get := func(name string) (*parser, *yaml.Node) {
		l, ok := st.other[name]
		if !ok || isNull(deref(l.n)) {
			return nil, nil
		}
		return &parser{name: l.file, st: st}, l.n
	}
	flush := func(p *parser) {
		for _, n := range p.notes {
			st.notes = append(st.notes, (&Error{File: p.name, Line: n.line, Msg: n.msg}).Error())
		}
	}

	// Rules. Suricata's built-in default-rule-path and default-log-dir apply when the
	// file has none.
	ruleDir := "/var/lib/suricata/rules"
	if p, v := get("default-rule-path"); p != nil {
		if s, ok := p.scalar("default-rule-path", "", v, "a directory"); ok {
			ruleDir = s
		}
	}
	if p, v := get("rule-files"); p != nil {
		d := deref(v)
		if d.Kind != yaml.SequenceNode {
			p.errorf(v.Line, "rule-files: expected a list of file names, got %s", describe(d))
		} else {
			for _, n := range d.Content {
				if s, ok := p.scalar("rule-files", "", n, "a file name"); ok {
					if !filepath.IsAbs(s) {
						s = filepath.Join(ruleDir, s)
					}
					f.RuleFiles = append(f.RuleFiles, s)
				}
			}
		}
	}

	// EVE.
	logDir := "/var/log/suricata"
	if p, v := get("default-log-dir"); p != nil {
		if s, ok := p.scalar("default-log-dir", "", v, "a directory"); ok {
			logDir = s
		}
	}
	if p, v := get("outputs"); p != nil {
		f.EVEFile = p.eveFile(v, logDir)
		flush(p)
	}

	// Stats.
	if p, v := get("stats"); p != nil {
		f.StatsInterval = p.stats(v)
	}

	// Threading.
	if p, v := get("threading"); p != nil {
		f.WorkerCPUs = p.threading(v)
		flush(p)
	}

	// Exception policy.
	if p, v := get("exception-policy"); p != nil {
		names := make([]string, 0, len(exceptionPolicies))
		for k := range exceptionPolicies {
			names = append(names, k)
		}
		slices.Sort(names)
		want := "one of " + strings.Join(names, ", ")
		if s, ok := p.scalar("exception-policy", "", v, want); ok {
			if e, ok := exceptionPolicies[s]; ok {
				f.ExceptionPolicy = e
			} else {
				p.errorf(v.Line, "exception-policy: expected %s, got %s", want, describe(v))
			}
		}
	}

	if len(st.ignored) > 0 {
		read := append([]string{section, "include", "run-as"}, readSections...)
		st.notes = append(st.notes, fmt.Sprintf("%s: not used by the bridge: %s (it reads %s)",
			f.Name, strings.Join(st.ignored, ", "), strings.Join(read, ", ")))
	}
}

// eveFile returns the file of the first enabled eve-log output that writes
// to a regular file, joined to logDir unless absolute, or "".
func (p *parser) eveFile(v *yaml.Node, logDir string) string {
	d := deref(v)
	if d.Kind != yaml.SequenceNode {
		p.errorf(v.Line, "outputs: expected a list of outputs, got %s", describe(d))
		return ""
	}
	for _, item := range d.Content {
		m := deref(item)
		if m.Kind != yaml.MappingNode || len(m.Content) != 2 || deref(m.Content[0]).Value != "eve-log" {
			continue // another output, whatever its shape: not the bridge's business
		}
		o := deref(m.Content[1])
		if o.Kind != yaml.MappingNode {
			p.errorf(m.Content[1].Line, "eve-log: expected a mapping of settings, got %s", describe(o))
			return ""
		}
		enabled, filetype, filename := false, "regular", "eve.json"
		for i := 0; i+1 < len(o.Content); i += 2 {
			k, val := deref(o.Content[i]), o.Content[i+1]
			switch k.Value {
			case "enabled":
				b, ok := p.boolean("enabled", "eve-log", val)
				if !ok {
					return ""
				}
				enabled = b
			case "filetype":
				if s, ok := p.scalar("filetype", "eve-log", val, "an output type"); ok {
					filetype = s
				}
			case "filename":
				if s, ok := p.scalar("filename", "eve-log", val, "a file name"); ok {
					filename = s
				}
			}
		}
		if !enabled {
			continue
		}
		if filetype != "regular" && filetype != "file" {
			p.notef(m.Line, "eve-log with filetype %s not used: the bridge writes EVE to a regular file only (give -eve FILE)", filetype)
			continue
		}
		if !filepath.IsAbs(filename) {
			filename = filepath.Join(logDir, filename)
		}
		return filename
	}
	return ""
}

// stats returns the interval of the stats section when it is enabled.
func (p *parser) stats(v *yaml.Node) time.Duration {
	d := deref(v)
	if d.Kind != yaml.MappingNode {
		p.errorf(v.Line, "stats: expected a mapping, got %s", describe(d))
		return 0
	}
	enabled, interval := false, int64(8)
	for i := 0; i+1 < len(d.Content); i += 2 {
		switch k, val := deref(d.Content[i]), d.Content[i+1]; k.Value {
		case "enabled":
			b, ok := p.boolean("enabled", "stats", val)
			if !ok {
				return 0
			}
			enabled = b
		case "interval":
			n, ok := p.integer("interval", "stats", val, 1, 86400, "seconds from 1 to 86400")
			if !ok {
				return 0
			}
			interval = n
		}
	}
	if !enabled {
		return 0
	}
	return time.Duration(interval) * time.Second
}

// threading returns the CPUs of the worker-cpu-set when set-cpu-affinity
// is yes. Both of Suricata's layouts are read: cpu-affinity as a list of
// one-key mappings (up to 7.0) or as a mapping (8.0).
func (p *parser) threading(v *yaml.Node) []int {
	d := deref(v)
	if d.Kind != yaml.MappingNode {
		p.errorf(v.Line, "threading: expected a mapping, got %s", describe(d))
		return nil
	}
	set := false
	var affinity *yaml.Node
	for i := 0; i+1 < len(d.Content); i += 2 {
		switch k := deref(d.Content[i]); k.Value {
		case "set-cpu-affinity":
			b, ok := p.boolean("set-cpu-affinity", "threading", d.Content[i+1])
			if !ok {
				return nil
			}
			set = b
		case "cpu-affinity":
			affinity = d.Content[i+1]
		}
	}
	if affinity == nil || !set {
		return nil
	}
	var sets []*yaml.Node // key, value pairs
	switch a := deref(affinity); a.Kind {
	case yaml.SequenceNode:
		for _, item := range a.Content {
			if m := deref(item); m.Kind == yaml.MappingNode {
				sets = append(sets, m.Content...)
			}
		}
	case yaml.MappingNode:
		sets = a.Content
	default:
		p.errorf(affinity.Line, "cpu-affinity: expected a list or mapping of CPU sets, got %s", describe(a))
		return nil
	}
	for i := 0; i+1 < len(sets); i += 2 {
		if deref(sets[i]).Value != "worker-cpu-set" {
			continue
		}
		ws := deref(sets[i+1])
		if ws.Kind != yaml.MappingNode {
			p.errorf(sets[i+1].Line, "worker-cpu-set: expected a mapping with a cpu list, got %s", describe(ws))
			return nil
		}
		for j := 0; j+1 < len(ws.Content); j += 2 {
			if deref(ws.Content[j]).Value == "cpu" {
				return p.cpuList(ws.Content[j+1])
			}
		}
		p.errorf(sets[i].Line, "worker-cpu-set has no cpu list")
		return nil
	}
	return nil
}

// cpuList expands a Suricata CPU list: numbers, ranges "A-B" and "all".
func (p *parser) cpuList(v *yaml.Node) []int {
	const want = `CPU numbers, ranges such as "2-5", or "all"`
	d := deref(v)
	items := []*yaml.Node{v}
	if d.Kind == yaml.SequenceNode {
		items = d.Content
	}
	var out []int
	seen := map[int]bool{}
	add := func(c int) {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	for _, n := range items {
		s, ok := p.scalar("cpu", "worker-cpu-set", n, want)
		if !ok {
			return nil
		}
		s = strings.TrimSpace(s)
		if s == "all" {
			for c := range numCPU() {
				add(c)
			}
			continue
		}
		lo, hi, isRange := strings.Cut(s, "-")
		a, erra := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var errb error
		if isRange {
			b, errb = strconv.Atoi(strings.TrimSpace(hi))
		}
		if erra != nil || errb != nil || a < 0 || b > maxCPU || a > b {
			p.errorf(n.Line, "cpu for worker-cpu-set: expected %s (0 to %d, low-high), got %s", want, maxCPU, describe(n))
			return nil
		}
		for c := a; c <= b; c++ {
			add(c)
		}
	}
	if n := numCPU(); slices.ContainsFunc(out, func(c int) bool { return c >= n }) {
		p.notef(v.Line, "worker-cpu-set names CPUs this machine does not have (it has %d)", n)
	}
	return out
}
