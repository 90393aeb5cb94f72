package testnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestCleanupRemovesNamespacesAndVeth(t *testing.T) {
	RequireRoot(t)
	var (
		names  []string
		kept   []netns.NsHandle
		veths  []string
		rootNS = currentNS(t)
	)
	t.Run("setup", func(t *testing.T) {
		p := NewPair(t)
		for _, ns := range []*NS{p.Client, p.Server} {
			names = append(names, ns.Path)
			// An extra descriptor keeps each namespace alive after its
			// cleanup, so that we can look inside for leftover links.
			h, err := netns.GetFromPath(ns.Path)
			if err != nil {
				t.Fatal(err)
			}
			kept = append(kept, h)
		}
		veths = []string{p.ClientLink.Name, p.ServerLink.Name}
		for _, l := range []Link{p.ClientLink, p.ServerLink} {
			if len(l.Name) > unix.IFNAMSIZ-1 {
				t.Errorf("link name %q longer than %d", l.Name, unix.IFNAMSIZ-1)
			}
		}
	})
	t.Cleanup(func() {
		for _, h := range kept {
			h.Close()
		}
	})
	if len(kept) != 2 {
		t.Fatal("setup did not finish")
	}

	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range names {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after cleanup (stat: %v)", path, err)
		}
		if strings.Contains(string(mounts), " "+path+" ") {
			t.Errorf("%s still mounted after cleanup", path)
		}
	}
	for i, h := range kept {
		nl, err := netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatal(err)
		}
		links, err := nl.LinkList()
		nl.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(links) != 1 || links[0].Attrs().Name != "lo" {
			t.Errorf("namespace %s holds %s after cleanup, want only lo", names[i], linkNames(links))
		}
	}
	rootLinks, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range rootLinks {
		for _, v := range veths {
			if l.Attrs().Name == v {
				t.Errorf("veth %s is in the root namespace", v)
			}
		}
	}
	if got := currentNS(t); got != rootNS {
		t.Errorf("test thread moved to namespace %s, want %s", got, rootNS)
	}
}

func TestPairCarriesTCP(t *testing.T) {
	p := NewPair(t)
	tests := []struct {
		name           string
		network        string
		client, server netip.Addr
	}{
		{"IPv4", "tcp4", p.ClientAddr4, p.ServerAddr4},
		{"IPv6", "tcp6", p.ClientAddr6, p.ServerAddr6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := roundTrip(t, p.Server, p.Client, tt.network, netip.AddrPortFrom(tt.server, 0), netip.AddrPort{})
			if got != tt.client {
				t.Errorf("server saw client %s, want %s", got, tt.client)
			}
			// The server's address exists only inside its namespace.
			l, err := net.Listen(tt.network, netip.AddrPortFrom(tt.server, 0).String())
			if err == nil {
				l.Close()
				t.Errorf("listening on %s in the root namespace succeeded; the address leaked", tt.server)
			}
		})
	}
}

func TestDialFromExtraClientAddrs(t *testing.T) {
	p := NewPair(t)
	extra := []netip.Prefix{
		netip.MustParsePrefix("198.18.0.77/24"),   // inside the server's subnet
		netip.MustParsePrefix("198.19.200.9/32"),  // outside it: needs a route back
		netip.MustParsePrefix("198.19.201.0/24"),  // a whole subnet
		netip.MustParsePrefix("fd00:18::77/64"),   // inside
		netip.MustParsePrefix("fd00:1:2::9/128"),  // outside
		netip.MustParsePrefix("fd00:1:3::10/120"), // a whole subnet
	}
	p.AddClientAddrs(t, extra...)
	for _, e := range extra {
		t.Run(e.String(), func(t *testing.T) {
			network, server := "tcp4", p.ServerAddr4
			if e.Addr().Is6() {
				network, server = "tcp6", p.ServerAddr6
			}
			got := roundTrip(t, p.Server, p.Client, network, netip.AddrPortFrom(server, 0), netip.AddrPortFrom(e.Addr(), 0))
			if got != e.Addr() {
				t.Errorf("server saw client %s, want %s", got, e.Addr())
			}
		})
	}
	if n := len(p.ClientLink.Addrs); n != 2+len(extra) {
		t.Errorf("client link records %d addresses, want %d", n, 2+len(extra))
	}
}

// roundTrip connects from client to a listener in server, echoes a line and
// returns the client address that the server saw.
func roundTrip(t *testing.T, server, client *NS, network string, listen, local netip.AddrPort) netip.Addr {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := server.Listen(network, listen)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type accepted struct {
		peer netip.Addr
		err  error
	}
	done := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- accepted{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			_, err = io.WriteString(c, line)
		}
		done <- accepted{peer: c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap(), err: err}
	}()
	c, err := client.DialFrom(ctx, network, local, l.Addr().(*net.TCPAddr).AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		t.Fatal(err)
	}
	echo, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || echo != "ping\n" {
		t.Fatalf("echo: got %q, %v", echo, err)
	}
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	return a.peer
}

func TestDoRestoresNamespace(t *testing.T) {
	ns := NewNS(t, "do")
	want := nsID(t, ns.Path)
	errFn := errors.New("fn failed")
	tests := []struct {
		name      string
		fn        func() error
		wantErr   error
		wantPanic any
	}{
		{"fn succeeds", func() error { return nil }, nil, nil},
		{"fn fails", func() error { return errFn }, errFn, nil},
		{"fn panics", func() error { panic("boom") }, nil, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Locked so that "after" is measured on the thread Do used.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			before, mntBefore := currentNS(t), nsID(t, "/proc/thread-self/ns/mnt")
			var inside, mntInside string
			var err error
			panicked := func() (p any) {
				defer func() { p = recover() }()
				err = ns.Do(func() error {
					inside, mntInside = currentNS(t), nsID(t, "/proc/thread-self/ns/mnt")
					return tt.fn()
				})
				return nil
			}()
			if inside != want {
				t.Errorf("fn ran in %s, want %s", inside, want)
			}
			if mntInside != mntBefore {
				t.Errorf("fn ran in mount namespace %s, want the caller's %s", mntInside, mntBefore)
			}
			if after := currentNS(t); after != before {
				t.Errorf("after Do the thread is in %s, want %s", after, before)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Do returned %v, want %v", err, tt.wantErr)
			}
			if panicked != tt.wantPanic {
				t.Errorf("panic %v, want %v", panicked, tt.wantPanic)
			}
		})
	}
}

func TestCommandRunsInNamespace(t *testing.T) {
	ns := NewNS(t, "cmd")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := ns.Command(ctx, "readlink", "/proc/self/ns/net").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(out)), nsID(t, ns.Path); got != want {
		t.Errorf("command ran in %s, want %s", got, want)
	}
}

func TestPinsVisibleInsideNamespace(t *testing.T) {
	ns := NewNS(t, "pin")
	if err := MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	countBefore := bpffsMounts(t)
	if err := MountBPFFS(); err != nil {
		t.Fatalf("second MountBPFFS: %v", err)
	}
	if n := bpffsMounts(t); n != countBefore {
		t.Errorf("second MountBPFFS changed the bpffs mounts at %s from %d to %d", bpffsDir, countBefore, n)
	}

	pin := filepath.Join(bpffsDir, "pct-pin-"+randomHex(4))
	err := ns.Do(func() error {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
		if err != nil {
			return err
		}
		defer m.Close()
		return m.Pin(pin)
	})
	if err != nil {
		t.Fatalf("pin from inside %s: %v", ns.Name, err)
	}
	t.Cleanup(func() { os.Remove(pin) })

	m, err := ebpf.LoadPinnedMap(pin, nil)
	if err != nil {
		t.Fatalf("pin made inside the namespace is not visible outside: %v", err)
	}
	m.Close()
	err = ns.Do(func() error {
		m, err := ebpf.LoadPinnedMap(pin, nil)
		if err != nil {
			return err
		}
		return m.Close()
	})
	if err != nil {
		t.Errorf("pin not visible inside Do: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := ns.Command(ctx, "test", "-e", pin).CombinedOutput(); err != nil {
		t.Errorf("pin not visible to Command: %v %s", err, out)
	}
}

// bpffsMounts counts the bpf file systems mounted at /sys/fs/bpf.
func bpffsMounts(t *testing.T) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		// Fields: id parent major:minor root mountpoint options ... - fstype source super-options
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == bpffsDir && strings.Contains(line, " - bpf ") {
			n++
		}
	}
	return n
}

// currentNS names the network namespace of the calling thread.
func currentNS(t *testing.T) string {
	t.Helper()
	return nsID(t, "/proc/thread-self/ns/net")
}

// nsID names the namespace behind a /proc/.../ns file or a bind mount of
// one, in the form readlink shows: "net:[4026532...]".
func nsID(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	kind := filepath.Base(path)
	if strings.HasPrefix(path, netnsDir) {
		kind = "net"
	}
	return fmt.Sprintf("%s:[%d]", kind, st.Ino)
}

func linkNames(links []netlink.Link) []string {
	var s []string
	for _, l := range links {
		s = append(s, l.Attrs().Name)
	}
	return s
}
