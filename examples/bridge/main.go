//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/afbridge/afbridge/examples/bridge/eve"
	"github.com/afbridge/afbridge/examples/bridge/rules"
	"github.com/afbridge/afbridge/peer"
	"golang.org/x/sys/unix"
)

// Exit statuses.
const (
	exitOK      = 0
	exitRuntime = 1 // the bridge could not run: privileges, memory, a worker failed
	exitUsage   = 2 // bad flags, configuration or rules
)

// drainTimeout bounds the graceful stop; past it the process exits anyway.
const drainTimeout = 30 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	stderr = &syncWriter{w: stderr}
	o, err := parseFlags(args, stderr)
	var uerr *usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &uerr):
		fmt.Fprintf(stderr, "bridge: %v\n%s(bridge -h lists the flags)\n", uerr, synopsis)
		return exitUsage
	case err != nil:
		return exitUsage // the flag package printed the error and the usage
	}
	if o.demo {
		return runDemo(stdout, stderr)
	}
	a := &app{o: o, stdout: stdout, stderr: stderr, eng: &engine{}}
	return a.serve()
}

// app is a running bridge binary: its bridges, the rules they share and the counters of reloads.
type app struct {
	o              *options
	stdout, stderr io.Writer
	eng            *engine
	bridges        []*bridge

	ruleCount                atomic.Int64
	reloadsOK, reloadsFailed atomic.Uint64
	eveDropped               uint64 // already reported by warnEVE (write errors: eve.Options.OnError)
}

func (a *app) printf(format string, args ...any) { fmt.Fprintf(a.stderr, format+"\n", args...) }

// errorf prints every error joined in err on its own line: "bridge: " then prefix, such as
// the file and line a bridge was described at, then the error.
func (a *app) errorf(prefix string, err error) {
	for _, e := range flatten(err) {
		a.printf("bridge: %s%s", prefix, strings.TrimPrefix(e.Error(), "peer: "))
	}
}

// flatten lists the errors joined in err (errors.Join, rules.ErrorList), depth first.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

func (a *app) serve() int {
	o := a.o
	// Caught from the start, so a signal while the sockets open still stops the bridge cleanly.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// The configuration first: it may name the rule and EVE files.
	var specs []spec
	if o.config != "" {
		var err error
		specs, err = specsFromConfig(o, func(n string) { a.printf("note: %s", n) })
		if err != nil {
			a.errorf("", err)
			return exitUsage
		}
	} else {
		specs = []spec{specFromFlags(o)}
	}
	var set *rules.Set
	if o.rules != "" {
		var err error
		if set, err = loadRules(o.rules); err != nil {
			a.errorf("", err)
			return exitUsage
		}
		a.ruleCount.Store(int64(set.Len()))
	}

	enableBypass(specs, o.bypass || hasBypassRule(set), o.bypassHandover, func(n string) { a.printf("note: %s", n) })
	bad := false
	for _, s := range specs {
		if err := peer.Validate(s.cfg); err != nil {
			a.errorf(s.where, err)
			bad = true
		}
	}
	if bad {
		return exitUsage
	}
	// Resolved before anything opens, so that an unknown user is a usage error.
	var cred credentials
	root := os.Geteuid() == 0
	if root {
		var err error
		if cred, err = lookupRunAs(o.runAs, o.cfgRunAs.User, o.cfgRunAs.Group); err != nil {
			a.printf("bridge: %v", err)
			return exitUsage
		}
	} else if o.runAs != "" || o.cfgRunAs.User != "" {
		a.printf("bridge: note: run-as ignored: the bridge is not root, it runs as uid %d already", os.Geteuid())
	}

	if o.eve != "" {
		w, err := eve.Open(o.eve, &eve.Options{AllowSpecial: o.eveAllowSpecial, OnError: func(err error, lost uint64) {
			a.printf("bridge: EVE log: %d events lost: %v (said at most once a second; afbridge_eve_events_failed_total counts them all)", lost, err)
		}})
		if err != nil {
			a.printf("bridge: -eve: %v", err)
			return exitUsage
		}
		a.eng.eve = w
		defer w.Close() // after the bridges have stopped: a worker may still be writing
	}
	var metrics *metricsServer
	if o.metrics != "" {
		var err error
		if metrics, err = listenMetrics(o.metrics); err != nil {
			a.printf("bridge: -metrics: %v", err)
			a.printf("  what to do: choose a free address and port with -metrics, such as 127.0.0.1:9101")
			return exitRuntime
		}
		defer metrics.close()
	}

	logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, s := range specs {
		s.cfg.Logger = logger
		b := newBridge(a.eng, s.cfg, s.where, set)
		if o.bypass {
			b.bypassAfter = o.bypassAfter
			if err := b.setRules(set); err != nil {
				a.printf("bridge: %v", err)
				return 1
			}
		}
		a.bridges = append(a.bridges, b)
	}
	if msg := raiseGOMAXPROCS(workerCount(specs)); msg != "" {
		a.printf("bridge: %s", msg)
	}
	for _, b := range a.bridges {
		for _, f := range peer.Preflight(b.cfg) {
			a.printf("preflight: %s", f)
		}
	}
	for i, b := range a.bridges {
		if err := b.start(); err != nil {
			a.printf("bridge: cannot start %s: %v", b.name(), err)
			if h := runtimeHint(err); h != "" {
				a.printf("  what to do: %s", h)
			}
			for _, started := range a.bridges[:i] {
				started.br.Close()
				started.closeInject()
			}
			return exitRuntime
		}
	}
	// The sockets are open: become cred, keeping only what re-opening them needs. The EVE log
	// is handed to cred first, so that SIGHUP can reopen it.
	giveEVE := func() {
		if w := a.eng.eve; w != nil {
			if err := w.Chown(cred.uid, cred.gid); err != nil {
				a.printf("bridge: -eve: cannot give the log to %s, so SIGHUP cannot reopen it: %v", cred.name, err)
			}
		}
	}
	kept := "CAP_NET_RAW and CAP_NET_ADMIN"
	if a.bypassWanted() {
		extraCaps |= bypassCaps // re-attaching the fast path to a re-created port
		kept = "CAP_NET_RAW, CAP_NET_ADMIN and CAP_BPF"
	}
	switch err := dropPrivileges(cred, giveEVE); {
	case errors.Is(err, errCgo):
		a.printf("bridge: privileges not dropped: %v", err)
	case err != nil:
		a.printf("bridge: cannot drop privileges: %v", err)
		a.printf("  what to do: the bridge refuses to run with more privileges than it needs; the error above says which step failed")
		for _, b := range a.bridges {
			b.br.Close()
			b.closeInject()
		}
		return exitRuntime
	case root:
		a.printf("bridge: running as %s with %s only, no_new_privs, seccomp", cred.name, kept)
	default:
		a.printf("bridge: running as uid %d with %s at most, no_new_privs, seccomp", os.Geteuid(), kept)
	}
	if afterDrop != nil {
		afterDrop(a.printf)
	}
	for _, b := range a.bridges {
		a.printf("%s", b.banner())
	}
	if metrics != nil {
		metrics.serve(newCollector(a))
	}
	return a.loop(sigs)
}

// loop forwards until a signal stops it or a bridge fails, then drains and prints the totals.
func (a *app) loop(sigs chan os.Signal) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		b   *bridge
		err error
	}
	done := make(chan result, len(a.bridges))
	for _, b := range a.bridges {
		go func() { done <- result{b, b.br.Run(ctx)} }()
	}
	var tick <-chan time.Time
	prev := make([]snapshot, len(a.bridges))
	if a.o.stats > 0 {
		t := time.NewTicker(a.o.stats)
		defer t.Stop()
		tick = t.C
		for i, b := range a.bridges {
			prev[i] = b.snapshot()
		}
	}

	// Reject sockets follow their interfaces: peer.Bridge re-binds its own sockets when an
	// interface is re-created, this re-opens the reject sockets.
	refresh := time.NewTicker(time.Second)
	defer refresh.Stop()

	code, running := exitOK, len(a.bridges)
wait:
	for {
		select {
		case <-refresh.C:
			for _, b := range a.bridges {
				err := b.refreshInject()
				if err != nil && err.Error() != b.injectErr {
					a.printf("bridge: %s: cannot re-open a reject socket (retrying every second): %v", b.name(), err)
				}
				b.injectErr = ""
				if err != nil {
					b.injectErr = err.Error() // said once, not every second
				}
			}
		case s := <-sigs:
			if s == syscall.SIGHUP {
				a.reload()
				continue
			}
			a.printf("bridge: %v: stopping, draining frames in flight", s)
			break wait
		case r := <-done:
			running--
			a.printf("bridge: %s stopped: %v", r.b.name(), r.err)
			a.printf("  what to do: check that both interfaces still exist and are up (ip link); the log above says what failed")
			code = exitRuntime
			break wait
		case <-tick:
			for i, b := range a.bridges {
				cur := b.snapshot()
				for _, l := range b.intervalLines(prev[i], cur) {
					a.printf("%s", l)
				}
				prev[i] = cur
			}
			a.writeEVEStats()
			a.warnEVE()
		}
	}

	cancel()
	stopped := make(chan struct{})
	go func() {
		for range running {
			if r := <-done; r.err != nil {
				a.printf("bridge: %s: %v", r.b.name(), r.err)
				code = exitRuntime
			}
		}
		close(stopped)
	}()
	select {
	case <-stopped:
	case s := <-sigs:
		a.printf("bridge: %v again: exiting without draining", s)
		return exitRuntime
	case <-time.After(drainTimeout):
		a.printf("bridge: the workers did not stop within %v; exiting", drainTimeout)
		return exitRuntime
	}
	for _, b := range a.bridges {
		b.closeInject()
	}
	if a.o.stats > 0 {
		a.writeEVEStats() // the totals, before the deferred Close of the EVE writer
	}
	a.printFinal()
	return code
}

// printFinal prints the totals of the whole run. peer.Bridge keeps the kernel's counters from
// Close on, so the snapshot is complete although the sockets are gone.
func (a *app) printFinal() {
	for _, b := range a.bridges {
		s := b.snapshot()
		a.printf("final stats, %s after %s:", b.name(), s.at.Sub(b.started).Round(time.Millisecond))
		for _, l := range b.finalLines(s) {
			a.printf("%s", l)
		}
	}
	e := a.eng
	line := fmt.Sprintf("  rules %d, alerts %d, reject frames sent %d", a.ruleCount.Load(), e.alerts.Load(), e.rejects.Load())
	if n := e.rejectErrs.Load(); n > 0 {
		line += fmt.Sprintf(" (%d failed: %v)", n, e.lastRejectErr())
	}
	if n := e.rejectsLimited.Load(); n > 0 {
		line += fmt.Sprintf(", rate-limited %d", n)
	}
	if n := e.rejectsFull.Load(); n > 0 {
		line += fmt.Sprintf(", dropped on a full queue %d", n)
	}
	if n := e.rejectRebinds.Load(); n > 0 {
		line += fmt.Sprintf(", reject sockets re-opened %d", n)
	}
	if e.eve != nil {
		line += fmt.Sprintf(", EVE events written %d, dropped %d", e.eve.Written(), e.eve.Dropped())
		if n := e.eve.Failed(); n > 0 {
			line += fmt.Sprintf(", failed %d", n)
		}
	}
	a.printf("%s", line)
	in := &e.inspect
	a.printf("  inspection: datagrams reassembled %d; dropped: flows %d, fragments %d, segments %d, IPv6 header chains %d; flows evicted %d",
		in.reassembled.Load(), in.flowDrops.Load(), in.fragDrops.Load(), in.segDrops.Load(), in.extHdrDrops.Load(), in.flowsEvicted.Load())
	a.warnEVE()
}

// warnEVE reports EVE events dropped since the last call because the writer's queue was full.
// Write errors are reported as they happen, by the OnError given to eve.Open.
func (a *app) warnEVE() {
	w := a.eng.eve
	if w == nil {
		return
	}
	if n := w.Dropped(); n > a.eveDropped {
		a.printf("bridge: EVE log: %d events dropped, the writer's queue was full (the disk is slower than the alerts)", n-a.eveDropped)
		a.eveDropped = n
	}
}

// reload reads the rule file again and swaps it in; a file with errors changes nothing. It also
// reopens the EVE file, so that log rotation works as with Suricata.
//
// Memory: while the new set is parsed the old one stays in force, so for the length of the parse
// there are two sets (plus the new one's build tables). setRules hands each worker a new handler
// through the verdict.Switch; the worker installs it at its next frame or tick and retires the old
// handler, which held the only references to the old set and its Result, so the old set is garbage
// from then on (TestReloadFreesOldSet). The Switch keeps only the current factory.
func (a *app) reload() {
	if w := a.eng.eve; w != nil {
		if err := w.Reopen(); err != nil {
			a.printf("bridge: SIGHUP: %v", err)
		}
	}
	if a.o.rules == "" {
		a.printf("bridge: SIGHUP: no -rules file to reload")
		return
	}
	set, err := loadRules(a.o.rules)
	if err != nil {
		a.reloadsFailed.Add(1)
		a.printf("bridge: SIGHUP: reload of %s refused; the %d rules loaded before stay in force:", a.o.rules, a.ruleCount.Load())
		for _, e := range flatten(err) {
			a.printf("  %v", e)
		}
		return
	}
	for _, b := range a.bridges {
		if err := b.setRules(set); err != nil {
			a.reloadsFailed.Add(1)
			a.printf("bridge: SIGHUP: %s: new rules not installed, the old ones stay in force: %v", b.name(), err)
			return
		}
	}
	a.ruleCount.Store(int64(set.Len()))
	a.reloadsOK.Add(1)
	a.printf("bridge: SIGHUP: reloaded %s: %d rules in force", a.o.rules, set.Len())
	a.withdrawBypass() // after the new rules are in place
	a.noteBypassRules(set)
}

// loadRules parses the rule file at path. It is opened with O_NONBLOCK and checked with fstat
// before it is read: a FIFO put in its place would otherwise block the main loop on SIGHUP,
// and with it SIGTERM.
func loadRules(path string) (*rules.Set, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%v); give the rule file itself", path, st.Mode().Type())
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	return rules.Parse(f, path)
}

// runtimeHint says what to do about a failure to open or start a bridge.
func runtimeHint(err error) string {
	switch {
	case errors.Is(err, os.ErrPermission):
		return "the bridge needs CAP_NET_RAW and CAP_NET_ADMIN: run it as root, or grant them with `sudo setcap cap_net_raw,cap_net_admin+ep` on the binary"
	case errors.Is(err, unix.ENOMEM):
		return "the rings do not fit in memory (or in RLIMIT_MEMLOCK with mmap-locked): use fewer threads, a smaller ring-size or fewer blocks"
	case errors.Is(err, unix.ENETDOWN):
		return "bring both interfaces up (ip link set DEV up)"
	case errors.Is(err, unix.ENODEV):
		return "the interface disappeared; check the names with `ip link`"
	}
	return ""
}

// syncWriter serialises writes from several goroutines, so lines never interleave.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
