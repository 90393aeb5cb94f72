package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func runApp(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{
		Name:           "portcullis",
		Commands:       []*cli.Command{logsCommand()},
		Writer:         &out,
		Reader:         strings.NewReader(stdin),
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"portcullis"}, args...))
	return out.String(), err
}

const sshdCorpus = "../../logs/testdata/corpus/sshd-public.txt"

func TestLogsTestJSON(t *testing.T) {
	out, err := runApp(t, "", "logs", "test", "--json", sshdCorpus)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d events, want 5:\n%s", len(lines), out)
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"file": sshdCorpus, "service": "ssh", "kind": "auth_failure", "ip": "194.117.26.69",
		"user": "ROOT", "attempts": 1.0, "rule": "sshd-failed-password", "time": "2026-02-25T14:34:10Z"}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %v, want %v", k, first[k], v)
		}
	}
	if _, ok := first["line"].(float64); !ok || len(first) != 9 {
		t.Errorf("keys: %v", first)
	}
}

func TestLogsTestHumanOutput(t *testing.T) {
	out, err := runApp(t, "", "logs", "test", sshdCorpus)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"FILE:LINE", "194.117.26.69", "sshd-failed-password",
		"RULE                  KIND          EVENTS  ATTEMPTS  ADDRESSES", "sshd-failed-password  auth_failure  4       4         4",
		"matched no rule but look like failures",
		// Injected lines dropped on purpose are counted apart, not listed
		// as gaps; a line no rule reads is.
		"the address is ambiguous  2",
		"1 matched no rule but look like failures",
		"Connection closed by invalid user root 20.64.105.146",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestLogsTestGzipAndStdin: .gz files and "-" give the same events as the
// plain file.
func TestLogsTestGzipAndStdin(t *testing.T) {
	plain, err := os.ReadFile(sshdCorpus)
	if err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(t.TempDir(), "sshd.log.gz")
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(plain)
	zw.Close()
	if err := os.WriteFile(gz, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	count := func(args ...string) int {
		stdin := ""
		if args[len(args)-1] == "-" {
			stdin = string(plain)
		}
		out, err := runApp(t, stdin, append([]string{"logs", "test", "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(out, `"rule":`)
	}
	if a, b, c := count(sshdCorpus), count(gz), count("-"); a != 5 || b != a || c != a {
		t.Errorf("events: plain %d, gzip %d, stdin %d", a, b, c)
	}
}

func TestLogsTestErrors(t *testing.T) {
	if _, err := runApp(t, "", "logs", "test", "/nonexistent/mail.log"); err == nil || !strings.Contains(err.Error(), "open /nonexistent/mail.log") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := runApp(t, "", "logs", "test"); err == nil {
		t.Error("no files: no error")
	}
	bad := filepath.Join(t.TempDir(), "bad.gz")
	os.WriteFile(bad, []byte("not gzip"), 0o600)
	if _, err := runApp(t, "", "logs", "test", bad); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("bad gzip: %v", err)
	}
}
