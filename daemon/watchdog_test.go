package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/store"
)

// The watchdog is fed only while the daemon makes progress: a daemon that
// hangs holding its lock stops feeding it, so systemd restarts it, and
// feeds it again once it moves.
func TestHungDaemonStopsFeedingTheWatchdog(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	st, err := store.Open(context.Background(), filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now, st: st, hung: 1500 * time.Millisecond, sources: map[string]*sourceHealth{}}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.housekeeping(ctx, NewNotifier()) }()
	defer func() {
		cancel()
		<-done
	}()

	// pings counts WATCHDOG=1 datagrams arriving within d.
	pings := func(within time.Duration) int {
		n := 0
		buf := make([]byte, 256)
		deadline := time.Now().Add(within)
		for {
			_ = conn.SetReadDeadline(deadline)
			k, err := conn.Read(buf)
			if err != nil {
				return n
			}
			if string(buf[:k]) == "WATCHDOG=1" {
				n++
			}
		}
	}
	if n := pings(2500 * time.Millisecond); n < 2 {
		t.Fatalf("%d watchdog pings in 2.5s while healthy, want about 2", n)
	}
	d.mu.Lock() // a batch that never ends
	if n := pings(1500 * time.Millisecond); n > 2 {
		t.Fatalf("%d pings in the first 1.5s of the hang: the hang threshold is 1.5s", n)
	}
	if n := pings(2500 * time.Millisecond); n != 0 {
		t.Fatalf("%d watchdog pings while hung past the threshold, want none", n)
	}
	d.healthMu.Lock()
	hungErr := d.lastErr
	d.healthMu.Unlock()
	if hungErr == "" {
		t.Errorf("the hang is not in status")
	}
	d.mu.Unlock()
	if n := pings(2500 * time.Millisecond); n < 1 {
		t.Fatalf("no watchdog ping after the daemon moved again")
	}
}
