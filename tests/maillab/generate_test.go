package maillab_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/tests/maillab"
)

var update = flag.Bool("update", false, "write the lab's logs to logs/testdata/lab")

// labDataDir is where -update writes, relative to this package.
const labDataDir = "../../logs/testdata/lab"

// TestGenerateLabLogs runs the scripted scenario against a real Postfix,
// Dovecot and sshd, once with auth_verbose=yes and once with no, checks
// the logs hold the lines the scenario implies, and with -update copies
// them to logs/testdata/lab together with a README and scenario.json:
//
//	go test ./tests/maillab -run TestGenerateLabLogs -update
func TestGenerateLabLogs(t *testing.T) {
	withSSH := true
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		if *update {
			t.Fatal("-update needs sshd: apt-get install openssh-server")
		}
		withSSH = false
	}
	steps := scenario(withSSH)
	// The two runs are independent labs; in parallel they take the time
	// of one, since both mostly wait on Dovecot's failure timer.
	t.Run("runs", func(t *testing.T) {
		for _, verbose := range []bool{true, false} {
			generateRun(t, steps, verbose, withSSH)
		}
	})
	if *update && !t.Failed() {
		if err := writeScenario(labAddrs(steps)); err != nil {
			t.Fatal(err)
		}
	}
}

// generateRun runs the scenario against one lab as a parallel subtest.
func generateRun(t *testing.T, steps []step, verbose, withSSH bool) {
	name := "auth-verbose-no"
	if verbose {
		name = "auth-verbose-yes"
	}
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		lab := maillab.Start(t, maillab.Options{
			Clients:     3,
			Users:       []maillab.User{alice, bob},
			AuthVerbose: verbose,
			SSH:         withSSH,
		})
		r := newRunner(t, lab, withSSH)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		for _, s := range steps {
			if err := r.run(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%d steps in %v", len(steps), time.Since(start).Round(time.Millisecond))
		files := map[string]string{"postfix": lab.PostfixLog(), "dovecot": lab.DovecotLog()}
		if withSSH {
			files["sshd"] = lab.SSHLog()
		}
		if bad := waitForCounts(files, expectations(steps, verbose), 10*time.Second); len(bad) > 0 {
			t.Fatalf("the logs do not match the scenario:\n%s", strings.Join(bad, "\n"))
		}
		if *update {
			dir := filepath.Join(labDataDir, name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, path := range files {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, name+".log"), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// labAddrs fills in each step's client address. Every lab uses the same
// address plan, so it does not need a running lab.
func labAddrs(steps []step) []step {
	out := make([]step, len(steps))
	for i, s := range steps {
		if s.IPv6 {
			s.Addr = fmt.Sprintf("fd00:25:0:%x::2", s.Client)
		} else {
			s.Addr = fmt.Sprintf("198.18.%d.2", s.Client)
		}
		out[i] = s
	}
	return out
}

// writeScenario writes scenario.json and the table part of README.md.
func writeScenario(withAddrs []step) error {
	b, err := json.MarshalIndent(withAddrs, "", "  ")
	if err != nil {
		return fmt.Errorf("encode scenario: %w", err)
	}
	if err := os.WriteFile(filepath.Join(labDataDir, "scenario.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write scenario.json: %w", err)
	}
	var sb strings.Builder
	sb.WriteString(readmeHead)
	sb.WriteString("\n| # | client | address | service (port) | what | user | connections | attempts per connection | accepted |\n")
	sb.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for i, s := range withAddrs {
		fmt.Fprintf(&sb, "| %d | %d | %s | %s (%d) | %s | %s | %d | %d | %v |\n",
			i+1, s.Client, s.Addr, s.Service, s.Port, s.What, s.User, s.Conns, s.PerConn, s.Accepted)
	}
	sb.WriteString(readmeTail)
	return os.WriteFile(filepath.Join(labDataDir, "README.md"), []byte(sb.String()), 0o644)
}
