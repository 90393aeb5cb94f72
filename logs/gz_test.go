package logs

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// gzipFile compresses path to path.gz with gzip(1), as logrotate's compress
// does, and returns the new name.
func gzipFile(t *testing.T, path string) string {
	t.Helper()
	if _, err := exec.LookPath("gzip"); err != nil {
		t.Skip("gzip not installed")
	}
	if out, err := exec.Command("gzip", path).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v: %s", err, out)
	}
	return path + ".gz"
}

func replay(t *testing.T, path string, maxLen int) []Line {
	t.Helper()
	c := &collector{}
	if err := ReplayFile(context.Background(), path, maxLen, c.handle); err != nil {
		t.Fatal(err)
	}
	return c.got()
}

func TestReplayFileReadsPlainAndGzip(t *testing.T) {
	content := "first\r\nsecond\n" + strings.Repeat("x", 200) + "\nlast without newline"
	want := []string{"first", "second", strings.Repeat("x", 100), "last without newline"}
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string) string
	}{
		{"plain", func(t *testing.T, path string) string { return path }},
		{"gzip", gzipFile},
		{"gzip without .gz", func(t *testing.T, path string) string {
			gz := gzipFile(t, path)
			if err := os.Rename(gz, path+".1"); err != nil {
				t.Fatal(err)
			}
			return path + ".1"
		}},
		{"concatenated gzip members", func(t *testing.T, path string) string {
			// Two halves compressed apart and appended: one valid gzip file.
			var joined []byte
			for i, part := range []string{content[:14], content[14:]} {
				name := fmt.Sprintf("%s.part%d", path, i)
				writeFile(t, name, part)
				data, err := os.ReadFile(gzipFile(t, name))
				if err != nil {
					t.Fatal(err)
				}
				joined = append(joined, data...)
			}
			writeFile(t, path+".gz", string(joined))
			return path + ".gz"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.log")
			writeFile(t, path, content)
			name := tt.prepare(t, path)
			lines := replay(t, name, 100)
			var got []string
			for i, l := range lines {
				got = append(got, string(l.Text))
				if want := (Origin{File: name, Line: int64(i + 1)}); l.Origin != want {
					t.Errorf("line %d origin = %+v, want %+v", i+1, l.Origin, want)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("lines = %q, want %q", got, want)
			}
		})
	}
}

func TestReplayFileRejectsCorruptGzip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	writeFile(t, path, strings.Repeat("Dec  4 21:52:46 mx1 postfix/smtpd[1]: connect\n", 1000))
	gz := gzipFile(t, path)
	data, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	// Cut short, as a compression interrupted by a crash leaves it.
	writeFile(t, gz, string(data[:len(data)/2]))
	if err := ReplayFile(context.Background(), gz, 0, (&collector{}).handle); err == nil {
		t.Fatal("ReplayFile read a truncated gzip file without error")
	}
}
