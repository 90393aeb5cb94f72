package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenNotify stands in for systemd: a unixgram socket at addr that the
// test reads datagrams from.
func listenNotify(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readDatagram returns the next datagram, failing the test when none comes
// within five seconds.
func readDatagram(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifierSendsExactDatagrams(t *testing.T) {
	tests := []struct {
		name string
		send func(*Notifier) error
		want string
	}{
		{"ready", (*Notifier).Ready, "READY=1"},
		{"watchdog", (*Notifier).Watchdog, "WATCHDOG=1"},
		{"stopping", (*Notifier).Stopping, "STOPPING=1"},
		{"status", func(n *Notifier) error { return n.Status("watching 3 logs, 12 bans") }, "STATUS=watching 3 logs, 12 bans"},
		{"status cannot smuggle a second field", func(n *Notifier) error { return n.Status("ok\nREADY=1\r\nx") }, "STATUS=ok READY=1 x"},
	}
	sock := filepath.Join(t.TempDir(), "notify")
	conn := listenNotify(t, sock)
	t.Setenv("NOTIFY_SOCKET", sock)
	n := NewNotifier()
	if !n.Enabled() {
		t.Fatal("Enabled() = false with NOTIFY_SOCKET set")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(n); err != nil {
				t.Fatal(err)
			}
			if got := readDatagram(t, conn); got != tt.want {
				t.Errorf("datagram %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNotifierReloadingCarriesTheMonotonicClock(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	conn := listenNotify(t, sock)
	t.Setenv("NOTIFY_SOCKET", sock)

	monoUsec := func() int64 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		return ts.Sec*1e6 + ts.Nsec/1e3
	}
	before := monoUsec()
	if err := NewNotifier().Reloading(); err != nil {
		t.Fatal(err)
	}
	after := monoUsec()

	got := readDatagram(t, conn)
	head, usec, ok := strings.Cut(got, "\nMONOTONIC_USEC=")
	if !ok || head != "RELOADING=1" {
		t.Fatalf("datagram %q, want RELOADING=1 then MONOTONIC_USEC=", got)
	}
	u, err := strconv.ParseInt(usec, 10, 64)
	if err != nil {
		t.Fatalf("MONOTONIC_USEC=%q: %v", usec, err)
	}
	if u < before || u > after {
		t.Errorf("MONOTONIC_USEC=%d, not between %d and %d (CLOCK_MONOTONIC around the call)", u, before, after)
	}
}

func TestNotifierReachesAnAbstractSocket(t *testing.T) {
	// systemd names its socket by path, but a supervisor may use the
	// abstract namespace ("@name"); the name is unique per test process.
	name := fmt.Sprintf("@portcullis-notify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	conn := listenNotify(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	if err := NewNotifier().Ready(); err != nil {
		t.Fatal(err)
	}
	if got := readDatagram(t, conn); got != "READY=1" {
		t.Errorf("datagram %q, want READY=1", got)
	}
}

func TestNotifierOutsideSystemdDoesNothing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "30000000")
	n := NewNotifier()
	if n.Enabled() {
		t.Error("Enabled() = true without NOTIFY_SOCKET")
	}
	for name, f := range map[string]func() error{
		"Ready": n.Ready, "Watchdog": n.Watchdog, "Stopping": n.Stopping, "Reloading": n.Reloading,
		"Status": func() error { return n.Status("x") },
	} {
		if err := f(); err != nil {
			t.Errorf("%s() = %v, want nil outside systemd", name, err)
		}
	}
	if d, ok := n.WatchdogInterval(); ok {
		t.Errorf("WatchdogInterval() = %v, true; want false without a socket to ping", d)
	}
}

func TestNotifierReportsAnUnusableSocket(t *testing.T) {
	tests := []struct {
		name, socket, want string
	}{
		{"a relative path", "run/notify", "neither an absolute path"},
		{"a socket that is not there", filepath.Join(t.TempDir(), "gone"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", tt.socket)
			err := NewNotifier().Ready()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Ready() = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestNotifierSendFailureWrapsTheErrno(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "gone"))
	err := NewNotifier().Watchdog()
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("Watchdog() = %v, want it to wrap ENOENT", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name      string
		usec, pid string
		want      time.Duration
		wantOK    bool
	}{
		{"for this process", "30000000", self, 30 * time.Second, true},
		{"without WATCHDOG_PID", "5000000", "", 5 * time.Second, true},
		{"for another process", "30000000", strconv.Itoa(os.Getpid() + 1), 0, false},
		{"unset", "", "", 0, false},
		{"zero", "0", self, 0, false},
		{"garbage", "30s", self, 0, false},
		{"negative", "-1", self, 0, false},
		{"garbage pid", "30000000", "me", 0, false},
	}
	sock := filepath.Join(t.TempDir(), "notify")
	listenNotify(t, sock)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("NOTIFY_SOCKET", sock)
			t.Setenv("WATCHDOG_USEC", tt.usec)
			t.Setenv("WATCHDOG_PID", tt.pid)
			got, ok := NewNotifier().WatchdogInterval()
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("WatchdogInterval() = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
