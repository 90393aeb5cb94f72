package daemon

import (
	"fmt"
	"net"
	"os"
)

// Notifier speaks systemd's sd_notify protocol; every method is a no-op
// when the daemon does not run under systemd.
type Notifier struct{ socket string }

// NewNotifier reads $NOTIFY_SOCKET.
func NewNotifier() *Notifier { return &Notifier{socket: os.Getenv("NOTIFY_SOCKET")} }

func (n *Notifier) send(state string) error {
	if n.socket == "" {
		return nil
	}
	addr := n.socket
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// Ready says start-up is done.
func (n *Notifier) Ready() error { return n.send("READY=1") }

// Watchdog is the keep-alive.
func (n *Notifier) Watchdog() error { return n.send("WATCHDOG=1") }

// Stopping says the daemon is shutting down.
func (n *Notifier) Stopping() error { return n.send("STOPPING=1") }
