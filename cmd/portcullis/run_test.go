package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run refuses an invalid configuration with every problem and its line,
// and touches nothing: no state directory, no pin directory.
func TestRunRefusesAnInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "portcullis.toml")
	if err := os.WriteFile(cfg, []byte("[verdict]\nwindow = \"10 min\"\nthreshhold = 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	pin := "/sys/fs/bpf/pc-run-invalid-" + filepath.Base(dir)
	var out, errw strings.Builder
	err := run([]string{"portcullis", "run", "--config", cfg, "--state-dir", state, "--pin-dir", pin}, &out, &errw)
	if err == nil {
		t.Fatal("run started on an invalid configuration")
	}
	for _, want := range []string{"portcullis.toml:2", "verdict.window", "portcullis.toml:3", "threshhold"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	for _, p := range []string{state, pin} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a refused start", p)
		}
	}
}
