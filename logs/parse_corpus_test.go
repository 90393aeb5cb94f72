package logs

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// corpusNow is the reference clock for corpus files: stamps without a year
// fall in 2026 (or 2025 for those after it, per year inference).
var corpusNow = time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)

// expectation is one "# expect: {...}" directive of a corpus file.
type expectation struct {
	Rule     string `json:"rule"`
	Service  string `json:"service"`
	Kind     Kind   `json:"kind"`
	IP       string `json:"ip"`
	User     string `json:"user"`
	Attempts int    `json:"attempts"`
	Time     string `json:"time"` // RFC 3339; checked when set
}

// TestCorpus runs every file under testdata/corpus through one Parser per
// file (so counting state carries across a file's lines, as in a real log).
// Each line must yield exactly the events of the "# expect:" directives
// right above it, in order; a line with none above must yield nothing.
// "# ident: NAME" makes the next line a journal line (bare message, Ident
// set), as the journal source hands them over.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus files: %v", err)
	}
	total := map[string]int{}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			p, err := NewParser(ParserOptions{Now: func() time.Time { return corpusNow }, Location: time.UTC})
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			var want []expectation
			ident := ""
			n := 0
			for sc.Scan() {
				n++
				text := sc.Text()
				switch {
				case strings.HasPrefix(text, "# expect: "):
					var e expectation
					if err := json.Unmarshal([]byte(strings.TrimPrefix(text, "# expect: ")), &e); err != nil {
						t.Fatalf("%s:%d: bad expect: %v", file, n, err)
					}
					if e.Attempts == 0 {
						e.Attempts = 1
					}
					want = append(want, e)
					continue
				case strings.HasPrefix(text, "# ident: "):
					ident = strings.TrimPrefix(text, "# ident: ")
					continue
				case strings.HasPrefix(text, "#") || strings.TrimSpace(text) == "":
					continue
				}
				var got []Event
				p.Parse(Line{Text: []byte(text), Ident: ident, Origin: Origin{File: file, Line: int64(n)}}, func(e Event) { got = append(got, e) })
				checkEvents(t, file, n, text, got, want)
				for _, e := range got {
					total[e.Rule]++
				}
				want, ident = nil, ""
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Every built-in rule must be shown working by at least one corpus line.
	for _, r := range builtinRules {
		if total[r.Name] == 0 {
			t.Errorf("rule %s: no corpus line matches it", r.Name)
		}
	}
}

func checkEvents(t *testing.T, file string, n int, text string, got []Event, want []expectation) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s:%d: got %d events, want %d\n  line: %s\n  got: %+v", file, n, len(got), len(want), text, got)
		return
	}
	for i, e := range got {
		w := want[i]
		wantAddr, err := netip.ParseAddr(w.IP)
		if err != nil {
			t.Fatalf("%s:%d: bad expected ip %q", file, n, w.IP)
		}
		if e.Rule != w.Rule || e.Service != w.Service || e.Kind != w.Kind || e.Addr != wantAddr || e.User != w.User || e.Attempts != w.Attempts {
			t.Errorf("%s:%d: got {rule:%s service:%s kind:%s ip:%s user:%q attempts:%d}\n  want %+v\n  line: %s",
				file, n, e.Rule, e.Service, e.Kind, e.Addr, e.User, e.Attempts, w, text)
		}
		if w.Time != "" {
			wt, err := time.Parse(time.RFC3339Nano, w.Time)
			if err != nil {
				t.Fatalf("%s:%d: bad expected time %q", file, n, w.Time)
			}
			if !e.Time.Equal(wt) {
				t.Errorf("%s:%d: time %s, want %s", file, n, e.Time.Format(time.RFC3339Nano), w.Time)
			}
		}
		if e.Origin.Line != int64(n) || e.Origin.File != file {
			t.Errorf("%s:%d: origin %+v", file, n, e.Origin)
		}
	}
}
