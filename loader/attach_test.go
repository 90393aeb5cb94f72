package loader_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
)

// pinnedLink opens the link the loader pinned for iface.
func pinnedLink(t *testing.T, dir, iface string) *link.Info {
	t.Helper()
	l, err := link.LoadPinnedLink(filepath.Join(dir, "links", iface), nil)
	if err != nil {
		t.Fatalf("open pinned link of %s: %v", iface, err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// xdpProgID is the id of the XDP program netlink reports on iface in ns
// (0 for none).
func xdpProgID(t *testing.T, ns *testnet.NS, iface string) uint32 {
	t.Helper()
	var id uint32
	err := ns.Do(func() error {
		l, err := netlink.LinkByName(iface)
		if err != nil {
			return err
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached {
			id = x.ProgId
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// passAll is the stand-in for another build's program: it passes
// everything, so it is easy to tell from ours on the wire.
func passAll(t *testing.T) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "portcullis",
		Type: ebpf.XDP,
		// A link only takes a program of the same attach type.
		AttachType: ebpf.AttachXDP,
		License:    "MIT",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 2), // XDP_PASS
			asm.Return(),
		},
	})
	if err != nil {
		t.Fatalf("load stand-in program: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestUpgradeInPlace(t *testing.T) {
	dir := newPinDir(t)
	pair := testnet.NewPair(t)
	port := pair.Server.Serve(t, 0)
	dst := netip.AddrPortFrom(pair.ServerAddr4, port)
	iface := pair.ServerLink.Name

	d := load(t, dir, smallCapacity)
	before, _ := attach(t, pair.Server, d, iface, loader.ModeAuto)
	thisBuild, err := loader.ProgramInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	ban := maps.Ban{Prefix: netip.PrefixFrom(pair.ClientAddr4, 32), Scope: maps.ScopeAll, Reason: "upgrade"}
	if err := d.Maps.AddBan(ban); err != nil {
		t.Fatal(err)
	}
	if connects(t, pair.Client, dst) {
		t.Fatal("banned client connected before the upgrade")
	}

	// Make the pin directory look like another build's: its program pinned
	// and running in the link.
	other := passAll(t)
	lk, err := link.LoadPinnedLink(filepath.Join(dir, "links", iface), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := lk.Update(other); err != nil {
		t.Fatalf("swap in the stand-in program: %v", err)
	}
	lk.Close()
	if err := os.Remove(filepath.Join(dir, "portcullis")); err != nil {
		t.Fatal(err)
	}
	if err := other.Pin(filepath.Join(dir, "portcullis")); err != nil {
		t.Fatal(err)
	}
	oinfo, err := other.Info()
	if err != nil {
		t.Fatal(err)
	}
	otherID, _ := oinfo.ID()
	if got := pinnedLink(t, dir, iface).Program; got != otherID {
		t.Fatalf("link runs program %d after the swap, want the stand-in %d", got, otherID)
	}
	if !connects(t, pair.Client, dst) {
		t.Fatal("the stand-in program passes everything, yet the client could not connect")
	}

	upgraded := load(t, dir, loader.Capacity{})

	pinned, err := loader.ProgramInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pinned.Tag != thisBuild.Tag {
		t.Errorf("pinned program after upgrade has tag %s, want this build's %s", pinned.Tag, thisBuild.Tag)
	}
	if pinned.ProgramID == uint32(otherID) {
		t.Errorf("the stand-in program is still pinned")
	}
	after := pinnedLink(t, dir, iface)
	if uint32(after.Program) != pinned.ProgramID {
		t.Errorf("link runs program %d, want the pinned %d", after.Program, pinned.ProgramID)
	}
	if uint32(after.ID) != before.LinkID {
		t.Errorf("link id changed from %d to %d: the upgrade re-attached instead of updating in place", before.LinkID, after.ID)
	}
	if got := xdpProgID(t, pair.Server, iface); got != pinned.ProgramID {
		t.Errorf("netlink reports program %d on %s, want %d", got, iface, pinned.ProgramID)
	}
	if _, err := upgraded.Maps.LookupBan(ban.Prefix); err != nil {
		t.Errorf("ban lost in the upgrade: %v", err)
	}
	if connects(t, pair.Client, dst) {
		t.Error("banned client connected after the upgrade: the link does not run this build")
	}
	if as := attachments(t, pair.Server, dir); len(as) != 1 {
		t.Errorf("attachments after upgrade: %+v, want one", as)
	}
}

func TestAttachTwiceKeepsOneLink(t *testing.T) {
	dir := newPinDir(t)
	pair := testnet.NewPair(t)
	iface := pair.ServerLink.Name
	d := load(t, dir, smallCapacity)

	first, created := attach(t, pair.Server, d, iface, loader.ModeAuto)
	if !created {
		t.Fatal("first attach reports the program already attached")
	}
	// A second process (a second Load) attaching again finds the first link.
	second, created := attach(t, pair.Server, load(t, dir, loader.Capacity{}), iface, loader.ModeAuto)
	if created {
		t.Error("second attach reports a new link")
	}
	if second != first {
		t.Errorf("second attach reports %+v, want the first %+v", second, first)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "links"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("%d pinned links, want 1", len(entries))
	}
	if as := attachments(t, pair.Server, dir); len(as) != 1 || as[0].LinkID != first.LinkID {
		t.Errorf("attachments %+v, want only link %d", as, first.LinkID)
	}
	pinned, err := loader.ProgramInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := xdpProgID(t, pair.Server, iface); got != pinned.ProgramID {
		t.Errorf("netlink reports program %d on %s, want %d", got, iface, pinned.ProgramID)
	}
}

func TestAttachUnknownInterface(t *testing.T) {
	dir := newPinDir(t)
	ns := testnet.NewNS(t, "lt")
	d := load(t, dir, smallCapacity)
	const iface = "pcnosuch0"
	err := ns.Do(func() error {
		_, _, err := d.Attach(iface, loader.ModeAuto)
		return err
	})
	if err == nil {
		t.Fatal("attach to a missing interface succeeded")
	}
	if !strings.Contains(err.Error(), iface) || !strings.Contains(err.Error(), "no such interface") {
		t.Errorf("error does not name the missing interface: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "links")); len(entries) != 0 {
		t.Errorf("links pinned after a failed attach: %v", entries)
	}
}

func TestDetachWhenNothingAttached(t *testing.T) {
	tests := []struct {
		name   string
		loaded bool
		detach func(dir string) error
	}{
		{"one interface, loaded", true, func(dir string) error { return loader.Detach(dir, "pcnone0") }},
		{"one interface, never loaded", false, func(dir string) error { return loader.Detach(dir, "pcnone0") }},
		{"all, loaded", true, func(dir string) error { _, err := loader.DetachAll(dir, false); return err }},
		{"all, never loaded", false, func(dir string) error { _, err := loader.DetachAll(dir, false); return err }},
		{"all with purge, never loaded", false, func(dir string) error { _, err := loader.DetachAll(dir, true); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newPinDir(t)
			if tt.loaded {
				load(t, dir, smallCapacity)
			}
			err := tt.detach(dir)
			if !errors.Is(err, loader.ErrNotAttached) {
				t.Fatalf("detach = %v, want ErrNotAttached", err)
			}
			if tt.loaded {
				if _, err := os.Stat(filepath.Join(dir, "portcullis")); err != nil {
					t.Errorf("detach without purge removed the program: %v", err)
				}
			}
		})
	}
}

func TestDetachStopsEnforcement(t *testing.T) {
	dir := newPinDir(t)
	pair := testnet.NewPair(t)
	iface := pair.ServerLink.Name
	port := pair.Server.Serve(t, 0)
	dst := netip.AddrPortFrom(pair.ServerAddr6, port)
	d := load(t, dir, smallCapacity)
	attach(t, pair.Server, d, iface, loader.ModeAuto)
	if err := d.Maps.AddBan(maps.Ban{Prefix: netip.PrefixFrom(pair.ClientAddr6, 128), Scope: maps.ScopeAll}); err != nil {
		t.Fatal(err)
	}
	if connects(t, pair.Client, dst) {
		t.Fatal("banned client connected")
	}
	if err := loader.Detach(dir, iface); err != nil {
		t.Fatal(err)
	}
	if got := xdpProgID(t, pair.Server, iface); got != 0 {
		t.Errorf("program %d still on %s after detach", got, iface)
	}
	// The ban dropped the client's neighbour solicitations too, so give
	// neighbour discovery a few tries to recover.
	deadline := time.Now().Add(5 * time.Second)
	for !connects(t, pair.Client, dst) {
		if time.Now().After(deadline) {
			t.Fatal("client could not connect after detach")
		}
	}
	if err := loader.Detach(dir, iface); !errors.Is(err, loader.ErrNotAttached) {
		t.Errorf("second detach = %v, want ErrNotAttached", err)
	}
}

func TestAttachReplacesStaleLink(t *testing.T) {
	dir := newPinDir(t)
	ns := testnet.NewNS(t, "lt")
	iface := "pcs" + randomHex(t, 4)
	addVeth := func() int {
		t.Helper()
		var idx int
		err := ns.Do(func() error {
			v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: iface}, PeerName: iface + "p"}
			if err := netlink.LinkAdd(v); err != nil {
				return fmt.Errorf("add veth %s: %w", iface, err)
			}
			l, err := netlink.LinkByName(iface)
			if err != nil {
				return err
			}
			idx = l.Attrs().Index
			return netlink.LinkSetUp(l)
		})
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	delVeth := func() error {
		return ns.Do(func() error {
			return netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: iface}})
		})
	}
	t.Cleanup(func() { _ = delVeth() }) // the namespace's removal would do it too, later

	d := load(t, dir, smallCapacity)
	addVeth()
	old, _ := attach(t, ns, d, iface, loader.ModeAuto)
	if err := delVeth(); err != nil {
		t.Fatal(err)
	}
	as := attachments(t, ns, dir)
	if len(as) != 1 || !as[0].Stale {
		t.Errorf("attachments after the interface went away: %+v, want one stale", as)
	}

	idx := addVeth()
	a, created := attach(t, ns, d, iface, loader.ModeAuto)
	if !created {
		t.Error("attach to the re-created interface reused the stale link")
	}
	if a.Stale || a.Ifindex != idx {
		t.Errorf("attachment %+v, want ifindex %d and not stale", a, idx)
	}
	if a.LinkID == old.LinkID {
		t.Errorf("link id %d unchanged: the stale link was kept", a.LinkID)
	}
	pinned, err := loader.ProgramInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := xdpProgID(t, ns, iface); got != pinned.ProgramID {
		t.Errorf("netlink reports program %d on the re-created %s, want %d", got, iface, pinned.ProgramID)
	}
	if as := attachments(t, ns, dir); len(as) != 1 || as[0] != a {
		t.Errorf("attachments %+v, want only %+v", as, a)
	}
}

func TestAttachModes(t *testing.T) {
	tests := []struct {
		mode loader.Mode
		want loader.Mode
	}{
		{loader.ModeAuto, loader.ModeNative}, // veth has native XDP
		{loader.ModeNative, loader.ModeNative},
		{loader.ModeGeneric, loader.ModeGeneric},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			dir := newPinDir(t)
			pair := testnet.NewPair(t)
			d := load(t, dir, smallCapacity)
			a, _ := attach(t, pair.Server, d, pair.ServerLink.Name, tt.mode)
			if a.Mode != tt.want {
				t.Errorf("Attach reports mode %s, want %s", a.Mode, tt.want)
			}
			as := attachments(t, pair.Server, dir)
			if len(as) != 1 || as[0].Mode != tt.want {
				t.Errorf("Attachments = %+v, want one in mode %s", as, tt.want)
			}
			// Either mode enforces: a banned client cannot connect.
			port := pair.Server.Serve(t, 0)
			if err := d.Maps.AddBan(maps.Ban{Prefix: netip.PrefixFrom(pair.ClientAddr4, 32), Scope: maps.ScopeAll}); err != nil {
				t.Fatal(err)
			}
			if connects(t, pair.Client, netip.AddrPortFrom(pair.ServerAddr4, port)) {
				t.Errorf("banned client connected through a %s attachment", a.Mode)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "native", "generic"} {
		if m, err := loader.ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := loader.ParseMode("offload"); err == nil || !strings.Contains(err.Error(), "offload") {
		t.Errorf("ParseMode(offload) = %v, want an error naming it", err)
	}
}

// helperEnv makes the test binary, started again by
// TestConcurrentLoadAndAttach, load and attach once and exit.
const helperEnv = "PORTCULLIS_LOADER_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helper(spec))
	}
	os.Exit(m.Run())
}

// helper loads the datapath in dir and attaches it to iface (the process
// runs in the interface's namespace), printing "created=BOOL".
func helper(spec string) int {
	dir, iface, _ := strings.Cut(spec, ",")
	d, err := loader.Load(loader.Options{PinDir: dir, Capacity: smallCapacity})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer d.Close()
	_, created, err := d.Attach(iface, loader.ModeAuto)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("created=%t\n", created)
	return 0
}

// Several loaders racing to create the pin directory and attach must end
// with one complete directory and one link: the rename and the flock.
func TestConcurrentLoadAndAttach(t *testing.T) {
	const racers = 4
	tests := []struct {
		name string
		race func(t *testing.T, ns *testnet.NS, dir, iface string) []bool
	}{
		{"goroutines", func(t *testing.T, ns *testnet.NS, dir, iface string) []bool {
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				created []bool
			)
			start := make(chan struct{})
			for range racers {
				wg.Go(func() {
					<-start
					err := ns.Do(func() error {
						d, err := loader.Load(loader.Options{PinDir: dir, Capacity: smallCapacity, Logger: testLogger(t)})
						if err != nil {
							return err
						}
						defer d.Close()
						_, c, err := d.Attach(iface, loader.ModeAuto)
						if err != nil {
							return err
						}
						mu.Lock()
						created = append(created, c)
						mu.Unlock()
						return nil
					})
					if err != nil {
						t.Errorf("load and attach: %v", err)
					}
				})
			}
			close(start)
			wg.Wait()
			return created
		}},
		{"processes", func(t *testing.T, ns *testnet.NS, dir, iface string) []bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var cmds []*exec.Cmd
			var outs []*strings.Builder
			for range racers {
				cmd := ns.Command(ctx, os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), helperEnv+"="+dir+","+iface)
				out := &strings.Builder{}
				cmd.Stdout, cmd.Stderr = out, out
				cmds, outs = append(cmds, cmd), append(outs, out)
			}
			for _, cmd := range cmds {
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
			}
			var created []bool
			for i, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					t.Errorf("helper %d: %v: %s", i, err, outs[i])
					continue
				}
				sc := bufio.NewScanner(strings.NewReader(outs[i].String()))
				for sc.Scan() {
					if v, ok := strings.CutPrefix(sc.Text(), "created="); ok {
						created = append(created, v == "true")
					}
				}
			}
			return created
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for round := range 3 {
				dir := newPinDir(t)
				pair := testnet.NewPair(t)
				iface := pair.ServerLink.Name
				created := tt.race(t, pair.Server, dir, iface)
				if len(created) != racers {
					t.Fatalf("round %d: %d of %d racers finished", round, len(created), racers)
				}
				n := 0
				for _, c := range created {
					if c {
						n++
					}
				}
				if n != 1 {
					t.Errorf("round %d: %d racers report a new link, want 1", round, n)
				}
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				if len(entries) != len(pinnedNames) {
					t.Errorf("round %d: pin directory holds %d entries, want %d", round, len(entries), len(pinnedNames))
				}
				if as := attachments(t, pair.Server, dir); len(as) != 1 || as[0].Stale {
					t.Errorf("round %d: attachments %+v, want one live link", round, as)
				}
				pinned, err := loader.ProgramInfo(dir)
				if err != nil {
					t.Fatal(err)
				}
				if got := xdpProgID(t, pair.Server, iface); got != pinned.ProgramID {
					t.Errorf("round %d: netlink reports program %d, want the pinned %d", round, got, pinned.ProgramID)
				}
			}
		})
	}
}

// An upgrade must not be blocked by a link whose interface is gone: the
// kernel refuses to update such a link, and every later Load (so every
// `portcullis attach`, the command that replaces stale links) would fail.
func TestUpgradeWithStaleLink(t *testing.T) {
	dir := newPinDir(t)
	pair := testnet.NewPair(t)
	d := load(t, dir, smallCapacity)
	attach(t, pair.Server, d, pair.ServerLink.Name, loader.ModeAuto)

	ns := pair.Server
	gone := "pcg" + randomHex(t, 4)
	err := ns.Do(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: gone}, PeerName: gone + "p"}); err != nil {
			return err
		}
		l, err := netlink.LinkByName(gone)
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})
	if err != nil {
		t.Fatal(err)
	}
	attach(t, ns, d, gone, loader.ModeAuto)
	if err := ns.Do(func() error { return netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: gone}}) }); err != nil {
		t.Fatal(err)
	}

	other := passAll(t)
	if err := os.Remove(filepath.Join(dir, "portcullis")); err != nil {
		t.Fatal(err)
	}
	if err := other.Pin(filepath.Join(dir, "portcullis")); err != nil {
		t.Fatal(err)
	}

	var upgraded *loader.Datapath
	err = ns.Do(func() error {
		var err error
		upgraded, err = loader.Load(loader.Options{PinDir: dir, Logger: testLogger(t)})
		return err
	})
	if err != nil {
		t.Fatalf("Load with a stale link pinned: %v", err)
	}
	defer upgraded.Close()
	pinned, err := loader.ProgramInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := xdpProgID(t, ns, pair.ServerLink.Name); got != pinned.ProgramID {
		t.Errorf("live interface runs program %d, want the upgraded %d", got, pinned.ProgramID)
	}
}
