package eve

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTimeFormat(t *testing.T) {
	east := time.FixedZone("", 5*3600+30*60)
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 27, 22, 9, 10, 123456789, time.UTC), `"2026-11-27T22:09:10.123456+0000"`},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, east), `"2026-01-02T03:04:05.000000+0530"`},
		{time.Date(2026, 1, 2, 3, 4, 5, 999, time.FixedZone("", -7*3600)), `"2026-01-02T03:04:05.000000-0700"`},
	} {
		b, err := json.Marshal(Time(c.t))
		require.NoError(t, err)
		assert.Equal(t, c.want, string(b))
	}
}

func u16(v uint16) *uint16 { return &v }
func u8(v uint8) *uint8    { return &v }

// TestEventJSON pins the field names and order of Suricata's EVE alert, and that fields a
// protocol lacks are left out.
func TestEventJSON(t *testing.T) {
	ts := Time(time.Date(2026, 11, 27, 22, 9, 10, 123456000, time.UTC))
	tcp := Event{Timestamp: ts, InIface: "eth0", EventType: "alert", SrcIP: "198.18.0.1", SrcPort: u16(40000),
		DestIP: "198.18.0.2", DestPort: u16(80), Proto: "TCP",
		Alert: &Alert{Action: Blocked, GID: 1, SignatureID: 7, Rev: 2, Signature: `say "hi" <b>`, Severity: 3}}
	b, err := json.Marshal(tcp)
	require.NoError(t, err)
	assert.Equal(t, `{"timestamp":"2026-11-27T22:09:10.123456+0000","in_iface":"eth0","event_type":"alert",`+
		`"src_ip":"198.18.0.1","src_port":40000,"dest_ip":"198.18.0.2","dest_port":80,"proto":"TCP",`+
		`"alert":{"action":"blocked","gid":1,"signature_id":7,"rev":2,"signature":"say \"hi\" \u003cb\u003e","category":"","severity":3}}`, string(b))

	icmp := Event{Timestamp: ts, EventType: "alert", SrcIP: "198.18.0.1", DestIP: "198.18.0.2", Proto: "ICMP",
		ICMPType: u8(8), ICMPCode: u8(0), Alert: &Alert{Action: Allowed}}
	b, err = json.Marshal(icmp)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "port")
	assert.Contains(t, string(b), `"proto":"ICMP","icmp_type":8,"icmp_code":0,"alert":{"action":"allowed"`)
}

// TestWriter: events come out one JSON object a line, in order, and without HTML escaping.
func TestWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eve.json")
	w, err := Open(path, nil)
	require.NoError(t, err)
	for i := range 100 {
		require.True(t, w.Write(Event{EventType: "alert", SrcIP: "a<b", Alert: &Alert{SignatureID: uint32(i)}}))
	}
	require.NoError(t, w.Close())
	assert.EqualValues(t, 100, w.Written())
	assert.Zero(t, w.Dropped())
	assert.NoError(t, w.Err())

	lines := readLines(t, path)
	require.Len(t, lines, 100)
	for i, l := range lines {
		var ev Event
		require.NoError(t, json.Unmarshal([]byte(l), &ev))
		assert.EqualValues(t, i, ev.Alert.SignatureID)
		assert.Contains(t, l, `"src_ip":"a<b"`)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err())
	return lines
}

// stuck is an io.Writer that blocks until released, like a disk that stopped answering.
type stuck struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	buf     strings.Builder
}

func (s *stuck) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.entered) })
	<-s.release
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// TestWriterFull: while the output blocks, Write never waits: it queues what fits and counts
// the rest as dropped; everything queued is written by Close.
func TestWriterFull(t *testing.T) {
	out := &stuck{entered: make(chan struct{}), release: make(chan struct{})}
	w := NewWriter(out, 2)
	require.True(t, w.Write(Event{EventType: "alert"})) // taken by the writer, which then blocks
	<-out.entered
	// The output stays blocked until release is closed below, so a Write that waited would never
	// return: the 30 s bound catches that hang without timing how long Write takes.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		assert.True(t, w.Write(Event{EventType: "alert"}))
		assert.True(t, w.Write(Event{EventType: "alert"}))
		for range 10 {
			assert.False(t, w.Write(Event{EventType: "alert"}))
		}
	}()
	select {
	case <-wrote:
	case <-time.After(30 * time.Second):
		close(out.release)
		t.Fatal("Write waited for the blocked output")
	}
	assert.EqualValues(t, 10, w.Dropped())
	close(out.release)
	require.NoError(t, w.Close())
	assert.EqualValues(t, 3, w.Written())
	assert.Equal(t, 3, strings.Count(out.buf.String(), "\n"))
}

// TestReopen: after the file is renamed away (log rotation), Reopen starts a new one.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "eve.json")
	w, err := Open(path, nil)
	require.NoError(t, err)
	w.Write(Event{EventType: "alert", SrcIP: "first"})
	for deadline := time.Now().Add(5 * time.Second); w.Written() < 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, os.Rename(path, path+".1"))
	require.NoError(t, w.Reopen())
	w.Write(Event{EventType: "alert", SrcIP: "second"})
	require.NoError(t, w.Close())

	old, cur := readLines(t, path+".1"), readLines(t, path)
	require.Len(t, old, 1)
	require.Len(t, cur, 1)
	assert.Contains(t, old[0], "first")
	assert.Contains(t, cur[0], "second")
	assert.ErrorIs(t, w.Reopen(), os.ErrClosed)
}

// TestReopenNotFile: Reopen does nothing for a Writer that is not on a file Open opened.
func TestReopenNotFile(t *testing.T) {
	var b strings.Builder
	w := NewWriter(&syncBuilder{b: &b}, 0)
	assert.NoError(t, w.Reopen())
	require.NoError(t, w.Close())
}

type syncBuilder struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestDevFull reproduces issue 14's hidden failures: with /dev/full, events were counted as
// written while every write failed. Now none is written, all are failed, and OnError hears of
// it at once but not once per event.
func TestDevFull(t *testing.T) {
	var calls []uint64
	var mu sync.Mutex
	w, err := Open("/dev/full", &Options{AllowSpecial: true, OnError: func(err error, lost uint64) {
		assert.ErrorIs(t, err, syscall.ENOSPC)
		mu.Lock()
		calls = append(calls, lost)
		mu.Unlock()
	}})
	require.NoError(t, err)
	const n = 50
	for range n {
		w.Write(Event{EventType: "alert"})
		time.Sleep(time.Millisecond) // several batches, so several failures
	}
	require.NoError(t, w.Close())
	assert.Zero(t, w.Written())
	assert.EqualValues(t, n, w.Failed())
	assert.ErrorIs(t, w.Err(), syscall.ENOSPC)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, calls, "the first failure is reported at once")
	assert.Less(t, len(calls), n, "reports are rate-limited")
}

// TestOpenRefuses: a FIFO, a device and a symlink are refused by default, without blocking (a
// FIFO without a reader would block an open for writing forever), and allowed on request.
func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	target := filepath.Join(dir, "target.json")
	link := filepath.Join(dir, "link.json")
	require.NoError(t, os.Symlink(target, link))
	for _, tc := range []struct{ name, path, want string }{
		{"fifo", fifo, "a FIFO"},
		{"device", "/dev/null", "a character device"},
		{"symlink", link, "a symbolic link"},
		{"directory", dir, "directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.path, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			if tc.name != "directory" {
				assert.ErrorIs(t, err, ErrSpecial)
			}
		})
	}
	_, err := os.Stat(target)
	assert.ErrorIs(t, err, os.ErrNotExist, "the symlink's target was not created")

	// Allowed: the symlink is followed; the FIFO without a reader fails at once.
	w, err := Open(link, &Options{AllowSpecial: true})
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = os.Stat(target)
	assert.NoError(t, err)
	_, err = Open(fifo, &Options{AllowSpecial: true})
	assert.ErrorIs(t, err, syscall.ENXIO, "no reader: fails rather than blocks")
}

// TestReopenFIFO reproduces issue 14's hang: the log path replaced by a FIFO made Reopen block
// forever. Now it fails at once and the old file stays in use.
func TestReopenFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eve.json")
	w, err := Open(path, nil)
	require.NoError(t, err)
	require.NoError(t, os.Rename(path, path+".1"))
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	err = w.Reopen()
	assert.ErrorIs(t, err, ErrSpecial)
	w.Write(Event{EventType: "alert", SrcIP: "still"})
	require.NoError(t, w.Close())
	lines := readLines(t, path+".1")
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0], "still")
}

// TestCloseStuckFIFO: a FIFO allowed on purpose whose reader stops reading cannot hold Close
// (and so the bridge's exit) for longer than CloseTimeout; what was not written is failed.
func TestCloseStuckFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	rfd, err := syscall.Open(fifo, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer syscall.Close(rfd) // a reader that never reads
	w, err := Open(fifo, &Options{AllowSpecial: true, Queue: 100_000})
	require.NoError(t, err)
	big := Event{EventType: "alert", Alert: &Alert{Signature: strings.Repeat("x", 4096)}}
	for range 100 { // 400 KiB: far more than a pipe holds
		w.Write(big)
	}
	done := make(chan error, 1)
	go func() { done <- w.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(CloseTimeout + 30*time.Second):
		t.Fatal("Close blocked on a FIFO nobody reads")
	}
	assert.Positive(t, w.Failed())
	assert.EqualValues(t, 100, w.Written()+w.Failed())
}

// TestChown: the log file changes owner; a device allowed as the log does not.
func TestChown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	path := filepath.Join(t.TempDir(), "eve.json")
	w, err := Open(path, nil)
	require.NoError(t, err)
	require.NoError(t, w.Chown(65534, 65534))
	require.NoError(t, w.Close())
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(path, &st))
	assert.EqualValues(t, 65534, st.Uid)

	require.NoError(t, syscall.Stat("/dev/full", &st))
	before := st.Uid
	w, err = Open("/dev/full", &Options{AllowSpecial: true})
	require.NoError(t, err)
	require.NoError(t, w.Chown(65534, 65534))
	require.NoError(t, w.Close())
	require.NoError(t, syscall.Stat("/dev/full", &st))
	assert.Equal(t, before, st.Uid, "a device keeps its owner")
}
