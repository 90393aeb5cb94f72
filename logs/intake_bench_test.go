package logs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkIntake is the whole intake on one core: a generated realistic
// log of a million lines (96% ordinary traffic) read from a file by a
// FileSource and parsed to events. Run it with -cpu 1 for the one-core
// figure. It reports lines/s and the heap in use after the run, which must
// not grow with the log's length (nothing read is kept past its batch).
func BenchmarkIntake(b *testing.B) {
	const total = 1_000_000
	path := filepath.Join(b.TempDir(), "mail.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := WriteSampleLog(f, total, 1); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for range b.N {
		p := newTestParser(b, ParserOptions{})
		src, err := NewFileSource(FileConfig{Paths: []string{path}, FromStart: true})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		n := 0
		emit := func(Event) { events++ }
		err = src.Run(ctx, func(batch Batch) error {
			for _, l := range batch.Lines {
				p.Parse(l, emit)
			}
			n += len(batch.Lines)
			if n >= total {
				cancel()
			}
			return nil
		})
		cancel()
		if n != total {
			b.Fatalf("read %d lines, want %d (Run: %v)", n, total, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(events)/float64(b.N), "events/run")
	b.ReportMetric(float64(heapInUse())/(1<<20), "heap-MiB")
}
