package pcapfilter

import (
	"errors"
	"fmt"

	"golang.org/x/net/bpf"
)

// MaxInstructions is the longest program the Linux kernel accepts for a socket filter
// (BPF_MAXINSNS).
const MaxInstructions = 4096

// Errors that Compile wraps in an [*Error]; match them with errors.Is.
var (
	// ErrSyntax: the expression is not valid pcap-filter syntax, or a value is out of range.
	ErrSyntax = errors.New("syntax error")
	// ErrHostname: the expression names a host (or network) instead of an address. Names
	// would need DNS, which has no place in a packet path.
	ErrHostname = errors.New("host names are not resolved")
	// ErrUnsupported: valid pcap-filter syntax that this package does not compile (port
	// names, gateway, LLC/SNAP protocols, and primitives of other link types such as mpls).
	ErrUnsupported = errors.New("not supported")
	// ErrTooComplex: the expression compiles to more than [MaxInstructions] instructions, or
	// its arithmetic needs more scratch registers than cBPF has.
	ErrTooComplex = errors.New("filter too complex")
	// ErrRejectsAll: the expression can match no frame ("ip and arp"), which on an inline
	// bridge would drop all traffic. Compile reports it when its optimizer proves it, as
	// libpcap does; it does not find every such expression.
	ErrRejectsAll = errors.New("expression rejects every frame")
)

// Error is a compile error: where in the expression and what was expected there.
type Error struct {
	// Expr is the expression as given.
	Expr string
	// Column is the 1-based byte column the error points at; len(Expr)+1 is the end.
	Column int
	// Msg says what was found and what was expected.
	Msg string
	// Err is one of [ErrSyntax], [ErrHostname], [ErrUnsupported], [ErrTooComplex] or
	// [ErrRejectsAll].
	Err error
}

func (e *Error) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("pcapfilter: %q column %d: %s", e.Expr, e.Column, e.Msg)
	}
	return fmt.Sprintf("pcapfilter: %q: %s", e.Expr, e.Msg)
}

// Unwrap returns the sentinel: [ErrSyntax], [ErrHostname], [ErrUnsupported], [ErrTooComplex]
// or [ErrRejectsAll].
func (e *Error) Unwrap() error { return e.Err }

func errorf(kind error, col int, format string, args ...any) *Error {
	return &Error{Column: col, Msg: fmt.Sprintf(format, args...), Err: kind}
}

// Config selects how Compile treats VLAN tags. A nil *Config is the zero Config.
type Config struct {
	// TagsInFrame compiles vlan for frames that still carry their VLAN tags in their bytes:
	// a pcap file, or a frame in afbridge's TX slot where the tag has been put back. The
	// program is then what "tcpdump -y EN10MB -d" prints for a dead capture, and the
	// x/net/bpf VM can run it.
	//
	// The zero value compiles for an AF_PACKET socket filter, where the kernel has already
	// moved the outer tag out of the frame: the first vlan primitive reads the tag from the
	// socket buffer (SKF_AD_VLAN_TAG_PRESENT, SKF_AD_VLAN_TAG) and falls back to a tag in
	// the frame, as libpcap compiles it for a live Linux capture.
	TagsInFrame bool
}

// Compile compiles a pcap-filter(7) expression into a classic BPF program for Ethernet frames
// that accepts (returns 262144, as tcpdump's programs do) the frames the expression matches
// and rejects (returns 0) the others. The empty expression accepts every frame.
//
// Errors are [*Error] values that name the column and what was expected there; host names
// are refused ([ErrHostname]), never looked up.
func Compile(expr string, cfg *Config) ([]bpf.Instruction, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	prog, err := compile(expr, cfg)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Expr = expr
		}
		return nil, err
	}
	return prog, nil
}

func compile(expr string, cfg *Config) ([]bpf.Instruction, error) {
	n, err := parse(expr)
	if err != nil {
		return nil, err
	}
	c := &compiler{socket: !cfg.TagsInFrame}
	if c.socket && hasVLAN(n) {
		// The run-time VLAN shift starts at 0 on every path.
		c.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 0}, bpf.StoreScratch{Src: bpf.RegA, N: vlanSlot})
	}
	accept, reject := c.newLabel(), c.newLabel()
	if err := c.cond(n, accept, reject); err != nil {
		return nil, err
	}
	c.place(accept)
	c.emit(bpf.RetConstant{Val: acceptLen})
	c.place(reject)
	c.emit(bpf.RetConstant{Val: 0})
	if len(c.prog) > 4*MaxInstructions {
		// Far beyond what the optimizer could bring under the limit: stop before it works.
		return nil, errorf(ErrTooComplex, 0, "the filter compiles to more than %d instructions, the kernel's limit: split it or simplify it", MaxInstructions)
	}
	c.optimize()
	if c.labels[accept] >= len(c.prog) || c.prog[c.labels[accept]].plain != (bpf.RetConstant{Val: acceptLen}) {
		return nil, errorf(ErrRejectsAll, 0, "the expression matches no frame: on an inline bridge it would drop all traffic")
	}
	return c.assemble()
}

// assemble resolves labels into forward skips. A conditional jump skips at most 255
// instructions; a longer one is routed through an unconditional jump placed right after it,
// or through one placed for an earlier-processed jump to the same target when that one is
// within reach.
func (c *compiler) assemble() ([]bpf.Instruction, error) {
	// Walking backwards, an insertion right after jump i moves only code after i, so the jumps
	// already handled (later in the program, and their targets) keep their distances.
	tramp := map[int]int{} // target label -> label of the nearest trampoline to it
	for i := len(c.prog) - 1; i >= 0 && len(c.prog) <= MaxInstructions; i-- {
		in := c.prog[i]
		if in.kind != insJump && in.kind != insJumpX {
			continue
		}
		var far []*int
		for _, l := range []*int{&in.t, &in.f} {
			if c.labels[*l]-i-1 <= 255 {
				continue
			}
			// +2: this jump's own trampolines may still be inserted before it.
			if tl, ok := tramp[*l]; ok && c.labels[tl]-i-1+2 <= 255 {
				*l = tl
				continue
			}
			far = append(far, l)
		}
		if len(far) > 0 {
			for l, p := range c.labels {
				if p > i {
					c.labels[l] = p + len(far)
				}
			}
			add := make([]ins, len(far))
			for k, l := range far {
				tl := c.newLabel()
				c.labels[tl] = i + 1 + k
				add[k] = ins{kind: insJA, t: *l}
				tramp[*l] = tl
				*l = tl
			}
			c.prog = append(c.prog[:i+1], append(add, c.prog[i+1:]...)...)
		}
		c.prog[i] = in
	}
	if len(c.prog) > MaxInstructions {
		return nil, errorf(ErrTooComplex, 0, "the filter compiles to more than %d instructions, the kernel's limit: split it or simplify it", MaxInstructions)
	}
	out := make([]bpf.Instruction, len(c.prog))
	for i, in := range c.prog {
		switch in.kind {
		case insPlain:
			out[i] = in.plain
		case insJA:
			out[i] = bpf.Jump{Skip: uint32(c.labels[in.t] - i - 1)}
		case insJump:
			out[i] = bpf.JumpIf{Cond: in.cond, Val: in.val, SkipTrue: uint8(c.labels[in.t] - i - 1), SkipFalse: uint8(c.labels[in.f] - i - 1)}
		case insJumpX:
			out[i] = bpf.JumpIfX{Cond: in.cond, SkipTrue: uint8(c.labels[in.t] - i - 1), SkipFalse: uint8(c.labels[in.f] - i - 1)}
		}
	}
	return out, nil
}
