package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/store"
)

// harness runs the daemon in-process against a veth in a test namespace,
// a log file, a state directory and a pin directory of its own.
type harness struct {
	t      *testing.T
	cfg    config.Config
	pair   *testnet.Pair
	log    string
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
	reload func() (config.Config, error)
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	testnet.RequireRoot(t)
	if err := testnet.MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sockDir, err := os.MkdirTemp("", "pcd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	pin := fmt.Sprintf("/sys/fs/bpf/pc-dt-%d-%d", os.Getpid(), time.Now().UnixNano()%1e9)
	t.Cleanup(func() { _, _ = loader.DetachAll(pin, true) })

	cfg := config.Default()
	cfg.Daemon.StateDir = filepath.Join(dir, "state")
	cfg.Daemon.PinDir = pin
	cfg.Daemon.Socket = filepath.Join(sockDir, "pc.sock")
	cfg.Datapath.Capacity = config.Capacity{Bans: 4096, PrefixBans: 1024, Allowlist: 256, Sources: 4096}
	h := &harness{t: t, cfg: cfg, pair: testnet.NewPair(t), log: filepath.Join(dir, "mail.log"), stderr: &syncBuffer{}}
	cfg.Daemon.Interfaces = []string{h.pair.ServerLink.Name}
	cfg.Logs.Files = []string{h.log}
	cfg.Logs.Journal = config.JournalOff
	h.cfg = cfg
	if err := os.WriteFile(h.log, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

// start runs the daemon until stop; start-up runs inside the server
// namespace, where the interface is.
func (h *harness) start() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.done = make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.MultiWriter(h.stderr, testWriter{h.t}), nil))
	from := len(h.stderr.String())
	go func() {
		h.done <- h.pair.Server.Do(func() error {
			return Run(ctx, Options{Config: h.cfg, Logger: log, Reload: h.reload})
		})
	}()
	h.waitFor("running", from)
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("daemon: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Errorf("daemon did not stop within 10s")
	}
	h.cancel = nil
}

// waitFor waits for msg in the daemon's log after its first from bytes.
func (h *harness) waitFor(msg string, from int) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.stderr.String()[from:], msg) {
		select {
		case err := <-h.done:
			h.t.Fatalf("daemon ended before %q: %v\n%s", msg, err, h.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no %q from the daemon within 10s:\n%s", msg, h.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) appendLog(lines ...string) {
	h.t.Helper()
	f, err := os.OpenFile(h.log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := fmt.Fprintln(f, l); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) maps() *maps.Maps {
	h.t.Helper()
	m, err := maps.Open(h.cfg.Daemon.PinDir)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { m.Close() })
	return m
}

func (h *harness) store() *store.Store {
	h.t.Helper()
	st, err := store.Open(context.Background(), h.cfg.Daemon.StateDir)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { st.Close() })
	return st
}

// saslFailure is a line Postfix 3.7 writes for a failed SMTP AUTH through
// Dovecot (as the mail lab records it).
func saslFailure(addr string) string {
	return fmt.Sprintf("%s mx postfix/submission/smtpd[4242]: warning: unknown[%s]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=alice",
		time.Now().Format(time.Stamp), addr)
}

func waitBanned(t *testing.T, m *maps.Maps, p netip.Prefix) maps.Ban {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := m.LookupBan(p)
		if err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not banned within 5s: %v", p, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFifthFailureBans(t *testing.T) {
	h := newHarness(t)
	h.start()
	m := h.maps()
	src := netip.MustParsePrefix("198.18.77.7/32")
	for i := 0; i < 4; i++ {
		h.appendLog(saslFailure("198.18.77.7"))
	}
	time.Sleep(300 * time.Millisecond) // four failures must not ban
	if _, err := m.LookupBan(src); err == nil {
		t.Fatalf("banned after four failures")
	}
	h.appendLog(saslFailure("198.18.77.7"))
	b := waitBanned(t, m, src)
	if b.Origin != maps.OriginLog || b.Scope != maps.ScopeAll {
		t.Errorf("ban %+v, want origin log, scope all", b)
	}
	if d := time.Until(b.Expires); d < 59*time.Minute || d > time.Hour {
		t.Errorf("ban lasts %v, want 1h", d)
	}
	bans, err := h.store().BansInForce(context.Background(), time.Now())
	if err != nil || len(bans) != 1 || bans[0].Prefix != src || bans[0].Evidence != 5 {
		t.Errorf("store has %+v (%v), want one ban of %s with evidence 5", bans, err, src)
	}
}

func TestRestartRestoresBansBeforeReading(t *testing.T) {
	h := newHarness(t)
	// A "reboot": the store knows bans, the kernel has none.
	st := h.store()
	now := time.Now()
	err := st.Commit(context.Background(), store.Batch{Bans: []store.Ban{
		{Prefix: netip.MustParsePrefix("198.18.80.1/32"), Scope: store.ScopeAll, Origin: store.OriginLog, Reason: "before the reboot", Start: now.Add(-time.Minute), Expires: now.Add(time.Hour)},
		{Prefix: netip.MustParsePrefix("198.18.81.0/24"), Scope: store.ScopeMail, Origin: store.OriginSubnet, Reason: "squad", Start: now.Add(-time.Minute)},
		{Prefix: netip.MustParsePrefix("198.18.82.1/32"), Scope: store.ScopeAll, Origin: store.OriginLog, Reason: "ended", Start: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.start()
	out := h.stderr.String()
	if i, j := strings.Index(out, "restored bans to the kernel"), strings.Index(out, "running"); i < 0 || i > j {
		t.Fatalf("bans not restored before the daemon ran:\n%s", out)
	}
	m := h.maps()
	if b, err := m.LookupBan(netip.MustParsePrefix("198.18.80.1/32")); err != nil || b.Reason != "before the reboot" {
		t.Errorf("exact ban not restored: %+v %v", b, err)
	}
	if b, err := m.LookupBan(netip.MustParsePrefix("198.18.81.0/24")); err != nil || b.Scope != maps.ScopeMail || !b.Permanent() {
		t.Errorf("permanent mail-scope prefix ban not restored: %+v %v", b, err)
	}
	if _, err := m.LookupBan(netip.MustParsePrefix("198.18.82.1/32")); err == nil {
		t.Errorf("an ended ban came back")
	}
}

func TestBansMadeWhileDownAreRecorded(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.stop()
	// The CLI without a daemon writes the pinned maps.
	m := h.maps()
	p := netip.MustParsePrefix("198.18.90.9/32")
	if err := m.AddBan(maps.Ban{Prefix: p, Scope: maps.ScopeAll, Reason: "by hand", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	h.start()
	bans, err := h.store().Bans(context.Background(), store.BanFilter{Prefix: p})
	if err != nil || len(bans) != 1 || bans[0].Reason != "by hand" || bans[0].Origin != store.OriginManual {
		t.Fatalf("store has %+v (%v), want the hand-made ban once", bans, err)
	}
	// A second restart must not record it again.
	h.stop()
	h.start()
	bans, _ = h.store().Bans(context.Background(), store.BanFilter{Prefix: p})
	if len(bans) != 1 {
		t.Errorf("ban recorded %d times after two restarts", len(bans))
	}
}

func TestControlSocketBansAndUnbans(t *testing.T) {
	h := newHarness(t)
	h.start()
	ctx := context.Background()
	sock := h.cfg.Daemon.Socket
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket %v mode %v, want 0600", err, fi.Mode().Perm())
	}
	if _, err := Call(ctx, sock, Request{Command: "ban", Prefixes: []string{"198.18.91.0/24"}, Seconds: 600, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	m := h.maps()
	waitBanned(t, m, netip.MustParsePrefix("198.18.91.0/24"))
	if _, err := Call(ctx, sock, Request{Command: "ban", Prefixes: []string{"300.1.1.1"}, Seconds: 600}); err == nil || !strings.Contains(err.Error(), "300.1.1.1") {
		t.Errorf("bad address: %v, want an error naming it", err)
	}
	if _, err := Call(ctx, sock, Request{Command: "unban", Prefixes: []string{"198.18.91.0/24"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.LookupBan(netip.MustParsePrefix("198.18.91.0/24")); err == nil {
		t.Errorf("still banned after unban")
	}
	if _, err := Call(ctx, sock, Request{Command: "unban", Prefixes: []string{"198.18.91.0/24"}}); err == nil || !strings.Contains(err.Error(), "not banned") {
		t.Errorf("second unban: %v, want 'not banned'", err)
	}
	// The unban is recorded, so a restart does not bring the ban back.
	h.stop()
	h.start()
	if _, err := h.maps().LookupBan(netip.MustParsePrefix("198.18.91.0/24")); err == nil {
		t.Errorf("an unbanned ban came back after a restart")
	}
	resp, err := Call(ctx, sock, Request{Command: "status"})
	if err != nil || resp.Status == nil || resp.Status.PID != os.Getpid() || len(resp.Status.Sources) != 1 {
		t.Errorf("status: %+v %v", resp.Status, err)
	}
}

// An unban clears the source's counters: old evidence must not ban it again
// at the next failure.
func TestUnbanClearsEvidence(t *testing.T) {
	h := newHarness(t)
	h.start()
	m := h.maps()
	for i := 0; i < 5; i++ {
		h.appendLog(saslFailure("198.18.92.2"))
	}
	p := netip.MustParsePrefix("198.18.92.2/32")
	waitBanned(t, m, p)
	if _, err := Call(context.Background(), h.cfg.Daemon.Socket, Request{Command: "unban", Prefixes: []string{p.String()}}); err != nil {
		t.Fatal(err)
	}
	h.appendLog(saslFailure("198.18.92.2"))
	time.Sleep(300 * time.Millisecond)
	if _, err := m.LookupBan(p); err == nil {
		t.Errorf("banned again by one failure after an unban")
	}
}

func TestHostAndLoopbackAreNeverBanned(t *testing.T) {
	h := newHarness(t)
	h.cfg.Verdict.Allowlist = []netip.Prefix{netip.MustParsePrefix("198.18.93.0/24")}
	h.start()
	for i := 0; i < 10; i++ {
		h.appendLog(saslFailure("127.0.0.1"), saslFailure("198.18.93.3"), saslFailure("198.18.94.4"))
	}
	m := h.maps()
	waitBanned(t, m, netip.MustParsePrefix("198.18.94.4/32"))
	for _, p := range []string{"127.0.0.1/32", "198.18.93.3/32"} {
		if _, err := m.LookupBan(netip.MustParsePrefix(p)); err == nil {
			t.Errorf("%s was banned", p)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// SIGHUP applies a good configuration and keeps the running one when the
// new one is bad.
func TestReloadKeepsRunningOnABadConfig(t *testing.T) {
	h := newHarness(t)
	reloaded := make(chan struct{}, 4)
	var bad atomic.Bool
	bad.Store(true)
	h.reload = func() (config.Config, error) {
		defer func() { reloaded <- struct{}{} }()
		if bad.Load() {
			return config.Config{}, fmt.Errorf("portcullis.toml:3: verdict.window: invalid duration")
		}
		cfg := h.cfg
		cfg.Datapath.RateLimit.Auth = config.RateLimit{PerMinute: 7, Burst: 3}
		return cfg, nil
	}
	h.start()
	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case <-reloaded:
		case <-time.After(5 * time.Second):
			t.Fatal("no reload within 5s of SIGHUP")
		}
	}
	hup()
	h.waitFor("config reload failed", 0)
	m := h.maps()
	if rl, _ := m.RateLimit(maps.ClassAuth); rl.PerMinute != 30 {
		t.Errorf("a bad reload changed the rate limit to %+v", rl)
	}
	// Still working: a ban still happens.
	for i := 0; i < 5; i++ {
		h.appendLog(saslFailure("198.18.95.5"))
	}
	waitBanned(t, m, netip.MustParsePrefix("198.18.95.5/32"))

	bad.Store(false)
	hup()
	h.waitFor("configuration reloaded", 0)
	if rl, _ := m.RateLimit(maps.ClassAuth); rl.PerMinute != 7 || rl.Burst != 3 {
		t.Errorf("after a good reload the auth rate limit is %+v, want 7/min burst 3", rl)
	}
}

// A new address of this host is allowlisted at once, not a minute later.
func TestNewHostAddressIsNeverBanned(t *testing.T) {
	h := newHarness(t)
	h.start()
	addr := netip.MustParsePrefix("198.18.96.6/32")
	from := len(h.stderr.String())
	h.pair.ServerLink.AddAddrs(t, addr)
	// The address watch reacts to the kernel's notification at once (the
	// minutely refresh would take up to a minute, past this wait).
	h.waitFor("addr=198.18.96.6/", from)
	for i := 0; i < 10; i++ {
		h.appendLog(saslFailure("198.18.96.6"))
	}
	// A control source after it in the same log: once it is banned, the
	// host's lines were processed too.
	for i := 0; i < 5; i++ {
		h.appendLog(saslFailure("198.18.97.7"))
	}
	m := h.maps()
	waitBanned(t, m, netip.MustParsePrefix("198.18.97.7/32"))
	if _, err := m.LookupBan(addr); err == nil {
		t.Fatalf("the host's new address %s was banned", addr)
	}
}
