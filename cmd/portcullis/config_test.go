package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/config"
)

// runConfig runs `portcullis config ARGS...` in an app that has only the
// config command, and returns what it printed.
func runConfig(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{
		Name:           "portcullis",
		Commands:       []*cli.Command{configCommand()},
		Writer:         &out,
		ErrWriter:      &out,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err := app.Run(append([]string{"portcullis", "config"}, args...))
	return out.String(), err
}

func TestConfigDefaultPrintsTheEmbeddedFile(t *testing.T) {
	out, err := runConfig(t, "default")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(config.DefaultTOML) {
		t.Errorf("config default printed something else than the embedded file:\n%s", out)
	}
	// What it prints is a valid config: people start from it.
	if _, err := config.Parse([]byte(out), "default"); err != nil {
		t.Errorf("the printed default does not parse: %v", err)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.toml", "[verdict]\nthreshold = 3\n")
	bad := write("bad.toml", "[verdict]\nthreshhold = 3\nwindow = \"10 min\"\n")
	tests := []struct {
		name    string
		args    []string
		wantOut []string
		wantErr string
	}{
		{"a good file", []string{"check", good}, []string{good + ": ok"}, ""},
		{"a bad file", []string{"check", bad}, []string{
			bad + `:2: verdict.threshhold: unknown key (did you mean "threshold"?)`,
			bad + `:3: verdict.window: invalid duration "10 min"`,
		}, bad + " has 2 problems"},
		{"a missing file", []string{"check", filepath.Join(dir, "nope.toml")}, nil, "no such file"},
		{"two files", []string{"check", good, bad}, nil, "one file"},
		{"default takes no arguments", []string{"default", good}, nil, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runConfig(t, tt.args...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("error %v\n%s", err, out)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestConfigCheckReadsTheEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portcullis.toml")
	if err := os.WriteFile(path, []byte("[store]\nretention = \"1h\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PORTCULLIS_CONFIG", path)
	out, err := runConfig(t, "check")
	if err == nil || !strings.Contains(out, path+":2: store.retention: 1h is too short") {
		t.Errorf("check without a file = %v, printed:\n%s", err, out)
	}
}
