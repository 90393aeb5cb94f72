package testnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// readyTimeout bounds the wait for a new link to come up; a veth pair is
// normally up within milliseconds.
const readyTimeout = 10 * time.Second

// Link is one end of a veth pair.
type Link struct {
	// NS is the namespace the link lives in.
	NS *NS
	// Name and Index identify the link inside NS.
	Name  string
	Index int
	// HardwareAddr is the link's MAC, for frames sent to it.
	HardwareAddr net.HardwareAddr
	// Addrs are the addresses added through this package, in order.
	Addrs []netip.Prefix
}

// Veth joins a and b with a veth pair, sets both ends up, adds the addresses
// (IPv6 without duplicate address detection, so they are usable at once) and
// waits until the links are up. The pair is created from inside a with its
// peer placed directly in b, so it never exists in the root namespace. It is
// deleted when the test ends.
func Veth(t testing.TB, a, b *NS, aAddrs, bAddrs []netip.Prefix) (Link, Link) {
	t.Helper()
	// Names only need to be unique inside a namespace, but random names keep
	// several pairs between the same namespaces apart and read well in logs.
	suffix := randomHex(4)
	la := Link{NS: a, Name: "pct" + suffix + "a"}
	lb := Link{NS: b, Name: "pct" + suffix + "b"}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: la.Name},
		PeerName:      lb.Name,
		PeerNamespace: netlink.NsFd(b.fd),
	}
	if err := a.nl.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s/%s between %s and %s: %v", la.Name, lb.Name, a.Name, b.Name, err)
	}
	t.Cleanup(func() {
		// Deleting one end deletes both. Doing it here rather than leaving
		// it to the namespace's teardown makes it synchronous.
		err := a.nl.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: la.Name}})
		if err != nil && !errors.Is(err, unix.ENODEV) {
			t.Errorf("delete veth %s in %s: %v", la.Name, a.Name, err)
		}
	})
	for _, l := range []*Link{&la, &lb} {
		nl, err := l.NS.nl.LinkByName(l.Name)
		if err != nil {
			t.Fatalf("find %s in %s: %v", l.Name, l.NS.Name, err)
		}
		l.Index = nl.Attrs().Index
		l.HardwareAddr = nl.Attrs().HardwareAddr
		if err := l.NS.nl.LinkSetUp(nl); err != nil {
			t.Fatalf("set %s in %s up: %v", l.Name, l.NS.Name, err)
		}
	}
	la.AddAddrs(t, aAddrs...)
	lb.AddAddrs(t, bAddrs...)
	for _, l := range []*Link{&la, &lb} {
		if err := l.waitUp(readyTimeout); err != nil {
			t.Fatal(err)
		}
	}
	return la, lb
}

// AddAddrs adds prefixes to the link and appends them to l.Addrs. IPv6
// addresses skip duplicate address detection and are usable at once.
func (l *Link) AddAddrs(t testing.TB, prefixes ...netip.Prefix) {
	t.Helper()
	for _, p := range prefixes {
		addr := &netlink.Addr{IPNet: ipNet(p)}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := l.NS.nl.AddrAdd(l.netlinkLink(), addr); err != nil {
			t.Fatalf("add %s to %s in %s: %v", p, l.Name, l.NS.Name, err)
		}
		l.Addrs = append(l.Addrs, p)
	}
}

// AddRoute routes dst straight out of the link (no gateway), in the link's
// namespace: the way to make a namespace answer client addresses outside
// its own subnets.
func (l Link) AddRoute(t testing.TB, dst netip.Prefix) {
	t.Helper()
	r := &netlink.Route{LinkIndex: l.Index, Dst: ipNet(dst.Masked()), Scope: netlink.SCOPE_LINK}
	if err := l.NS.nl.RouteReplace(r); err != nil {
		t.Fatalf("route %s via %s in %s: %v", dst, l.Name, l.NS.Name, err)
	}
}

// waitUp polls until the link is operationally up and none of its addresses
// is still tentative.
func (l Link) waitUp(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := l.ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s in %s not ready after %s: %w", l.Name, l.NS.Name, timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l Link) ready() error {
	nl, err := l.NS.nl.LinkByIndex(l.Index)
	if err != nil {
		return err
	}
	if st := nl.Attrs().OperState; st != netlink.OperUp {
		return fmt.Errorf("operstate %s", st)
	}
	addrs, err := l.NS.nl.AddrList(nl, netlink.FAMILY_ALL)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			return fmt.Errorf("address %s tentative", a.IPNet)
		}
	}
	return nil
}

func (l Link) netlinkLink() netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: l.Name, Index: l.Index}}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Pair is the common case: a client and a server namespace joined by one
// veth pair, each end with one IPv4 address in 198.18.0.0/24 and one IPv6
// address in fd00:18::/64. (fd00::/64 itself is avoided: hosts, this VM
// among them, use it on their real interfaces.)
type Pair struct {
	Client, Server         *NS
	ClientLink, ServerLink Link
	// The addresses on the two ends.
	ClientAddr4, ServerAddr4, ClientAddr6, ServerAddr6 netip.Addr
}

// NewPair creates a client and a server namespace joined by a veth pair with
// 198.18.0.1/24 and fd00:18::1/64 on the client and 198.18.0.2/24 and
// fd00:18::2/64 on the server. Each pair is its own world, so every test can
// use the same addresses.
func NewPair(t testing.TB) *Pair {
	t.Helper()
	p := &Pair{
		Client:      NewNS(t, "client"),
		Server:      NewNS(t, "server"),
		ClientAddr4: netip.MustParseAddr("198.18.0.1"),
		ServerAddr4: netip.MustParseAddr("198.18.0.2"),
		ClientAddr6: netip.MustParseAddr("fd00:18::1"),
		ServerAddr6: netip.MustParseAddr("fd00:18::2"),
	}
	p.ClientLink, p.ServerLink = Veth(t, p.Client, p.Server,
		[]netip.Prefix{netip.PrefixFrom(p.ClientAddr4, 24), netip.PrefixFrom(p.ClientAddr6, 64)},
		[]netip.Prefix{netip.PrefixFrom(p.ServerAddr4, 24), netip.PrefixFrom(p.ServerAddr6, 64)})
	return p
}

// AddClientAddrs adds prefixes to the client's link and, for those outside
// the server's own subnets, routes them back out of the server's link, so
// that the client can connect from each of them (see NS.DialFrom).
func (p *Pair) AddClientAddrs(t testing.TB, prefixes ...netip.Prefix) {
	t.Helper()
	p.ClientLink.AddAddrs(t, prefixes...)
	for _, c := range prefixes {
		if !p.serverReaches(c) {
			p.ServerLink.AddRoute(t, c)
		}
	}
}

// serverReaches reports whether one of the server link's subnets contains c.
func (p *Pair) serverReaches(c netip.Prefix) bool {
	for _, s := range p.ServerLink.Addrs {
		if s.Bits() <= c.Bits() && s.Masked().Contains(c.Addr()) {
			return true
		}
	}
	return false
}
