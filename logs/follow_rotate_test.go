package logs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// rotation rotates the log at path written by w, the way one logrotate (or
// syslog) setting does, while w goes on writing.
type rotation func(t *testing.T, w *numberedWriter, path string, n int, c *collector)

// writeOnOldFile lets the writer go on writing to the rotated file for a
// while, as syslog does between the rename and its reopen on SIGHUP.
func writeOnOldFile(t *testing.T, w *numberedWriter) {
	t.Helper()
	from := w.count()
	waitFor(t, "writes to the rotated file", 10*time.Second, func() bool { return w.count() >= from+300 })
}

var rotations = map[string]rotation{
	// logrotate's default without "create": rename, then the writer makes a
	// new file when told to reopen.
	"rename": func(t *testing.T, w *numberedWriter, path string, n int, _ *collector) {
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, n)); err != nil {
			t.Fatal(err)
		}
		writeOnOldFile(t, w)
		if err := w.reopen(); err != nil {
			t.Fatal(err)
		}
	},
	// logrotate's "create": the new, empty file exists before the writer
	// leaves the old one.
	"rename and create": func(t *testing.T, w *numberedWriter, path string, n int, _ *collector) {
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, n)); err != nil {
			t.Fatal(err)
		}
		writeFile(t, path, "")
		writeOnOldFile(t, w)
		if err := w.reopen(); err != nil {
			t.Fatal(err)
		}
	},
	// Delete and re-create: the old file is only reachable through the
	// descriptors still open on it.
	"delete and re-create": func(t *testing.T, w *numberedWriter, path string, _ int, _ *collector) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		writeOnOldFile(t, w)
		if err := w.reopen(); err != nil {
			t.Fatal(err)
		}
	},
	// copytruncate: copy, then truncate in place. Lines written between the
	// reader's last read and the truncation exist only in the copy, for any
	// reader of the live file; so the writer is held and the follower allowed
	// to catch up first. What is tested is that the truncation is noticed
	// although the writer starts again at once and soon outgrows the old
	// offset, and that nothing is read twice.
	"copytruncate": func(t *testing.T, w *numberedWriter, path string, n int, c *collector) {
		w.mu.Lock()
		defer w.mu.Unlock()
		written := w.n
		waitFor(t, "the follower to catch up", 10*time.Second, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return len(c.lines) >= written
		})
		src, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		dst, err := os.Create(fmt.Sprintf("%s.%d", path, n))
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
	},
}

func TestFollowSurvivesRotationUnderContinuousWriting(t *testing.T) {
	const (
		total = 60000
		turns = 5
	)
	for name, rotate := range rotations {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "mail.log")
			w := newNumberedWriter(t, path)
			src, err := NewFileSource(FileConfig{Paths: []string{path}, FromStart: true, PollInterval: 50 * time.Millisecond, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			c := &collector{}
			r := start(t, src, c)

			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var writeErr error
			wg.Add(1)
			go func() {
				defer wg.Done()
				for w.count() < total && ctx.Err() == nil {
					if writeErr = w.write(50); writeErr != nil {
						return
					}
					// Pace the writer so rotations fall amid writing rather
					// than after it.
					time.Sleep(100 * time.Microsecond)
				}
			}()
			t.Cleanup(func() { cancel(); wg.Wait() })

			for i := 1; i <= turns; i++ {
				waitFor(t, "more lines written", 20*time.Second, func() bool { return w.count() >= i*total/(turns+1) })
				rotate(t, w, path, i, c)
			}
			wg.Wait()
			if writeErr != nil {
				t.Fatal(writeErr)
			}
			// One last line after every rotation: once it is in, a repeat
			// from any rotation would have been delivered before it.
			if err := w.write(1); err != nil {
				t.Fatal(err)
			}
			c.waitLines(t, total+1)
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			checkSequence(t, numbered(t, c.got()), 0, total+1)
			if name == "copytruncate" {
				if got := src.Stats().Truncations; got != turns {
					t.Errorf("truncations = %d, want %d", got, turns)
				}
			} else if got := src.Stats().Rotations; got != turns {
				t.Errorf("rotations = %d, want %d", got, turns)
			}
		})
	}
}
