package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/verdict"
)

// applyDatapath makes the kernel's port classes and rate limits what the
// configuration says.
func (d *Daemon) applyDatapath(c config.Datapath) error {
	m := d.dp.Maps
	want := map[uint16]maps.Class{}
	for _, p := range c.Ports.MX {
		want[p] = maps.ClassMX
	}
	for _, p := range c.Ports.Auth {
		want[p] = maps.ClassAuth
	}
	have, err := m.PortClasses()
	if err != nil {
		return err
	}
	for cl, ports := range have {
		for _, p := range ports {
			if want[p] != cl {
				if err := m.SetPortClass(p, maps.ClassNone); err != nil {
					return err
				}
			}
		}
	}
	for p, cl := range want {
		if err := m.SetPortClass(p, cl); err != nil {
			return err
		}
	}
	if err := m.SetRateLimit(maps.ClassMX, maps.RateLimit(c.RateLimit.MX)); err != nil {
		return err
	}
	return m.SetRateLimit(maps.ClassAuth, maps.RateLimit(c.RateLimit.Auth))
}

// apply switches to a reloaded configuration. The engine is rebuilt from
// the store's ban history (failure counters of the last minutes start
// again); state directory, pin directory and interfaces need a restart.
func (d *Daemon) apply(cfg config.Config) error {
	eng, err := verdict.New(verdictConfig(cfg.Verdict))
	if err != nil {
		return err
	}
	// First, so that a database that cannot be loaded leaves everything
	// as it was; the database file is read again even when its path did
	// not change.
	if err := d.applyGeo(cfg.Geo); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.cfg
	if cfg.Daemon.StateDir != old.Daemon.StateDir || cfg.Daemon.PinDir != old.Daemon.PinDir || cfg.Daemon.Socket != old.Daemon.Socket {
		d.log.Warn("state_dir, pin_dir and socket changes take effect at the next start")
		cfg.Daemon.StateDir, cfg.Daemon.PinDir, cfg.Daemon.Socket = old.Daemon.StateDir, old.Daemon.PinDir, old.Daemon.Socket
	}
	if err := d.applyDatapath(cfg.Datapath); err != nil {
		return err
	}
	d.cfg = cfg
	d.eng = eng
	if err := d.restoreHistory(context.Background(), nil); err != nil {
		return err
	}
	// The new engine's counters start from the stored events of its
	// window, not from zero.
	if err := d.replayRecent(context.Background()); err != nil {
		return err
	}
	return d.refreshAllowlistLocked()
}

// refreshAllowlist keeps the engine's allowlist and the kernel's in step
// with the configuration, loopback and this host's own addresses.
func (d *Daemon) refreshAllowlist() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.refreshAllowlistLocked()
}

func (d *Daemon) refreshAllowlistLocked() error {
	fixed := append(loopback(), d.cfg.Verdict.Allowlist...)
	for _, p := range fixed {
		if err := d.dp.Maps.Allow(p); err != nil {
			return fmt.Errorf("allowlist %s: %w", p, err)
		}
	}
	kernel, err := d.dp.Maps.Allowlist()
	if err != nil {
		return err
	}
	all := append(kernel, d.hostAddrs()...)
	d.eng.SetAllowlist(all)
	d.allow = all
	return nil
}

// hostAddrs are every address of this host (of the network namespace the
// daemon started in), never to be banned.
func (d *Daemon) hostAddrs() []netip.Prefix {
	h, err := netlink.NewHandleAt(d.netns)
	if err != nil {
		d.log.Error("list this host's addresses", "err", err)
		return nil
	}
	defer h.Close()
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		d.log.Error("list this host's addresses", "err", err)
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		addr, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		addr = addr.Unmap()
		out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
	}
	return out
}

// attach puts the datapath on the configured interfaces, or on those of
// the default routes when none are configured.
func (d *Daemon) attach(ifaces []string) error {
	if len(ifaces) == 0 {
		var err error
		if ifaces, err = defaultRouteIfaces(); err != nil {
			return err
		}
	}
	for _, iface := range ifaces {
		if _, _, err := d.dp.Attach(iface, loader.ModeAuto); err != nil {
			return err
		}
	}
	d.alerts.mu.Lock()
	d.alerts.ifaces = ifaces
	d.alerts.mu.Unlock()
	return nil
}

func defaultRouteIfaces() ([]string, error) {
	var names []string
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteList(nil, family)
		if err != nil {
			return nil, fmt.Errorf("list routes: %w", err)
		}
		for _, r := range routes {
			if r.Dst != nil && !isDefault(r.Dst) {
				continue
			}
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				continue
			}
			if name := l.Attrs().Name; !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no default route: name the interfaces to protect ([daemon] interfaces or --iface)")
	}
	return names, nil
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}

type hupSignal struct {
	c    chan os.Signal
	stop func()
}

func notifyHUP() hupSignal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return hupSignal{c: c, stop: func() { signal.Stop(c) }}
}

// addrWatch is a subscription to this host's address changes.
type addrWatch struct {
	updates chan netlink.AddrUpdate
	done    chan struct{}
}

// watchAddrs subscribes to address changes before the daemon says it runs,
// then refreshes the allowlist once, so that no change between start-up and
// the subscription is missed. It returns nil when the kernel will not tell
// (the minutely refresh is then the only one).
func (d *Daemon) subscribeAddrs() *addrWatch {
	w := &addrWatch{updates: make(chan netlink.AddrUpdate, 64), done: make(chan struct{})}
	ns := d.netns
	if err := netlink.AddrSubscribeWithOptions(w.updates, w.done, netlink.AddrSubscribeOptions{Namespace: &ns}); err != nil {
		d.log.Warn("cannot watch this host's addresses; the allowlist follows them once a minute", "err", err)
		return nil
	}
	if err := d.refreshAllowlist(); err != nil {
		d.log.Error("refresh allowlist", "err", err)
	}
	return w
}

// watchAddrs refreshes the allowlist as soon as this host gains or loses an
// address (DHCP, SLAAC, a new VPN), so its own new address is never banned;
// the minutely refresh stays as the safety net.
func (d *Daemon) watchAddrs(ctx context.Context, w *addrWatch) error {
	if w == nil {
		return nil
	}
	defer close(w.done)
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-w.updates:
			if !ok {
				d.log.Warn("address watch ended; the allowlist follows this host's addresses once a minute")
				return nil
			}
			if err := d.refreshAllowlist(); err != nil {
				d.log.Error("refresh allowlist", "err", err)
			} else {
				d.log.Info("host address changed; allowlist refreshed", "addr", u.LinkAddress.String(), "added", u.NewAddr)
			}
		}
	}
}
