// Package testnet gives kernel tests their own network namespaces, veth pairs
// and hand-built packets, so that no test touches the host's network.
//
// A typical test:
//
//	p := testnet.NewPair(t) // skips unless root; removed at cleanup
//	l, err := p.Server.Listen("tcp", netip.AddrPortFrom(p.ServerAddr4, 25))
//	...
//	c, err := p.Client.Dial(ctx, "tcp", netip.AddrPortFrom(p.ServerAddr4, 25))
//
// and for frames no socket would build, sent at an XDP program on the
// server's link:
//
//	raw := p.ClientLink.OpenRaw(t)
//	syn := testnet.SYN(p.ClientAddr6, p.ServerAddr6, 25)
//	syn.VLANs, syn.DstMAC = []uint16{10, 20}, p.ServerLink.HardwareAddr
//	err := raw.Send(syn.Bytes())
package testnet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where iproute2 keeps named namespaces; creating ours there lets
// `ip netns` and `nsenter --net=PATH` reach them while a test is stopped.
const netnsDir = "/run/netns"

// RequireRoot skips the test with a clear reason when not root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces and load BPF (run as root; CI does)")
	}
}

// NS is a network namespace created for one test. It is bind-mounted at
// Path (/run/netns/Name), so `ip netns exec Name` and `nsenter --net=Path`
// work on it too. All names start with "pct-" so leftovers of a killed test
// run are easy to find.
type NS struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// Path is the bind mount that keeps the namespace alive.
	Path string

	fd netns.NsHandle
	nl *netlink.Handle
	// made and mounted record how far create got, so that remove never
	// touches a file it did not create.
	made, mounted bool
}

// NewNS creates a network namespace named "pct-<prefix>-<random>" with its
// loopback up, and removes it when the test ends.
func NewNS(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	name := "pct-" + prefix + "-" + randomHex(4)
	path := filepath.Join(netnsDir, name)
	// Cleanup is registered before anything is created so that a failure
	// half-way still removes whatever exists.
	ns := &NS{Name: name, Path: path, fd: netns.None()}
	t.Cleanup(func() {
		if err := ns.remove(); err != nil {
			t.Errorf("remove network namespace %s: %v", name, err)
		}
	})
	if err := ns.create(); err != nil {
		t.Fatalf("create network namespace %s: %v", name, err)
	}
	return ns
}

func (ns *NS) create() error {
	if err := shareNetnsDir(); err != nil {
		return err
	}
	f, err := os.OpenFile(ns.Path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create mount point: %w", err)
	}
	ns.made = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("close mount point: %w", err)
	}
	if err := onThrowawayThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		// Links created later inherit this, so their link-local addresses
		// are usable at once instead of after a second or two of DAD.
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/accept_dad", []byte("0"), 0); err != nil {
			return fmt.Errorf("turn off duplicate address detection: %w", err)
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, ns.Path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s: %w", ns.Path, err)
		}
		ns.mounted = true
		return nil
	}); err != nil {
		return err
	}
	if ns.fd, err = netns.GetFromPath(ns.Path); err != nil {
		return fmt.Errorf("open %s: %w", ns.Path, err)
	}
	if ns.nl, err = netlink.NewHandleAt(ns.fd, unix.NETLINK_ROUTE); err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	lo, err := ns.nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := ns.nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// shareNetnsDir makes /run/netns a shared mount point, as `ip netns add`
// does the first time it runs. Were it left to iproute2, its bind mount of
// the directory onto itself would cover the mounts made before it, and our
// cleanup would unmount only the copies, leaking the namespaces. The lock
// on the directory (a bind mount of itself keeps the inode) stops test
// processes running in parallel from stacking mounts.
func shareNetnsDir() error {
	return withDirLock(netnsDir, func() error {
		err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if errors.Is(err, unix.EINVAL) { // not a mount point yet
			if err := unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("bind mount %s onto itself: %w", netnsDir, err)
			}
			err = unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
		if err != nil {
			return fmt.Errorf("make %s shared: %w", netnsDir, err)
		}
		return nil
	})
}

// remove undoes whatever part of create succeeded. The kernel frees the
// namespace, and any veth end still in it, once the last reference (mount,
// descriptor, socket or process) is gone.
func (ns *NS) remove() error {
	var errs []error
	if ns.nl != nil {
		ns.nl.Close()
	}
	if ns.fd.IsOpen() {
		if err := ns.fd.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close namespace: %w", err))
		}
	}
	if ns.mounted {
		if err := unix.Unmount(ns.Path, unix.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", ns.Path, err))
		}
	}
	if ns.made {
		if err := os.Remove(ns.Path); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// onThrowawayThread runs fn on a locked OS thread for changes to the
// thread's network namespace (unshare), then moves the thread back to the
// namespace it started in. Only if that fails is the thread left locked, so
// that the runtime retires it. Leaving a changed thread locked is not enough
// on its own: when it happens to be the main thread, the runtime parks it
// instead of ending it, and the process stays in the test namespace.
func onThrowawayThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()
		err = fn()
		if rerr := netns.Set(orig); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("restore network namespace: %w", rerr))
			return // stays locked: the thread is retired
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// Do runs fn on a locked OS thread that has entered only the network
// namespace of ns; the mount namespace, and so /sys/fs/bpf, stays the
// caller's. This is what `ip netns exec` gets wrong for us: it remounts /sys
// and hides bpffs pins. Sockets created in fn stay in ns after Do returns.
//
// fn runs on the caller's goroutine, so a panic or t.FailNow in fn behaves as
// if fn were called directly; the original namespace is restored either way.
// Goroutines started by fn do not run in ns.
func (ns *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current network namespace: %w", err)
	}
	if err := netns.Set(ns.fd); err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", ns.Name, err)
	}
	defer func() {
		err := netns.Set(orig)
		orig.Close()
		if err != nil {
			// The thread stays locked, so the runtime throws it away when
			// this goroutine ends; but until then the caller would run in
			// the wrong namespace, which must not pass silently.
			panic(fmt.Sprintf("testnet: restore network namespace after %s: %v", ns.Name, err))
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// Listen opens a TCP listener inside ns. network is "tcp", "tcp4" or
// "tcp6"; an addr without an address listens on every address, and port 0
// picks a free port.
func (ns *NS) Listen(network string, addr netip.AddrPort) (net.Listener, error) {
	var l net.Listener
	err := ns.Do(func() error {
		var err error
		l, err = net.ListenTCP(network, tcpAddr(addr))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, addr, ns.Name, err)
	}
	return l, nil
}

// Dial opens a TCP connection from inside ns. The address is an
// netip.AddrPort rather than a string because a host name could make the
// resolver dial from a goroutine outside ns.
func (ns *NS) Dial(ctx context.Context, network string, remote netip.AddrPort) (net.Conn, error) {
	return ns.DialFrom(ctx, network, netip.AddrPort{}, remote)
}

// DialFrom opens a TCP connection from inside ns with the given local
// address (the zero local lets the kernel choose), so that a test can
// connect from many client addresses.
func (ns *NS) DialFrom(ctx context.Context, network string, local, remote netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{}
	if local.IsValid() {
		d.LocalAddr = tcpAddr(local)
	}
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		// A single literal address is dialled on this goroutine, so the
		// socket is created while the thread is in ns.
		c, err = d.DialContext(ctx, network, remote.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s in %s: %w", network, remote, local, ns.Name, err)
	}
	return c, nil
}

// Command prepares name to run inside ns through `nsenter --net=Path`,
// which, unlike `ip netns exec`, leaves /sys and bpffs pins alone.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + ns.Path, "--", name}, args...)...)
}

// tcpAddr converts addr; an AddrPort without an address becomes the
// wildcard address with addr's port.
func tcpAddr(addr netip.AddrPort) *net.TCPAddr {
	if !addr.Addr().IsValid() {
		return &net.TCPAddr{Port: int(addr.Port())}
	}
	return net.TCPAddrFromAddrPort(addr)
}

// randomHex returns n random bytes in hex, to keep names unique across the
// test packages that `go test ./...` runs at the same time.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux.
	return hex.EncodeToString(b)
}
