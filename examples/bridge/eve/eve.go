// Package eve writes alert events in the layout of Suricata's EVE JSON log, one JSON object per
// line, so that the tools that read eve.json (jq one-liners, Filebeat, Logstash, Splunk) read the
// example bridge's events too.
//
// A bridge worker must never wait on a disk: [Writer.Write] hands the event to a goroutine
// through a bounded queue and returns at once, counting the event as dropped when the queue is
// full. Building an [Event] allocates; that is fine because alerts are rare next to frames.
//
// Nor may the log stall or subvert the process that writes it: [Open] and [Writer.Reopen] refuse
// symbolic links and anything but a regular file unless [Options.AllowSpecial], and never block
// (a FIFO without a reader fails at once); [Writer.Close] waits a bounded time; an event counts
// as written only once the write succeeded, and failures reach [Options.OnError] at once.
package eve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TimeLayout is Suricata's EVE timestamp: local time with microseconds and a numeric zone
// without a colon, such as 2026-11-27T22:09:10.123456+0000.
const TimeLayout = "2006-01-02T15:04:05.000000-0700"

// Time is a timestamp that marshals in TimeLayout.
type Time time.Time

// MarshalJSON formats t in TimeLayout.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = time.Time(t).AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON parses a timestamp in TimeLayout.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(TimeLayout, s)
	if err != nil {
		return err
	}
	*t = Time(v)
	return nil
}

// Event is one EVE record of event_type "alert" or "stats". Field order and names follow
// Suricata's. An alert has the addresses, the protocol and Alert; a stats event has only the
// timestamp, the event type and Stats.
type Event struct {
	Timestamp Time   `json:"timestamp"`
	InIface   string `json:"in_iface,omitempty"`
	EventType string `json:"event_type"`
	SrcIP     string `json:"src_ip,omitempty"`
	// SrcPort and DestPort are nil for protocols without ports, which Suricata leaves out.
	SrcPort  *uint16 `json:"src_port,omitempty"`
	DestIP   string  `json:"dest_ip,omitempty"`
	DestPort *uint16 `json:"dest_port,omitempty"`
	Proto    string  `json:"proto,omitempty"`
	// ICMPType and ICMPCode are set for ICMP and ICMPv6 only.
	ICMPType *uint8 `json:"icmp_type,omitempty"`
	ICMPCode *uint8 `json:"icmp_code,omitempty"`
	Alert    *Alert `json:"alert,omitempty"`
	Stats    *Stats `json:"stats,omitempty"`
}

// Alert is the "alert" object of an alert event.
type Alert struct {
	// Action is "blocked" when the packet was dropped, "allowed" when it went on.
	Action      string `json:"action"`
	GID         uint32 `json:"gid"`
	SignatureID uint32 `json:"signature_id"`
	Rev         uint32 `json:"rev"`
	Signature   string `json:"signature"`
	Category    string `json:"category"`
	Severity    int    `json:"severity"`
}

// Actions of an Alert.
const (
	Allowed = "allowed"
	Blocked = "blocked"
)

// DefaultQueue is the queue length NewWriter and Open use when given 0.
const DefaultQueue = 4096

// Bounds of the writer.
const (
	// ErrorInterval is the least time between two calls of [Options.OnError].
	ErrorInterval = time.Second
	// CloseTimeout bounds how long Close waits for the queue of a Writer from [Open] to drain
	// into an output that does not take it (a FIFO nobody reads); then the file is closed
	// under the writer and the rest is lost and counted.
	CloseTimeout = 5 * time.Second
	// ReopenTimeout bounds how long Reopen waits for the writer to take the request.
	ReopenTimeout = 2 * time.Second
	// maxBatch is the most bytes the writer gathers before one write.
	maxBatch = 64 << 10
)

// Errors of [Open] and [Writer.Reopen].
var (
	// ErrSpecial means the path names something other than a regular file: a FIFO, a device,
	// a socket, a directory, or a symbolic link, which [Options.AllowSpecial] permits.
	ErrSpecial = errors.New("eve: not a regular file")
	// ErrBusy means Reopen gave up because the writer is stuck writing.
	ErrBusy = errors.New("eve: the writer is busy writing; try again")
)

// Options configure [Open]. The zero value is a queue of DefaultQueue, regular files only, and
// no error callback.
type Options struct {
	// Queue is the queue length in events; 0 means DefaultQueue.
	Queue int
	// AllowSpecial lets the path be a symbolic link or something other than a regular file,
	// such as a FIFO or /dev/stdout. By default both are refused: a log path an attacker can
	// point elsewhere (a symlink in a shared directory) lets whoever writes the log write
	// any file the bridge may, and a FIFO without a reader blocks whoever opens it.
	AllowSpecial bool
	// OnError, if set, is called from the writer's goroutine when a write fails: at once for
	// the first failure, then at most once every ErrorInterval, with the events lost since
	// the previous call. It must not block.
	OnError func(err error, lost uint64)
}

// Writer writes events from any number of goroutines to one io.Writer, from a goroutine of its
// own. Its methods are safe for concurrent use; Write must not be called after Close.
type Writer struct {
	q       chan Event
	reopen  chan chan error
	done    chan struct{}
	closing sync.Once

	written, dropped, failed atomic.Uint64
	lastErr                  atomic.Pointer[error]

	path string // "" when not a file Open opened
	opts Options
	out  io.Writer
	mu   sync.Mutex // guards file between the writer goroutine (reopen) and Close
	file *os.File

	lastReport   time.Time // writer goroutine only
	unreported   uint64    // writer goroutine only
	reportedOnce bool      // writer goroutine only
}

// NewWriter returns a Writer that writes to w with a queue of queue events (0 means
// DefaultQueue). Close does not close w.
func NewWriter(w io.Writer, queue int) *Writer {
	return start(w, nil, "", Options{Queue: queue})
}

// Open opens path for appending, creating it with mode 0640 if needed, and returns a Writer to
// it; opts may be nil. The path "-" means standard output. Unless opts.AllowSpecial is set, a
// path that is a symbolic link or not a regular file is refused with [ErrSpecial]. The open
// never blocks: a FIFO without a reader fails (ENXIO) rather than waiting for one.
func Open(path string, opts *Options) (*Writer, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if path == "-" {
		return start(os.Stdout, nil, "", o), nil
	}
	f, err := openFile(path, o.AllowSpecial)
	if err != nil {
		return nil, err
	}
	return start(f, f, path, o), nil
}

func start(out io.Writer, f *os.File, path string, opts Options) *Writer {
	if opts.Queue <= 0 {
		opts.Queue = DefaultQueue
	}
	w := &Writer{
		q:      make(chan Event, opts.Queue),
		reopen: make(chan chan error),
		done:   make(chan struct{}),
		path:   path,
		opts:   opts,
		out:    out,
		file:   f,
	}
	go w.loop()
	return w
}

// Write queues ev and reports whether it was queued; when the queue is full the event is
// dropped and counted, and Write returns false at once.
func (w *Writer) Write(ev Event) bool {
	select {
	case w.q <- ev:
		return true
	default:
		w.dropped.Add(1)
		return false
	}
}

// Written is the number of events written so far: handed to the output without an error.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Dropped is the number of events dropped because the queue was full.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Failed is the number of events lost to write errors (all those of a failed write, which
// may have been written in part); Err returns the last such error.
func (w *Writer) Failed() uint64 { return w.failed.Load() }

// Err returns the last write error, or nil.
func (w *Writer) Err() error {
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Chown changes the owner of the regular file Open opened (see os.File.Chown), so that a
// process that gives up root after opening its log can still reopen it. For other Writers, and
// for special files allowed by [Options.AllowSpecial] (a device such as /dev/full must keep its
// owner), it does nothing.
func (w *Writer) Chown(uid, gid int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file == nil {
		return nil
	}
	if st, err := w.file.Stat(); err != nil || !st.Mode().IsRegular() {
		return err
	}
	return w.file.Chown(uid, gid)
}

// Reopen closes and reopens the file Open opened, after writing what is queued, so that a log
// rotated away (renamed) is followed by a new file, as Suricata does on SIGHUP. The new file is
// checked as Open checks it; on error the old one stays in use. Reopen returns [ErrBusy] if the
// writer does not take the request within ReopenTimeout. For other Writers it does nothing.
func (w *Writer) Reopen() error {
	if w.path == "" {
		return nil
	}
	res := make(chan error, 1)
	t := time.NewTimer(ReopenTimeout)
	defer t.Stop()
	select {
	case w.reopen <- res:
		return <-res // the writer only opens (never blocks) and closes
	case <-w.done:
		return os.ErrClosed
	case <-t.C:
		return ErrBusy
	}
}

// Close writes every queued event, then closes the file Open opened. No Write may follow. For
// a Writer from Open it waits at most CloseTimeout for the output, then closes the file under
// the writer; the events not written are counted as failed.
func (w *Writer) Close() error {
	w.closing.Do(func() { close(w.q) })
	if w.path != "" {
		t := time.NewTimer(CloseTimeout)
		defer t.Stop()
		select {
		case <-w.done:
		case <-t.C:
			w.mu.Lock()
			w.file.Close() // wakes a write parked in the poller (FIFO, socket) with ErrClosed
			w.mu.Unlock()
			<-w.done
		}
	} else {
		<-w.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file != nil {
		err := w.file.Close()
		if errors.Is(err, os.ErrClosed) {
			err = nil // closed above, after the timeout
		}
		return err
	}
	return nil
}

func (w *Writer) loop() {
	defer close(w.done)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // Encode ends each object with a newline: one event a line
	enc.SetEscapeHTML(false)
	pending := uint64(0) // events in buf
	flush := func() {
		if buf.Len() == 0 {
			return
		}
		_, err := w.out.Write(buf.Bytes())
		buf.Reset()
		n := pending
		pending = 0
		if err != nil {
			w.fail(err, n)
			return
		}
		w.written.Add(n)
	}
	add := func(ev *Event) {
		if err := enc.Encode(ev); err != nil {
			w.fail(err, 1) // cannot happen with these types; counted if it does
			return
		}
		pending++
		if buf.Len() >= maxBatch {
			flush()
		}
	}
	for {
		select {
		case ev, ok := <-w.q:
			if !ok {
				flush()
				return
			}
			add(&ev)
			// Write whatever else is queued, then flush once, so that a reader (tail -f, a test)
			// sees events promptly without a syscall per event under load.
			for n := len(w.q); n > 0; n-- {
				ev, ok := <-w.q
				if !ok {
					break
				}
				add(&ev)
			}
			flush()
		case res := <-w.reopen:
			f, err := openFile(w.path, w.opts.AllowSpecial)
			if err != nil {
				res <- fmt.Errorf("eve: reopen: %w (still writing to the old file)", err)
				continue
			}
			w.mu.Lock()
			old := w.file
			w.file, w.out = f, f
			w.mu.Unlock()
			res <- old.Close()
		}
	}
}

// fail counts n events lost to err and reports it through Options.OnError, rate-limited.
func (w *Writer) fail(err error, n uint64) {
	w.failed.Add(n)
	if !errors.Is(err, os.ErrClosed) {
		err = fmt.Errorf("eve: %w", err)
	}
	w.lastErr.Store(&err)
	if w.opts.OnError == nil {
		return
	}
	w.unreported += n
	if now := time.Now(); !w.reportedOnce || now.Sub(w.lastReport) >= ErrorInterval {
		w.opts.OnError(err, w.unreported)
		w.unreported, w.lastReport, w.reportedOnce = 0, now, true
	}
}
