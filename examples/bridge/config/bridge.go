package config

import (
	"fmt"
	"strconv"
)

// Bridges pairs the entries of f into inline bridges: A and B form one
// when A's copy-iface is B, B's is A, and both have copy-mode ips or tap.
// Entries without copy-mode are capture only and are left out (Parse has
// noted them). Bridges returns every problem it finds, each naming the
// lines of the entries involved: a copy-mode without copy-iface, a
// copy-iface naming the interface itself or one with no entry, a
// copy-iface that is not returned, an interface listed twice, unequal
// threads within a pair, a cluster-id shared by a pair, and no bridge at
// all.
func (f *File) Bridges() ([]Bridge, error) {
	var errs []error
	errorf := func(line, other int, format string, args ...any) {
		errs = append(errs, &Error{File: f.Name, Line: line, OtherLine: other, Msg: fmt.Sprintf(format, args...)})
	}

	byName := map[string]int{}
	for i, ifc := range f.Interfaces {
		if j, dup := byName[ifc.Name]; dup {
			errorf(f.Interfaces[j].Line, ifc.Line, "interface %s listed twice", ifc.Name)
			continue
		}
		byName[ifc.Name] = i
	}

	var bridges []Bridge
	for i, a := range f.Interfaces {
		if byName[a.Name] != i || a.CopyMode == CopyNone {
			continue // a repeat already reported, or capture only
		}
		switch {
		case a.CopyIface == "":
			errorf(a.Line, 0, "%s has copy-mode %s but no copy-iface", a.Name, a.CopyMode)
			continue
		case a.CopyIface == a.Name:
			errorf(a.Line, 0, "%s has copy-iface %s: an interface cannot copy to itself", a.Name, a.CopyIface)
			continue
		}
		j, ok := byName[a.CopyIface]
		if !ok {
			errorf(a.Line, 0, "%s has copy-iface %s, which has no af-packet entry", a.Name, a.CopyIface)
			continue
		}
		b := f.Interfaces[j]
		var why string
		switch {
		case b.CopyMode == CopyNone:
			why = "has no copy-mode"
		case b.CopyIface == "":
			why = "has no copy-iface"
		case b.CopyIface != a.Name:
			why = "copies to " + b.CopyIface
		}
		if why != "" {
			errorf(a.Line, b.Line, "copy-iface not reciprocal: %s copies to %s, but %s %s", a.Name, b.Name, b.Name, why)
			continue
		}
		if j < i {
			continue // the pair was checked when b came up
		}
		ok = true
		if a.Threads != b.Threads {
			errorf(a.Line, b.Line, "threads differ: %s has %s, %s has %s; an IPS pair needs equal threads so both directions of a flow meet on one worker",
				a.Name, threads(a), b.Name, threads(b))
			ok = false
		}
		if a.ClusterID != 0 && a.ClusterID == b.ClusterID {
			// fanout_add fails with EINVAL when a group's sockets are
			// bound to different devices.
			errorf(a.Line, b.Line, "cluster-id %d used by both %s and %s; each interface needs its own fanout group, the kernel refuses one across two devices",
				a.ClusterID, a.Name, b.Name)
			ok = false
		}
		if ok {
			bridges = append(bridges, Bridge{A: a, B: b, AToB: a.CopyMode, BToA: b.CopyMode})
		}
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	if len(bridges) == 0 {
		return nil, &Error{File: f.Name, Msg: "no bridge: no two af-packet entries name each other in copy-iface with copy-mode ips or tap"}
	}
	return bridges, nil
}

// threads formats an interface's thread count for messages, showing where
// "auto" was resolved so unequal counts on one machine are explained.
func threads(i Interface) string {
	if i.ThreadsAuto {
		return "auto (" + strconv.Itoa(i.Threads) + ")"
	}
	return strconv.Itoa(i.Threads)
}
