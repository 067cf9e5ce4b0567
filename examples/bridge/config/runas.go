package config

import "go.yaml.in/yaml/v3"

// RunAs is Suricata's run-as section:
//
//	run-as:
//	  user: suri
//	  group: suri
//
// Both keys are optional; names or numeric ids, checked by the program that uses them.
type RunAs struct {
	User, Group string
	Line        int // of the run-as key; 0 when the file has none
}

// runAs reads the run-as section: key k, value v.
func (p *parser) runAs(k, v *yaml.Node) {
	d := deref(v)
	p.st.runas.Line = k.Line
	if d.Kind != yaml.MappingNode {
		p.errorf(v.Line, "run-as: expected a mapping with user and group, got %s", describe(d))
		return
	}
	for i := 0; i+1 < len(d.Content); i += 2 {
		key, val := deref(d.Content[i]), d.Content[i+1]
		switch key.Value {
		case "user":
			if s, ok := p.scalar("user", "run-as", val, "a user name or id"); ok {
				p.st.runas.User = s
			}
		case "group":
			if s, ok := p.scalar("group", "run-as", val, "a group name or id"); ok {
				p.st.runas.Group = s
			}
		default:
			p.errorf(key.Line, "unknown key %q in run-as (want user, group)", key.Value)
		}
	}
}
