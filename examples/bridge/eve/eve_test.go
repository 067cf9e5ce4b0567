package eve

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	w, err := Open(path, 0)
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
	start := time.Now()
	assert.True(t, w.Write(Event{EventType: "alert"}))
	assert.True(t, w.Write(Event{EventType: "alert"}))
	for range 10 {
		assert.False(t, w.Write(Event{EventType: "alert"}))
	}
	assert.Less(t, time.Since(start), time.Second, "Write must not wait")
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
	w, err := Open(path, 0)
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
