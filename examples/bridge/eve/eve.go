// Package eve writes alert events in the layout of Suricata's EVE JSON log, one JSON object per
// line, so that the tools that read eve.json (jq one-liners, Filebeat, Logstash, Splunk) read the
// example bridge's events too.
//
// A bridge worker must never wait on a disk: [Writer.Write] hands the event to a goroutine
// through a bounded queue and returns at once, counting the event as dropped when the queue is
// full. Building an [Event] allocates; that is fine because alerts are rare next to frames.
package eve

import (
	"bufio"
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
	out  io.Writer
	file *os.File
}

// NewWriter returns a Writer that writes to w with a queue of queue events (0 means
// DefaultQueue). Close does not close w.
func NewWriter(w io.Writer, queue int) *Writer {
	return start(w, nil, "", queue)
}

// Open opens path for appending, creating it if needed, and returns a Writer to it. The path
// "-" means standard output.
func Open(path string, queue int) (*Writer, error) {
	if path == "-" {
		return NewWriter(os.Stdout, queue), nil
	}
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	return start(f, f, path, queue), nil
}

func openFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

func start(out io.Writer, f *os.File, path string, queue int) *Writer {
	if queue <= 0 {
		queue = DefaultQueue
	}
	w := &Writer{
		q:      make(chan Event, queue),
		reopen: make(chan chan error),
		done:   make(chan struct{}),
		path:   path,
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

// Written is the number of events written so far.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Dropped is the number of events dropped because the queue was full.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Failed is the number of failed writes (an event, or a flush of several); Err returns the
// last such error.
func (w *Writer) Failed() uint64 { return w.failed.Load() }

// Err returns the last write error, or nil.
func (w *Writer) Err() error {
	if p := w.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Reopen closes and reopens the file Open opened, after writing what is queued, so that a log
// rotated away (renamed) is followed by a new file, as Suricata does on SIGHUP. For other
// Writers it does nothing.
func (w *Writer) Reopen() error {
	if w.path == "" {
		return nil
	}
	res := make(chan error, 1)
	select {
	case w.reopen <- res:
		return <-res
	case <-w.done:
		return os.ErrClosed
	}
}

// Close writes every queued event, then closes the file Open opened. No Write may follow.
func (w *Writer) Close() error {
	w.closing.Do(func() { close(w.q) })
	<-w.done
	if w.file != nil {
		return w.file.Close()
	}
	return nil
}

func (w *Writer) loop() {
	defer close(w.done)
	bw := bufio.NewWriter(w.out)
	enc := json.NewEncoder(bw) // Encode ends each object with a newline: one event a line
	enc.SetEscapeHTML(false)
	write := func(ev *Event) {
		if err := enc.Encode(ev); err != nil {
			w.fail(err)
			return
		}
		w.written.Add(1)
	}
	flush := func() {
		if err := bw.Flush(); err != nil {
			w.fail(err)
			bw.Reset(w.out) // a failed bufio.Writer refuses every later write
		}
	}
	for {
		select {
		case ev, ok := <-w.q:
			if !ok {
				flush()
				return
			}
			write(&ev)
			// Write whatever else is queued, then flush once, so that a reader (tail -f, a test)
			// sees events promptly without a syscall per event under load.
			for n := len(w.q); n > 0; n-- {
				ev, ok := <-w.q
				if !ok {
					break
				}
				write(&ev)
			}
			flush()
		case res := <-w.reopen:
			flush()
			f, err := openFile(w.path)
			if err != nil {
				res <- fmt.Errorf("eve: reopen %s: %w (still writing to the old file)", w.path, err)
				continue
			}
			old := w.file
			w.file, w.out = f, f
			bw.Reset(f)
			res <- old.Close()
		}
	}
}

func (w *Writer) fail(err error) {
	w.failed.Add(1)
	if !errors.Is(err, os.ErrClosed) {
		err = fmt.Errorf("eve: %w", err)
	}
	w.lastErr.Store(&err)
}
