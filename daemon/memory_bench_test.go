package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/daemon"
	"github.com/portcullis-mail/portcullis/internal/testnet"
)

// BenchmarkMemory runs the built `portcullis run` as a child process, so
// that its resident set is the daemon's alone, and reads its VmRSS from
// /proc: idle after start on an empty log, then after it has read one
// failed login from each of 1,000,000 distinct sources (threshold 5, so
// none is banned and the engine tracks them all). VmHWM is the peak while
// it read them. Set PORTCULLIS_BIN to use an already built binary; else
// the benchmark builds one.
func BenchmarkMemory(b *testing.B) {
	testnet.RequireRoot(b)
	const sources = 1_000_000
	bin := portcullisBinary(b)
	for b.Loop() {
		b.StopTimer()
		pair := testnet.NewPair(b)
		cfg := benchConfig(b, pair, benchPinDir(b))
		d, pid := startChild(b, pair.Server, bin, cfg)
		waitStatus(b, cfg.Daemon.Socket, d, 30*time.Second, func(s daemon.Status) bool { return len(s.Sources) > 0 })
		idle := procStatus(b, pid)

		b.StartTimer()
		start := time.Now()
		writeSpray(b, cfg.Logs.Files[0], sources)
		st := waitStatus(b, cfg.Daemon.Socket, d, 5*time.Minute, func(s daemon.Status) bool {
			return s.Tracked >= sources || s.Evicted > 0 || linesRead(s) >= sources
		})
		took := time.Since(start)
		b.StopTimer()
		tracking := procStatus(b, pid)
		if st.Tracked != sources || st.Evicted != 0 {
			b.Fatalf("the daemon tracks %d sources (%d evicted) after %d lines, want %d and none evicted",
				st.Tracked, st.Evicted, linesRead(st), sources)
		}
		if err := d.stop(); err != nil {
			b.Fatalf("portcullis run: %v", err)
		}

		b.ReportMetric(0, "ns/op")
		b.ReportMetric(mib(idle["VmRSS"]), "idle_rss_MiB")
		b.ReportMetric(mib(tracking["VmRSS"]), "1M_rss_MiB")
		b.ReportMetric(mib(tracking["VmHWM"]), "1M_peak_rss_MiB")
		b.ReportMetric(float64(tracking["VmRSS"]-idle["VmRSS"])/sources, "rss_B/source")
		b.ReportMetric(took.Seconds(), "ingest_s")
		b.StartTimer()
	}
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }

func linesRead(s daemon.Status) int {
	var n int64
	for _, src := range s.Sources {
		n += src.Lines
	}
	return int(n)
}

// portcullisBinary is $PORTCULLIS_BIN, or the CLI built into a temporary
// directory (`go test` puts its own go first on PATH).
func portcullisBinary(b *testing.B) string {
	b.Helper()
	if bin := os.Getenv("PORTCULLIS_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "portcullis")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/portcullis-mail/portcullis/cmd/portcullis").CombinedOutput()
	if err != nil {
		b.Fatalf("build portcullis: %v\n%s", err, out)
	}
	return bin
}

// startChild runs `portcullis run` with cfg, written out as a config file,
// inside ns (nsenter execs it, so the pid is the daemon's). Stopping it
// sends SIGTERM (SIGKILL 15 s later) and waits.
func startChild(b *testing.B, ns *testnet.NS, bin string, cfg config.Config) (*runningDaemon, int) {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "portcullis.toml")
	if err := os.WriteFile(path, []byte(configFile(cfg)), 0o600); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { logf.Close() })
	cmd := ns.Command(context.Background(), bin, "--config", path, "run")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatalf("start portcullis run: %v", err)
	}
	r := &runningDaemon{
		// A daemon that does not stop on SIGTERM is killed: the benchmark's
		// cleanup must not hang on it.
		cancel: func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			time.AfterFunc(15*time.Second, func() { _ = cmd.Process.Kill() })
		},
		done: make(chan error, 1),
	}
	go func() {
		err := cmd.Wait()
		if err != nil {
			log, _ := os.ReadFile(logf.Name())
			err = fmt.Errorf("%w; its log:\n%s", err, tail(log, 2000))
		}
		r.done <- err
	}()
	b.Cleanup(func() {
		if err := r.stop(); err != nil {
			b.Errorf("portcullis run: %v", err)
		}
	})
	return r, cmd.Process.Pid
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// configFile is cfg's settings that the benchmarks change, as TOML; the
// rest stay at their defaults.
func configFile(cfg config.Config) string {
	c := cfg.Datapath.Capacity
	return fmt.Sprintf(`[daemon]
state_dir = %q
pin_dir = %q
socket = %q
interfaces = [%q]

[logs]
files = [%q]
journal = false
read_from_start = %t

[verdict]
threshold = %d

[verdict.squad]
sources = %d

[datapath.capacity]
bans = %d
prefix_bans = %d
allowlist = %d
sources = %d
`, cfg.Daemon.StateDir, cfg.Daemon.PinDir, cfg.Daemon.Socket, cfg.Daemon.Interfaces[0],
		cfg.Logs.Files[0], cfg.Logs.ReadFromStart, cfg.Verdict.Threshold, cfg.Verdict.Squad.Sources,
		c.Bans, c.PrefixBans, c.Allowlist, c.Sources)
}

// writeSpray appends one failed login from each of n distinct sources: the
// addresses of 198.18.1.0 to 198.19.255.255, then IPv6 /64s of fd01::/16
// (the engine counts IPv6 sources per /64).
func writeSpray(b *testing.B, path string, n int) {
	b.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	now := time.Now()
	for i := range n {
		var a netip.Addr
		if j := i + 256; j < 1<<17 {
			a = netip.AddrFrom4([4]byte{198, 18 + byte(j>>16), byte(j >> 8), byte(j)})
		} else {
			a = netip.AddrFrom16([16]byte{0xfd, 0x01, 4: byte(i >> 24), 5: byte(i >> 16), 6: byte(i >> 8), 7: byte(i), 15: 1})
		}
		if _, err := w.WriteString(failLine(a, now)); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

// procStatus reads the memory lines of /proc/PID/status, in bytes.
func procStatus(b *testing.B, pid int) map[string]int64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("Name:\tportcullis")) {
		b.Fatalf("pid %d is not portcullis:\n%s", pid, raw)
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(raw)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(key, "Vm") {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			b.Fatalf("%s in /proc/%d/status: %v", key, pid, err)
		}
		out[key] = kb << 10
	}
	if out["VmRSS"] == 0 {
		b.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	return out
}
