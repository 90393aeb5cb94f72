package logs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newSource(t *testing.T, cfg FileConfig) *FileSource {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	cfg.Logger = testLogger(t)
	src, err := NewFileSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func openStore(t *testing.T, dir string) *FilePositions {
	t.Helper()
	s, err := OpenFilePositions(filepath.Join(dir, "positions.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFollowSplitsLines(t *testing.T) {
	type write struct {
		data  string
		lines int // lines to wait for once data is written
	}
	tests := []struct {
		name   string
		writes []write
		want   []string
	}{
		{
			// "first" and the start of "second" arrive in one write, so the
			// read that finds "first" has seen the half line too.
			name:   "a partial line waits for its rest",
			writes: []write{{"first\nsec", 1}, {"ond\nthird\n", 3}},
			want:   []string{"first", "second", "third"},
		},
		{
			name:   "CRLF loses its CR, a lone CR stays",
			writes: []write{{"one\r\ntwo\r\n\r\nthree\rstill three\n", 4}},
			want:   []string{"one", "two", "", "three\rstill three"},
		},
		{
			name:   "a CR split from its LF",
			writes: []write{{"one\r", 0}, {"\ntwo\n", 2}},
			want:   []string{"one", "two"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.log")
			writeFile(t, path, "")
			c := &collector{}
			start(t, newSource(t, FileConfig{Paths: []string{path}}), c)
			c.waitStarted(t)
			for _, w := range tt.writes {
				appendFile(t, path, w.data)
				c.waitLines(t, w.lines)
			}
			if got := c.texts(); !slices.Equal(got, tt.want) {
				t.Fatalf("lines = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFollowNumbersLinesAndNamesTheirFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, "a\nb\n")
	c := &collector{}
	start(t, newSource(t, FileConfig{Paths: []string{path}, FromStart: true}), c)
	c.waitLines(t, 2)
	appendFile(t, path, "c\n")
	c.waitLines(t, 3)
	for i, l := range c.got() {
		if want := (Origin{File: path, Line: int64(i + 1)}); l.Origin != want {
			t.Errorf("line %q origin = %+v, want %+v", l.Text, l.Origin, want)
		}
	}
}

func TestFollowFirstStartBeginsAtTheEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	// The last line is not finished yet: it belongs to what follows.
	writeFile(t, path, "old 1\nold 2\nnew ")
	c := &collector{}
	start(t, newSource(t, FileConfig{Paths: []string{path}, Store: openStore(t, dir)}), c)
	// Poll for the initial position to be saved, the sign that Run began.
	c.waitStarted(t)
	appendFile(t, path, "1\nnew 2\n")
	c.waitLines(t, 2)
	got := c.got()
	if texts := c.texts(); !slices.Equal(texts, []string{"new 1", "new 2"}) {
		t.Fatalf("lines = %q, want the new ones only", texts)
	}
	if got[0].Origin.Line != 3 {
		t.Errorf("first new line is numbered %d, want 3", got[0].Origin.Line)
	}
}

func TestFollowFileMissingAtStart(t *testing.T) {
	dir := t.TempDir()
	inDir := filepath.Join(dir, "mail.log")
	// A directory that does not exist yet has no inotify watch: polling
	// finds the file.
	inMissingDir := filepath.Join(dir, "later", "mail.log")
	c := &collector{}
	start(t, newSource(t, FileConfig{Paths: []string{inDir, inMissingDir}, Store: openStore(t, dir)}), c)
	c.waitStarted(t)

	// Appearing after the start, they are read from their first line.
	writeFile(t, inDir, "a 1\na 2\n")
	if err := os.Mkdir(filepath.Dir(inMissingDir), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, inMissingDir, "b 1\n")
	c.waitLines(t, 3)
	got := c.texts()
	slices.Sort(got)
	if want := []string{"a 1", "a 2", "b 1"}; !slices.Equal(got, want) {
		t.Fatalf("lines = %q, want %q", got, want)
	}
}

func TestFollowGlobPicksUpNewFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.log"), "a 1\n")
	writeFile(t, filepath.Join(dir, "a.log.1"), "rotated: not matched\n")
	c := &collector{}
	start(t, newSource(t, FileConfig{Paths: []string{filepath.Join(dir, "*.log")}, FromStart: true}), c)
	c.waitLines(t, 1)
	writeFile(t, filepath.Join(dir, "b.log"), "b 1\nb 2\n")
	c.waitLines(t, 3)
	if got, want := c.texts(), []string{"a 1", "b 1", "b 2"}; !slices.Equal(got, want) {
		t.Fatalf("lines = %q, want %q", got, want)
	}
}

func TestFollowCutsLongLines(t *testing.T) {
	tests := []struct {
		name   string
		maxLen int
		long   int
	}{
		{"1 MiB line, default limit", 0, 1 << 20},
		{"line one byte over a small limit", 100, 101},
		{"line at a small limit is whole", 100, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "mail.log")
			writeFile(t, path, "")
			store := openStore(t, dir)
			c := &collector{store: store}
			src := newSource(t, FileConfig{Paths: []string{path}, Store: store, MaxLineLen: tt.maxLen})
			r := start(t, src, c)
			c.waitStarted(t)
			long := strings.Repeat("x", tt.long)
			// Written in pieces, as a writer would, so the cut happens while
			// the line is still arriving.
			appendFile(t, path, "before\n"+long[:len(long)/2])
			appendFile(t, path, long[len(long)/2:]+"\nafter\n")
			c.waitLines(t, 3)
			limit := tt.maxLen
			if limit == 0 {
				limit = DefaultMaxLineLen
			}
			got := c.got()
			if string(got[0].Text) != "before" || string(got[2].Text) != "after" {
				t.Fatalf("lines around the long one = %q, %q", got[0].Text, got[2].Text)
			}
			if want := min(tt.long, limit); len(got[1].Text) != want {
				t.Errorf("long line kept %d bytes, want %d", len(got[1].Text), want)
			}
			wantCut := int64(0)
			if tt.long > limit {
				wantCut = 1
			}
			if cut := src.Stats().LinesCut; cut != wantCut {
				t.Errorf("lines cut = %d, want %d", cut, wantCut)
			}
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			// The saved offset is past the whole long line: a restart reads
			// on from the next one.
			appendFile(t, path, "next\n")
			c2 := &collector{store: store}
			start(t, newSource(t, FileConfig{Paths: []string{path}, Store: store, MaxLineLen: tt.maxLen}), c2)
			c2.waitLines(t, 1)
			if got := c2.texts(); !slices.Equal(got, []string{"next"}) {
				t.Fatalf("after restart: %q, want [next]", got)
			}
			if l := c2.got()[0].Origin.Line; l != 4 {
				t.Errorf("line after restart numbered %d, want 4", l)
			}
		})
	}
}

// writeNumbered writes lines numbered from..to-1 to path.
func writeNumbered(t *testing.T, path string, from, to int) {
	t.Helper()
	var b strings.Builder
	for n := from; n < to; n++ {
		fmt.Fprintf(&b, "line %d Dec  4 21:52:46 mx1 dovecot: imap-login: Disconnected\n", n)
	}
	appendFile(t, path, b.String())
}

func TestFollowRestartNeitherRepeatsNorSkips(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	writeFile(t, path, "")
	store := openStore(t, dir)

	w := newNumberedWriter(t, path)
	var all []Line
	const rounds = 4
	for round := range rounds {
		// A fresh store object each time, as a restarted process has.
		store = openStore(t, dir)
		c := &collector{store: store}
		r := start(t, newSource(t, FileConfig{Paths: []string{path}, Store: store}), c)
		if round == 0 {
			c.waitStarted(t)
		}
		// Lines written while the source runs, stopped in mid-stream ...
		target := w.count() + 3000
		for w.count() < target {
			if err := w.write(100); err != nil {
				t.Fatal(err)
			}
		}
		c.waitLines(t, 1000)
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		all = append(all, c.got()...)
		// ... and lines written while it is stopped.
		if err := w.write(500); err != nil {
			t.Fatal(err)
		}
	}
	c := &collector{store: openStore(t, dir)}
	start(t, newSource(t, FileConfig{Paths: []string{path}, Store: c.store}), c)
	c.waitLines(t, w.count()-len(all))
	all = append(all, c.got()...)
	checkSequence(t, numbered(t, all), 0, w.count())
	for i, l := range all {
		if l.Origin.Line != int64(i+1) {
			t.Fatalf("line %d numbered %d after restarts", i+1, l.Origin.Line)
		}
	}
}

func TestFollowRedeliversWhatTheConsumerDidNotAccept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	writeFile(t, path, "")
	writeNumbered(t, path, 0, 5000)
	store := openStore(t, dir)
	// Small reads make many batches; the third fails as a crash before
	// commit would.
	c := &collector{store: store, failAt: 3}
	r := start(t, newSource(t, FileConfig{Paths: []string{path}, Store: store, FromStart: true, ReadSize: 4096, MaxLineLen: 1024}), c)
	if err := r.wait(t); !errors.Is(err, errConsumerCrashed) {
		t.Fatalf("Run returned %v, want the consumer's error", err)
	}
	accepted := c.got()
	if len(accepted) == 0 {
		t.Fatal("no batch was accepted before the failure")
	}
	c2 := &collector{store: openStore(t, dir)}
	start(t, newSource(t, FileConfig{Paths: []string{path}, Store: c2.store}), c2)
	c2.waitLines(t, 5000-len(accepted))
	checkSequence(t, numbered(t, append(accepted, c2.got()...)), 0, 5000)
}

// firstRun follows path, new and empty, with positions saved in dir while
// lines numbered 0..n-1 are written to it, and stops; it returns the lines.
func firstRun(t *testing.T, dir, path string, n int) []Line {
	t.Helper()
	writeFile(t, path, "")
	c := &collector{store: openStore(t, dir)}
	r := start(t, newSource(t, FileConfig{Paths: []string{path}, Store: c.store}), c)
	c.waitStarted(t)
	writeNumbered(t, path, 0, n)
	c.waitLines(t, n)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	return c.got()
}

func TestFollowRestartFinishesAFileRotatedWhileStopped(t *testing.T) {
	for _, rotatedName := range []string{"mail.log.1", "mail.log-20261204"} {
		t.Run(rotatedName, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "mail.log")
			first := firstRun(t, dir, path, 100)
			// While stopped: more lines, rotation, lines in the new file.
			writeNumbered(t, path, 100, 150)
			if err := os.Rename(path, filepath.Join(dir, rotatedName)); err != nil {
				t.Fatal(err)
			}
			writeNumbered(t, path, 150, 200)

			c2 := &collector{store: openStore(t, dir)}
			start(t, newSource(t, FileConfig{Paths: []string{path}, Store: c2.store}), c2)
			c2.waitLines(t, 100)
			checkSequence(t, numbered(t, append(first, c2.got()...)), 0, 200)
			if got := c2.got()[0].Origin; got.File != filepath.Join(dir, rotatedName) || got.Line != 101 {
				t.Errorf("first line after restart from %+v, want %s line 101", got, rotatedName)
			}
		})
	}
}

func TestFollowReadsAFileCreatedWhileStoppedFromItsStart(t *testing.T) {
	dir := t.TempDir()
	pattern := filepath.Join(dir, "*.log")
	writeFile(t, filepath.Join(dir, "a.log"), "a old\n")
	store := openStore(t, dir)
	c := &collector{store: store}
	r := start(t, newSource(t, FileConfig{Paths: []string{pattern}, Store: store}), c)
	c.waitStarted(t)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if len(c.got()) != 0 {
		t.Fatalf("first start read old lines: %q", c.texts())
	}
	writeFile(t, filepath.Join(dir, "b.log"), "b 1\nb 2\n")
	c2 := &collector{store: openStore(t, dir)}
	start(t, newSource(t, FileConfig{Paths: []string{pattern}, Store: c2.store}), c2)
	c2.waitLines(t, 2)
	if got := c2.texts(); !slices.Equal(got, []string{"b 1", "b 2"}) {
		t.Fatalf("lines = %q, want b's", got)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestFollowTellsAReusedInodeFromTheFileBefore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mail.log")
	firstRun(t, dir, path, 10)
	old := inode(t, path)

	// While stopped, the file is deleted and a new one made; ext4 and tmpfs
	// hand the freed inode to the next file created. The new file is longer
	// than the saved offset, so only the fingerprint tells them apart.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeNumbered(t, path, 1000, 1030)
	if got := inode(t, path); got != old {
		t.Skipf("this filesystem did not reuse inode %d (got %d): nothing to test", old, got)
	}

	c2 := &collector{store: openStore(t, dir)}
	start(t, newSource(t, FileConfig{Paths: []string{path}, Store: c2.store}), c2)
	c2.waitLines(t, 30)
	checkSequence(t, numbered(t, c2.got()), 1000, 1030)
}

func TestFollowStopsWhenTheContextEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- newSource(t, FileConfig{Paths: []string{path}}).Run(ctx, func(Batch) error { return nil })
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
