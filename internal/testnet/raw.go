package testnet

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Raw is an AF_PACKET socket bound to one link. It sends frames that no
// ordinary socket would build (VLAN tags, extension headers, bad checksums),
// for instance at an XDP program on the peer, and receives every frame that
// arrives on the link.
type Raw struct {
	link Link
	f    *os.File
}

// OpenRaw opens a raw socket on l, inside l's namespace, closed when the
// test ends.
func (l Link) OpenRaw(t testing.TB) *Raw {
	t.Helper()
	var fd int
	err := l.NS.Do(func() error {
		// Protocol 0 receives nothing until bind, so no frame from another
		// link slips in before the socket is bound to this one.
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatalf("open raw socket in %s: %v", l.NS.Name, err)
	}
	f := os.NewFile(uintptr(fd), "raw:"+l.Name)
	t.Cleanup(func() { f.Close() })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.Index}); err != nil {
		t.Fatalf("bind raw socket to %s in %s: %v", l.Name, l.NS.Name, err)
	}
	// Our own frames would otherwise come back to Receive.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		t.Fatalf("ignore outgoing frames on %s: %v", l.Name, err)
	}
	return &Raw{link: l, f: f}
}

// Send transmits one Ethernet frame out of the link, to its peer.
func (r *Raw) Send(frame []byte) error {
	if _, err := r.f.Write(frame); err != nil {
		return fmt.Errorf("send %d bytes on %s: %w", len(frame), r.link.Name, err)
	}
	return nil
}

// Receive returns the first frame arriving on the link, within timeout,
// for which match returns true; frames that do not match are dropped.
func (r *Raw) Receive(timeout time.Duration, match func(frame []byte) bool) ([]byte, error) {
	if err := r.f.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("set deadline on %s: %w", r.link.Name, err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, err := r.f.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("no matching frame on %s within %s: %w", r.link.Name, timeout, err)
		}
		if err != nil {
			return nil, fmt.Errorf("receive on %s: %w", r.link.Name, err)
		}
		if match(buf[:n]) {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

// htons converts to network byte order, as AF_PACKET wants its protocol.
func htons(v uint16) uint16 {
	return v<<8 | v>>8
}
