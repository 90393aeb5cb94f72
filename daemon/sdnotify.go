package daemon

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier tells systemd how the daemon is doing, as sd_notify(3) does:
// one datagram per message to the unix socket named by $NOTIFY_SOCKET. It is
// written here rather than taken from libsystemd (cgo) or a module because
// the protocol is a few lines and the binary stays static.
//
// Not under systemd ($NOTIFY_SOCKET unset), every method is a no-op that
// returns nil, so the daemon calls them unconditionally. A Notifier is safe
// for concurrent use: it keeps no connection, each message dials anew (as
// libsystemd does), so a restarted systemd is found again.
type Notifier struct {
	// addr is the socket; nil when not under systemd.
	addr *net.UnixAddr
	// badSocket is why $NOTIFY_SOCKET cannot be used, reported by every
	// send rather than at construction, which has no error to return.
	badSocket error
	// watchdog is $WATCHDOG_USEC when it is meant for this process.
	watchdog time.Duration
}

// NewNotifier reads $NOTIFY_SOCKET (an absolute path, or "@name" for an
// abstract socket) and $WATCHDOG_USEC / $WATCHDOG_PID.
func NewNotifier() *Notifier {
	n := &Notifier{}
	sock := os.Getenv("NOTIFY_SOCKET")
	switch {
	case sock == "":
		return n
	case strings.HasPrefix(sock, "/"), strings.HasPrefix(sock, "@"):
		// Go's net package turns a leading '@' into the abstract
		// namespace's leading NUL byte.
		n.addr = &net.UnixAddr{Name: sock, Net: "unixgram"}
	default:
		// systemd also knows vsock: addresses (for VMs); the daemon runs
		// on the host, so those never reach it.
		n.badSocket = fmt.Errorf("NOTIFY_SOCKET %q is neither an absolute path nor an abstract socket name", sock)
		return n
	}
	n.watchdog = watchdogFromEnv(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
	return n
}

// watchdogFromEnv is the watchdog interval systemd asked for, or zero when
// it asked none of this process: WATCHDOG_PID, when set, names the process
// the request is for (a child inheriting the environment must not ping on
// its parent's behalf).
func watchdogFromEnv(usec, pid string, self int) time.Duration {
	if usec == "" {
		return 0
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p != self {
			return 0
		}
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0
	}
	// WatchdogSec= is at most a few minutes; the cap only keeps a garbage
	// value from overflowing the Duration.
	const maxUsec = uint64(time.Duration(1<<62) / time.Microsecond)
	return time.Duration(min(u, maxUsec)) * time.Microsecond
}

// Enabled reports whether the process runs under systemd's supervision
// (NOTIFY_SOCKET is set).
func (n *Notifier) Enabled() bool { return n.addr != nil || n.badSocket != nil }

// WatchdogInterval is WatchdogSec= of the unit, and false when systemd
// watches no keep-alives from this process. Callers ping (Watchdog) at half
// the interval, as sd_watchdog_enabled(3) advises, so one late tick is not a
// restart.
func (n *Notifier) WatchdogInterval() (time.Duration, bool) {
	return n.watchdog, n.watchdog > 0 && n.addr != nil
}

// Ready says start-up is done: with Type=notify, `systemctl start` returns
// and units ordered after this one start.
func (n *Notifier) Ready() error { return n.send("READY=1") }

// Watchdog is the keep-alive; missing it for WatchdogSec= gets the daemon
// killed and restarted.
func (n *Notifier) Watchdog() error { return n.send("WATCHDOG=1") }

// Stopping says the daemon is shutting down.
func (n *Notifier) Stopping() error { return n.send("STOPPING=1") }

// Reloading says a reload (SIGHUP) has begun; Ready says it is over. systemd
// 253 and later want the monotonic clock's time with it, to tell this reload
// from an earlier one; older versions ignore the field.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("read monotonic clock: %w", err)
	}
	usec := ts.Sec*1e6 + ts.Nsec/1e3
	return n.send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10))
}

// Status sets the one-line status `systemctl status` shows. A newline would
// start another field of the message (a status could otherwise say
// READY=1), so line breaks become spaces.
func (n *Notifier) Status(s string) error {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	return n.send("STATUS=" + s)
}

func (n *Notifier) send(msg string) error {
	if n.badSocket != nil {
		return n.badSocket
	}
	if n.addr == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr.Name, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("notify systemd at %s: %w", n.addr.Name, err)
	}
	return nil
}
