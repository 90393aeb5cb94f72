package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/alert"
)

// TestHealthAlertsWhenTheDaemonIsStopped runs the real daemon, stops it
// with SIGSTOP while its log grows, and checks that `portcullis health
// --alert` says CRITICAL in one line, exits 2 and sends the stall alert
// through a webhook; after SIGCONT it is OK again and says so.
func TestHealthAlertsWhenTheDaemonIsStopped(t *testing.T) {
	l := newLab(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "mail.log")
	if err := os.WriteFile(logFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	sock, err := os.MkdirTemp("", "pch-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })

	// The webhook listens inside the server namespace, where the CLI runs.
	var mu sync.Mutex
	var got []alert.Message
	ln, err := l.pair.Server.Listen("tcp", netip.AddrPortFrom(l.pair.ServerAddr4, 0))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m alert.Message
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	common := fmt.Sprintf(`[daemon]
state_dir = %q
pin_dir = %q
socket = %q
interfaces = [%q]
[logs]
files = [%q]
journal = false
`, filepath.Join(dir, "state"), l.pinDir, filepath.Join(sock, "pc.sock"), l.iface, logFile)
	daemonCfg := filepath.Join(dir, "daemon.toml")
	healthCfg := filepath.Join(dir, "health.toml")
	if err := os.WriteFile(daemonCfg, []byte(common), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(healthCfg, []byte(common+fmt.Sprintf(`[alerts]
[[alerts.channel]]
name = "chat"
type = "webhook"
url = "http://%s/hook"
format = "json"
`, ln.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	daemon := l.pair.Server.Command(ctx, portcullisBin, "run", "--config", daemonCfg)
	var daemonLog strings.Builder
	daemon.Stdout, daemon.Stderr = &daemonLog, &daemonLog
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = daemon.Process.Signal(syscall.SIGCONT)
		_ = daemon.Process.Signal(syscall.SIGTERM)
		_ = daemon.Wait()
	})
	appendTo := func(n int) {
		f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for range n {
			fmt.Fprintf(f, "%s mx postfix/smtpd[4242]: connect from unknown[192.0.2.1]\n", time.Now().Format(time.Stamp))
		}
	}
	health := func() result {
		return l.runEnv(nil, "health", "--alert", "--config", healthCfg, "--stale", "3s", "--stall", "2s")
	}
	waitHealth := func(code int, within time.Duration) result {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			r := health()
			if r.code == code {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("health exits %d (%q), want %d within %s; daemon log:\n%s", r.code, r.stdout, code, within, daemonLog.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Running and caught up: OK, once the first heartbeat is out.
	time.Sleep(500 * time.Millisecond) // let the daemon open the file at its end
	appendTo(3)
	ok := waitHealth(0, 20*time.Second)
	for !strings.Contains(ok.stdout, "1 log stream current") {
		time.Sleep(200 * time.Millisecond) // the next heartbeat has the position
		ok = waitHealth(0, 10*time.Second)
	}
	if !strings.HasPrefix(ok.stdout, "PORTCULLIS OK - daemon pid ") || strings.Count(ok.stdout, "\n") != 1 {
		t.Errorf("healthy output %q, want one PORTCULLIS OK line", ok.stdout)
	}
	mu.Lock()
	before := len(got) // a check before the first heartbeat said so
	mu.Unlock()

	if err := daemon.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	appendTo(10)
	crit := waitHealth(2, 15*time.Second)
	line := strings.TrimSuffix(crit.stdout, "\n")
	for _, want := range []string{"PORTCULLIS CRITICAL - ", "(process T (stopped))", logFile + ": "} {
		if !strings.Contains(line, want) || strings.Contains(line, "\n") {
			t.Errorf("critical output %q lacks %q (or is not one line)", crit.stdout, want)
		}
	}
	find := func(key string, recovery bool) *alert.Message {
		mu.Lock()
		defer mu.Unlock()
		for i := len(got) - 1; i >= 0; i-- { // the newest
			if got[i].Key == key && got[i].Recovery == recovery {
				return &got[i]
			}
		}
		return nil
	}
	stall := find("health:stall:"+logFile, false)
	if stall == nil {
		t.Fatalf("no stall alert sent; got %+v", got)
	}
	if !strings.Contains(stall.Subject, "is not being read") || !strings.Contains(stall.Body, "has not advanced since") {
		t.Errorf("stall alert %q: %q", stall.Subject, stall.Body)
	}
	if d := find("health:daemon", false); d == nil || !strings.Contains(d.Body, "hung or stopped") {
		t.Errorf("daemon alert %+v, want it to say the daemon is hung or stopped", d)
	}
	// The next runs hold the repeats back.
	health()
	mu.Lock()
	n := len(got)
	mu.Unlock()
	if n-before != 2 {
		t.Errorf("%d alerts after a repeated check, want 2 (repeats held back by the cool-down)", n-before)
	}

	if err := daemon.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitHealth(0, 20*time.Second)
	if find("health:stall:"+logFile, true) == nil || find("health:daemon", true) == nil {
		t.Errorf("no recovery messages after the daemon went on; got %+v", got)
	}
}
