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
	all := append(kernel, hostAddrs()...)
	d.eng.SetAllowlist(all)
	d.allow = all
	return nil
}

// hostAddrs are every address of this host, never to be banned.
func hostAddrs() []netip.Prefix {
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range ifaddrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		addr, ok := netip.AddrFromSlice(ipn.IP)
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
