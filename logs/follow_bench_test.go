package logs

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// writeMailLog writes n lines in the shapes a busy mail server logs, with
// addresses from 198.18.0.0/15, to w.
func writeMailLog(w *bufio.Writer, from, n int) error {
	for i := from; i < from+n; i++ {
		a, b := byte(i>>8), byte(i)
		ts := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond).Format(time.Stamp)
		var err error
		switch i % 5 {
		case 0:
			_, err = fmt.Fprintf(w, "%s mx1 postfix/smtpd[%d]: connect from unknown[198.18.%d.%d]\n", ts, 1000+i%5000, a, b)
		case 1:
			_, err = fmt.Fprintf(w, "%s mx1 postfix/smtpd[%d]: warning: unknown[198.18.%d.%d]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n", ts, 1000+i%5000, a, b)
		case 2:
			_, err = fmt.Fprintf(w, "%s mx1 dovecot: imap-login: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<info@example.org>, method=PLAIN, rip=198.19.%d.%d, lip=198.18.0.1, TLS, session=<q8Yx%04x>\n", ts, a, b, i&0xffff)
		case 3:
			_, err = fmt.Fprintf(w, "%s mx1 sshd[%d]: Failed password for invalid user admin from 198.18.%d.%d port %d ssh2\n", ts, 2000+i%3000, a, b, 1024+i%60000)
		default:
			_, err = fmt.Fprintf(w, "%s mx1 postfix/smtpd[%d]: disconnect from unknown[198.18.%d.%d] ehlo=1 auth=0/1 quit=1 commands=2/3\n", ts, 1000+i%5000, a, b)
		}
		if err != nil {
			return err
		}
	}
	return w.Flush()
}

func appendMailLog(tb testing.TB, path string, from, n int) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := writeMailLog(bufio.NewWriterSize(f, 1<<20), from, n); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkFollow reads a million-line file from the start to batches, as a
// first start with FromStart does, and stops when the last line is in. Run it
// with -cpu 1 for the one-core figure.
func BenchmarkFollow(b *testing.B) {
	const total = 1_000_000
	path := filepath.Join(b.TempDir(), "mail.log")
	appendMailLog(b, path, 0, total)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	size := fi.Size()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		src, err := NewFileSource(FileConfig{Paths: []string{path}, FromStart: true})
		if err != nil {
			b.Fatal(err)
		}
		readAll(b, src, total)
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "lines/s")
}

// readAll runs src until it has handed over total lines.
func readAll(b *testing.B, src Source, total int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var n int
	err := src.Run(ctx, func(batch Batch) error {
		n += len(batch.Lines)
		if n >= total {
			cancel()
		}
		return nil
	})
	if n != total {
		b.Fatalf("read %d lines, want %d (Run: %v)", n, total, err)
	}
}

// heapInUse is the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestFollowMemoryStaysFlat follows a file while a million lines are appended
// and checks the heap is no larger after a million lines than after 100,000:
// nothing read is kept past its batch.
func TestFollowMemoryStaysFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and follows a million lines")
	}
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, "")
	var mu sync.Mutex
	n, batches := 0, 0
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
	src := newSource(t, FileConfig{Paths: []string{path}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, func(b Batch) error {
			mu.Lock()
			defer mu.Unlock()
			n += len(b.Lines)
			batches++
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the source to start", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return batches > 0
	})

	appendMailLog(t, path, 0, 100_000)
	waitFor(t, "100,000 lines", 30*time.Second, func() bool { return count() == 100_000 })
	at100k := heapInUse()
	for from := 100_000; from < 1_000_000; from += 100_000 {
		appendMailLog(t, path, from, 100_000)
	}
	waitFor(t, "1,000,000 lines", 60*time.Second, func() bool { return count() == 1_000_000 })
	at1M := heapInUse()
	t.Logf("heap in use: %d KiB after 100,000 lines, %d KiB after 1,000,000", at100k>>10, at1M>>10)
	// A few MiB of slack for the runtime's own noise; keeping lines would
	// take over 100 MiB.
	if at1M > at100k+4<<20 {
		t.Errorf("heap grew from %d KiB to %d KiB while following", at100k>>10, at1M>>10)
	}
}
