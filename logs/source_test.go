package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// collector is a consumer as the daemon will be: it keeps the lines of every
// batch it accepts and saves the batch's positions before accepting it.
type collector struct {
	store PositionStore

	mu      sync.Mutex
	lines   []Line
	batches int
	// failAt makes the batch with this number (1-based) fail, as a consumer
	// that crashed before committing would; 0 never fails.
	failAt int
}

var errConsumerCrashed = errors.New("consumer crashed")

func (c *collector) handle(b Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches++
	if c.batches == c.failAt {
		return errConsumerCrashed
	}
	if c.store != nil {
		if err := c.store.Save(context.Background(), b.Positions); err != nil {
			return err
		}
	}
	for _, l := range b.Lines {
		l.Text = append([]byte(nil), l.Text...)
		c.lines = append(c.lines, l)
	}
	return nil
}

func (c *collector) got() []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Line(nil), c.lines...)
}

func (c *collector) texts() []string {
	var out []string
	for _, l := range c.got() {
		out = append(out, string(l.Text))
	}
	return out
}

// waitFor polls until cond holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (c *collector) waitLines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.lines)
		c.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d lines: got %d", n, got)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitStarted waits for the first batch, which a file source hands over
// before reading: where it starts is settled then.
func (c *collector) waitStarted(t *testing.T) {
	t.Helper()
	waitFor(t, "the first batch", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.batches > 0
	})
}

// running is a source started by start; stop ends it and returns Run's error.
type running struct {
	cancel context.CancelFunc
	done   chan error
	err    error
	once   sync.Once
}

func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
		if errors.Is(r.err, context.Canceled) {
			r.err = nil
		}
	})
	return r.err
}

// wait returns Run's error once it ended by itself.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.once.Do(func() { r.err = err })
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("source did not stop")
		return nil
	}
}

func start(t *testing.T, src Source, c *collector) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- src.Run(ctx, c.handle) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// numbered returns the numbers of lines written by a numberedWriter, failing
// on any other line.
func numbered(t *testing.T, lines []Line) []int {
	t.Helper()
	out := make([]int, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(string(l.Text))
		if len(f) < 2 || f[0] != "line" {
			t.Fatalf("unexpected line %q from %+v", l.Text, l.Origin)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("unexpected line %q: %v", l.Text, err)
		}
		out = append(out, n)
	}
	return out
}

// checkSequence fails unless got is exactly from, from+1, ..., to-1: nothing
// lost, repeated or out of order.
func checkSequence(t *testing.T, got []int, from, to int) {
	t.Helper()
	seen := make(map[int]int, len(got))
	for _, n := range got {
		seen[n]++
	}
	var lost, repeated []int
	for n := from; n < to; n++ {
		switch c := seen[n]; {
		case c == 0:
			lost = append(lost, n)
		case c > 1:
			repeated = append(repeated, n)
		}
	}
	if len(lost) > 0 || len(repeated) > 0 || len(got) != to-from {
		t.Fatalf("got %d lines for %d..%d: %d lost (first %v), %d repeated (first %v)",
			len(got), from, to-1, len(lost), head(lost), len(repeated), head(repeated))
	}
	for i, n := range got {
		if n != from+i {
			t.Fatalf("line %d is number %d, want %d: out of order", i, n, from+i)
		}
	}
}

func head(s []int) []int { return s[:min(len(s), 5)] }

// numberedWriter appends numbered lines to a log the way a syslog daemon
// does: through a descriptor opened with O_APPEND that it reopens only when
// told to, after the file was rotated away.
type numberedWriter struct {
	path string

	mu sync.Mutex
	f  *os.File
	n  int // lines written
}

func newNumberedWriter(t *testing.T, path string) *numberedWriter {
	t.Helper()
	w := &numberedWriter{path: path}
	if err := w.reopen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.f.Close()
	})
	return w
}

func (w *numberedWriter) reopen() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
	}
	w.f = f
	return nil
}

// write appends lines numbered from the writer's count on.
func (w *numberedWriter) write(lines int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b []byte
	for range lines {
		b = fmt.Appendf(b, "line %d Dec  4 21:52:46 mx1 postfix/smtpd[1234]: connect from unknown[198.18.0.1]\n", w.n)
		w.n++
	}
	_, err := w.f.Write(b)
	return err
}

func (w *numberedWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// writeFile writes content to path, creating or replacing it.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

// testLogger sends a source's log to the test's, shown only on failure or -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
