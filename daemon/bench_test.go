package daemon_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/daemon"
	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/store"
)

// The daemon's benchmarks run the real thing: daemon.Run (or the built
// `portcullis run`) on a datapath pinned in a pin directory of its own and
// attached to a veth in a test namespace, a store in a temporary directory,
// and a log file the benchmark appends to.

// benchPinDir returns a pin directory unique to the benchmark (it does not
// exist yet) and purges it, detaching what it attached, when the benchmark
// ends. Register it after the namespace so that it runs first.
func benchPinDir(b *testing.B) string {
	b.Helper()
	if err := testnet.MountBPFFS(); err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join("/sys/fs/bpf", "pc-db-"+randomHex(b, 5))
	b.Cleanup(func() { purgePinDir(b, dir) })
	return dir
}

func purgePinDir(b *testing.B, dir string) {
	if _, err := loader.DetachAll(dir, true); err != nil && !errors.Is(err, loader.ErrNotAttached) && !errors.Is(err, os.ErrNotExist) {
		b.Errorf("purge %s: %v", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		b.Errorf("remove %s: %v", dir, err)
	}
}

func randomHex(b *testing.B, n int) string {
	b.Helper()
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(buf)
}

// benchConfig is the default configuration pointed at temporary places:
// the state and socket in temporary directories, one log file (created
// empty), the server end of pair as the only interface, and small maps.
// Squads are out of the way (a million sources per prefix): the benchmarks
// ban many sources of one /24 and measure single bans.
func benchConfig(b *testing.B, pair *testnet.Pair, pinDir string) config.Config {
	b.Helper()
	cfg := config.Default()
	tmp := b.TempDir()
	cfg.Daemon.StateDir = filepath.Join(tmp, "state")
	cfg.Daemon.PinDir = pinDir
	cfg.Daemon.Socket = filepath.Join(tmp, "run", "portcullis.sock")
	cfg.Daemon.Interfaces = []string{pair.ServerLink.Name}
	cfg.Logs.Files = []string{filepath.Join(tmp, "mail.log")}
	cfg.Logs.Journal = config.JournalOff
	cfg.Logs.ReadFromStart = true
	cfg.Verdict.Squad.Sources = 1_000_000
	cfg.Datapath.Capacity = config.Capacity{Bans: 4096, PrefixBans: 256, Allowlist: 64, Sources: 1024}
	if err := os.WriteFile(cfg.Logs.Files[0], nil, 0o600); err != nil {
		b.Fatal(err)
	}
	return cfg
}

// failLine is a Postfix SASL failure from addr, one failed login, stamped
// now as rsyslog's traditional format writes it.
func failLine(addr netip.Addr, now time.Time) string {
	return fmt.Sprintf("%s mx postfix/submission/smtpd[4242]: warning: unknown[%s]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=alice\n",
		now.Format(time.Stamp), addr)
}

// benchAddr4 is the i-th address of 198.19.0.0/16 (the test pair uses
// 198.18.0.0/24, which the daemon allowlists as its host's own).
func benchAddr4(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
}

// runningDaemon is daemon.Run going in a goroutine, inside ns so that it
// attaches to the namespace's veth.
type runningDaemon struct {
	cancel context.CancelFunc
	done   chan error
}

// startDaemon runs the daemon with cfg inside ns until the benchmark ends
// (or stop is called); the daemon logs to a file in a temporary directory
// through watch.
func startDaemon(b *testing.B, ns *testnet.NS, cfg config.Config, watch *watchHandler) *runningDaemon {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningDaemon{cancel: cancel, done: make(chan error, 1)}
	go func() {
		r.done <- ns.Do(func() error {
			return daemon.Run(ctx, daemon.Options{Config: cfg, Logger: slog.New(watch)})
		})
	}()
	b.Cleanup(func() {
		if err := r.stop(); err != nil {
			b.Errorf("daemon: %v", err)
		}
	})
	return r
}

// stop ends the daemon and waits for it; it may be called more than once.
func (r *runningDaemon) stop() error {
	r.cancel()
	err, ok := <-r.done
	if ok {
		close(r.done)
	}
	return err
}

// waitStatus polls the control socket until the daemon answers and ok
// accepts its status, or the deadline passes.
func waitStatus(b *testing.B, socket string, d *runningDaemon, timeout time.Duration, ok func(daemon.Status) bool) daemon.Status {
	b.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			close(d.done)
			b.Fatalf("the daemon stopped: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := daemon.Call(ctx, socket, daemon.Request{Command: "status"})
		cancel()
		if err == nil && resp.Status != nil && ok(*resp.Status) {
			return *resp.Status
		}
		last = err
		// Status counts the last hour's events in the store: ask at a pace
		// that leaves the daemon its work.
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("no satisfying status from the daemon within %s (last error: %v)", timeout, last)
	return daemon.Status{}
}

// waitBan polls the kernel map until it holds a ban of p, and returns when
// it first saw it. Polling every 50µs keeps the measurement's own error
// small against the 10 ms target without taking a core from the daemon.
func waitBan(m *maps.Maps, p netip.Prefix, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		_, err := m.LookupBan(p)
		now := time.Now()
		if err == nil {
			return now, nil
		}
		if !errors.Is(err, maps.ErrNotFound) {
			return now, err
		}
		if now.After(deadline) {
			return now, fmt.Errorf("%s not banned in the kernel within %s", p, timeout)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// percentile is the q-th quantile (0..1) of sorted durations, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// BenchmarkBanLatency measures, for 1,000 sources one after another, the
// time from appending the failure line that bans the source (threshold 1)
// to the log file until the kernel's ban map holds the ban: inotify, the
// file source, the parser, the engine, the store's synchronous commit and
// the map update, all of the daemon's path but the packet.
func BenchmarkBanLatency(b *testing.B) {
	testnet.RequireRoot(b)
	const bans = 1000
	pair := testnet.NewPair(b)
	pinDir := benchPinDir(b)
	cfg := benchConfig(b, pair, pinDir)
	cfg.Verdict.Threshold = 1
	watch := newWatchHandler(b)
	d := startDaemon(b, pair.Server, cfg, watch)
	waitStatus(b, cfg.Daemon.Socket, d, 30*time.Second, func(s daemon.Status) bool { return len(s.Sources) > 0 })

	m, err := maps.Open(pinDir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	logf, err := os.OpenFile(cfg.Logs.Files[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logf.Close() })

	// One ban appends and waits; next is the source after the last one used,
	// so each iteration bans sources never seen before. Besides the whole
	// latency it returns its second part: from the daemon logging its
	// decision to the kernel holding the ban (the store's synchronous
	// commit and the map update).
	next := 0
	ban := func() (total, apply time.Duration) {
		a := benchAddr4(next)
		next++
		p := netip.PrefixFrom(a, 32)
		line := failLine(a, time.Now())
		start := time.Now()
		if _, err := logf.WriteString(line); err != nil {
			b.Fatal(err)
		}
		seen, err := waitBan(m, p, 5*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		decided, ok := watch.banLogged(p)
		if !ok {
			b.Fatalf("%s is banned in the kernel, but the daemon logged no ban", p)
		}
		return seen.Sub(start), seen.Sub(decided)
	}
	// The first ban also waits for the file source to be following.
	ban()

	var totals, applies []time.Duration
	for b.Loop() {
		if next+bans > int(cfg.Datapath.Capacity.Bans) {
			b.Fatalf("out of ban capacity after %d bans; run fewer iterations", next)
		}
		for range bans {
			total, apply := ban()
			totals = append(totals, total)
			applies = append(applies, apply)
		}
	}
	b.StopTimer()
	slices.Sort(totals)
	slices.Sort(applies)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(percentile(totals, 0.50)), "p50_ms")
	b.ReportMetric(ms(percentile(totals, 0.99)), "p99_ms")
	b.ReportMetric(ms(totals[len(totals)-1]), "max_ms")
	b.ReportMetric(ms(percentile(applies, 0.50)), "apply_p50_ms")
	b.ReportMetric(ms(percentile(applies, 0.99)), "apply_p99_ms")
	b.ReportMetric(float64(len(totals)), "bans")
}

// BenchmarkRestore100k starts the daemon on a store holding 100,000
// unexpired bans and an empty pin directory, as after a reboot, and
// reports when the kernel held them all. Times are from the call to
// daemon.Run: restored_ms when the daemon logged that the bans were in the
// kernel (store opened, bans read, maps created, one batch update), and
// running_ms when it logged that it runs (also the engine's history,
// attaching, allowlist). batch_ms is the daemon's own figure for the batch
// update alone, load_ms a separate load of the datapath into an empty pin
// directory.
func BenchmarkRestore100k(b *testing.B) {
	testnet.RequireRoot(b)
	const n = 100_000
	pair := testnet.NewPair(b)
	cfg := benchConfig(b, pair, "/nonexistent") // the pin directory is set per run
	cfg.Datapath.Capacity.Bans = 131072
	fillStore(b, cfg.Daemon.StateDir, n)
	load := loadTime(b, cfg.Datapath.Capacity)

	var restored, running, batch []time.Duration
	for b.Loop() {
		b.StopTimer()
		cfg.Daemon.PinDir = benchPinDir(b)
		watch := newWatchHandler(b)
		start := time.Now()
		b.StartTimer()
		d := startDaemon(b, pair.Server, cfg, watch)
		rec := watch.wait(b, d, "restored bans to the kernel", 30*time.Second)
		run := watch.wait(b, d, "running", 30*time.Second)
		b.StopTimer()
		if got := rec.attr("bans"); got != fmt.Sprint(n) {
			b.Fatalf("the daemon restored %s bans, want %d", got, n)
		}
		took, err := time.ParseDuration(rec.attr("took"))
		if err != nil {
			b.Fatalf("restored bans: took=%q: %v", rec.attr("took"), err)
		}
		restored = append(restored, rec.at.Sub(start))
		running = append(running, run.at.Sub(start))
		batch = append(batch, took)
		checkKernelBans(b, cfg.Daemon.PinDir, n)
		if err := d.stop(); err != nil {
			b.Fatalf("daemon: %v", err)
		}
		// Detach and unpin now: the next run attaches to the same veth.
		purgePinDir(b, cfg.Daemon.PinDir)
		b.StartTimer()
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(mean(restored)), "restored_ms")
	b.ReportMetric(ms(mean(running)), "running_ms")
	b.ReportMetric(ms(mean(batch)), "batch_ms")
	b.ReportMetric(ms(load), "load_ms")
}

// loadTime is how long loading the datapath into a fresh pin directory
// takes (the verifier's pass over the program, creating the maps): the
// part of a restore that does not depend on the number of bans.
func loadTime(b *testing.B, c config.Capacity) time.Duration {
	b.Helper()
	dir := benchPinDir(b)
	start := time.Now()
	dp, err := loader.Load(loader.Options{
		PinDir:   dir,
		Logger:   slog.New(slog.DiscardHandler),
		Capacity: loader.Capacity{Bans: c.Bans, PrefixBans: c.PrefixBans, Allowlist: c.Allowlist, Sources: c.Sources},
	})
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	dp.Close()
	purgePinDir(b, dir)
	return took
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(max(len(ds), 1))
}

// fillStore records n bans of distinct addresses of 198.18.1.0 onwards,
// each in force for another day, as the log would have made them.
func fillStore(b *testing.B, dir string, n int) {
	b.Helper()
	st, err := store.Open(b.Context(), dir)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	bans := make([]store.Ban, n)
	for i := range bans {
		j := i + 256
		a := netip.AddrFrom4([4]byte{198, 18 + byte(j>>16), byte(j >> 8), byte(j)})
		bans[i] = store.Ban{
			Prefix: netip.PrefixFrom(a, 32), Scope: store.ScopeAll, Origin: store.OriginLog,
			Reason: "5 failed logins", Start: now.Add(-time.Minute), Expires: now.Add(24 * time.Hour), Evidence: 5,
		}
	}
	if err := st.Commit(b.Context(), store.Batch{Bans: bans}); err != nil {
		b.Fatal(err)
	}
}

// checkKernelBans fails unless the kernel holds exactly n bans.
func checkKernelBans(b *testing.B, pinDir string, n int) {
	b.Helper()
	m, err := maps.Open(pinDir)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	bans, err := m.Bans()
	if err != nil {
		b.Fatal(err)
	}
	if len(bans) != n {
		b.Fatalf("the kernel holds %d bans, want %d", len(bans), n)
	}
}

// watchHandler writes the daemon's log to a file (a thousand ban lines
// would drown the benchmark's output) and notes when chosen messages were
// logged: slog calls Handle synchronously, so the time is when the daemon
// got there.
type watchHandler struct {
	slog.Handler
	mu   *sync.Mutex
	seen map[string]chan logged
	// bans holds when each prefix's "ban" line was logged: after the
	// engine's decision, before the store's commit and the kernel update.
	bans map[string]time.Time
}

type logged struct {
	at    time.Time
	attrs map[string]string
}

func (l logged) attr(key string) string { return l.attrs[key] }

func newWatchHandler(b *testing.B) *watchHandler {
	b.Helper()
	f, err := os.Create(filepath.Join(b.TempDir(), "daemon.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return &watchHandler{Handler: slog.NewTextHandler(f, nil), mu: &sync.Mutex{}, seen: map[string]chan logged{}, bans: map[string]time.Time{}}
}

func (h *watchHandler) ch(msg string) chan logged {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.seen[msg]
	if !ok {
		c = make(chan logged, 1)
		h.seen[msg] = c
	}
	return c
}

// Handle notes the first record of each message and passes every one on.
func (h *watchHandler) Handle(ctx context.Context, r slog.Record) error {
	l := logged{at: time.Now(), attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	select {
	case h.ch(r.Message) <- l:
	default: // not the first
	}
	if r.Message == "ban" {
		h.mu.Lock()
		h.bans[l.attr("prefix")] = l.at
		h.mu.Unlock()
	}
	return h.Handler.Handle(ctx, r)
}

// banLogged returns when the daemon logged its decision to ban p.
func (h *watchHandler) banLogged(p netip.Prefix) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.bans[p.String()]
	return t, ok
}

func (h *watchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithAttrs(as), mu: h.mu, seen: h.seen, bans: h.bans}
}

func (h *watchHandler) WithGroup(name string) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithGroup(name), mu: h.mu, seen: h.seen, bans: h.bans}
}

// wait returns the first record of msg, waiting for it up to timeout.
func (h *watchHandler) wait(b *testing.B, d *runningDaemon, msg string, timeout time.Duration) logged {
	b.Helper()
	c := h.ch(msg)
	select {
	case l := <-c:
		c <- l // later waits see it too
		return l
	case err := <-d.done:
		close(d.done)
		b.Fatalf("the daemon stopped before logging %q: %v", msg, err)
	case <-time.After(timeout):
		b.Fatalf("the daemon did not log %q within %s", msg, timeout)
	}
	return logged{}
}
