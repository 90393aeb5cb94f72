package logs

import (
	"bytes"
	"testing"
	"time"
)

func sampleLines(tb testing.TB, n int) [][]byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := WriteSampleLog(&buf, n, 1); err != nil {
		tb.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
}

// BenchmarkParse parses a generated log of 1,000,000 lines (96% ordinary
// traffic) per iteration on one goroutine and reports lines per second and
// allocations per line.
func BenchmarkParse(b *testing.B) {
	lines := sampleLines(b, 1_000_000)
	p := newTestParser(b, ParserOptions{})
	events := 0
	emit := func(Event) { events++ }
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		for _, l := range lines {
			p.Parse(Line{Text: l}, emit)
		}
		n += len(lines)
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(events)/float64(n), "events/line")
}

// TestSampleLogShape: the generated log has the promised mix, and its
// failures come from many sources.
func TestSampleLogShape(t *testing.T) {
	lines := sampleLines(t, 100_000)
	if len(lines) != 100_000 {
		t.Fatalf("%d lines", len(lines))
	}
	p := newTestParser(t, ParserOptions{})
	failures, sources := 0, map[string]bool{}
	for _, l := range lines {
		p.Parse(Line{Text: l}, func(e Event) {
			if e.Kind != KindAuthSuccess {
				failures++
				sources[e.Addr.String()] = true
			}
		})
	}
	if share := float64(failures) / float64(len(lines)); share < 0.02 || share > 0.05 {
		t.Errorf("failure share %.3f, want 2-5%%", share)
	}
	if len(sources) < 1000 {
		t.Errorf("%d failing sources, want many", len(sources))
	}
}

// TestOrdinaryLinesDoNotAllocate: lines that are no event, and successful
// logins of known users, cost no allocation.
func TestOrdinaryLinesDoNotAllocate(t *testing.T) {
	lines := sampleLines(t, 20_000)
	p := newTestParser(t, ParserOptions{})
	emit := func(Event) {}
	for _, l := range lines { // warm the user table
		p.Parse(Line{Text: l}, emit)
	}
	for _, l := range lines {
		var kinds []Kind
		p.Parse(Line{Text: l}, func(e Event) { kinds = append(kinds, e.Kind) })
		if len(kinds) > 0 && kinds[0] != KindAuthSuccess {
			continue // failures may allocate (new Dovecot sessions)
		}
		if a := testing.AllocsPerRun(10, func() { p.Parse(Line{Text: l}, emit) }); a != 0 {
			t.Errorf("%.0f allocations for %s", a, l)
		}
	}
}
