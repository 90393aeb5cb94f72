package loader_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
)

// pinnedNames is what a complete pin directory holds, sorted as
// os.ReadDir lists it.
var pinnedNames = slices.Sorted(slices.Values([]string{
	bpf.MapAllowlist, bpf.MapBans, bpf.MapConfig, bpf.MapCounters, bpf.MapPorts,
	bpf.MapPrefixBans4, bpf.MapPrefixBans6, bpf.MapPrefixBans6L, bpf.MapSources, "links", "portcullis",
	bpf.MapGeo4_0, bpf.MapGeo4_1, bpf.MapGeo6_0, bpf.MapGeo6_1, bpf.MapGeoDrops,
}))

func TestLoadCreatesPinDirAtomically(t *testing.T) {
	dir := newPinDir(t)

	// Watch the directory while Load builds it: whenever it is visible it
	// must already be complete.
	ctx, cancel := context.WithCancel(context.Background())
	seen := make(chan []string, 1)
	go func() {
		var partial []string
		defer func() { seen <- partial }()
		for ctx.Err() == nil {
			entries, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if !slices.Equal(names, pinnedNames) && partial == nil {
				partial = names
			}
		}
	}()
	d, err := loader.Load(loader.Options{PinDir: dir, Capacity: smallCapacity, Logger: testLogger(t)})
	cancel()
	partial := <-seen
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	if partial != nil {
		t.Errorf("saw a half-built pin directory holding %v", partial)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, pinnedNames) {
		t.Errorf("pin directory holds %v, want %v", names, pinnedNames)
	}
	if tmps, _ := filepath.Glob(dir + "_tmp_*"); len(tmps) > 0 {
		t.Errorf("temporary directories left behind: %v", tmps)
	}
	if d.PinDir() != dir {
		t.Errorf("PinDir() = %q, want %q", d.PinDir(), dir)
	}
}

func TestLoadReusesPinnedState(t *testing.T) {
	dir := newPinDir(t)
	first := load(t, dir, smallCapacity)

	// Settings a user changed must survive the next Load, which must not
	// put the defaults back.
	custom := maps.RateLimit{PerMinute: 7, Burst: 2}
	if err := first.Maps.SetRateLimit(maps.ClassAuth, custom); err != nil {
		t.Fatal(err)
	}
	if err := first.Maps.SetPortClass(587, maps.ClassNone); err != nil {
		t.Fatal(err)
	}
	if err := first.Maps.SetPortClass(2525, maps.ClassMX); err != nil {
		t.Fatal(err)
	}
	banned := netip.MustParsePrefix("198.18.7.9/32")
	if err := first.Maps.AddBan(maps.Ban{Prefix: banned, Scope: maps.ScopeAll, Reason: "first load"}); err != nil {
		t.Fatal(err)
	}
	firstProg, err := loader.ProgramInfo(dir)
	if err != nil {
		t.Fatal(err)
	}

	second := load(t, dir, loader.Capacity{})

	b, err := second.Maps.LookupBan(banned)
	if err != nil {
		t.Fatalf("ban added through the first load, looked up through the second: %v", err)
	}
	if b.Reason != "first load" || b.Scope != maps.ScopeAll {
		t.Errorf("ban through the second load = %+v", b)
	}
	// And the other way round: both are views of the same kernel maps.
	banned6 := netip.MustParsePrefix("fd00:18::/64")
	if err := second.Maps.AddBan(maps.Ban{Prefix: banned6, Scope: maps.ScopeMail}); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Maps.LookupBan(banned6); err != nil {
		t.Errorf("ban added through the second load, looked up through the first: %v", err)
	}

	rl, err := second.Maps.RateLimit(maps.ClassAuth)
	if err != nil {
		t.Fatal(err)
	}
	if rl != custom {
		t.Errorf("auth rate limit after reload = %+v, want %+v (defaults were put back)", rl, custom)
	}
	classes, err := second.Maps.PortClasses()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(classes[maps.ClassAuth], 587) {
		t.Errorf("port 587 protected again after reload: %v", classes)
	}
	if !slices.Contains(classes[maps.ClassMX], 2525) {
		t.Errorf("port 2525 lost its class after reload: %v", classes)
	}

	secondProg, err := loader.ProgramInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if secondProg != firstProg {
		t.Errorf("reload of the same build replaced the pinned program: %+v, then %+v", firstProg, secondProg)
	}
}

func TestLoadSetsDefaultsOnCreate(t *testing.T) {
	dir := newPinDir(t)
	d := load(t, dir, smallCapacity)
	for c, want := range maps.DefaultRateLimits() {
		got, err := d.Maps.RateLimit(c)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("rate limit of %s = %+v, want %+v", c, got, want)
		}
	}
	classes, err := d.Maps.PortClasses()
	if err != nil {
		t.Fatal(err)
	}
	for c, ports := range maps.DefaultPorts() {
		want := slices.Sorted(slices.Values(ports))
		if !slices.Equal(classes[c], want) {
			t.Errorf("ports of %s = %v, want %v", c, classes[c], want)
		}
	}
}

func TestLoadRefusesIncompatibleLayout(t *testing.T) {
	tests := []struct {
		name string
		spec ebpf.MapSpec
	}{
		{
			name: "bans with a different value size",
			spec: ebpf.MapSpec{Name: bpf.MapBans, Type: ebpf.Hash, KeySize: 16, ValueSize: 72, MaxEntries: 1024, Flags: 1 /* BPF_F_NO_PREALLOC */},
		},
		{
			name: "bans with a different key size",
			spec: ebpf.MapSpec{Name: bpf.MapBans, Type: ebpf.Hash, KeySize: 4, ValueSize: 80, MaxEntries: 1024, Flags: 1},
		},
		{
			name: "bans preallocated",
			spec: ebpf.MapSpec{Name: bpf.MapBans, Type: ebpf.Hash, KeySize: 16, ValueSize: 80, MaxEntries: 1024},
		},
		{
			name: "config of another type",
			spec: ebpf.MapSpec{Name: bpf.MapConfig, Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 64},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newPinDir(t)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			m, err := ebpf.NewMap(&tt.spec)
			if err != nil {
				t.Fatalf("create map: %v", err)
			}
			defer m.Close()
			pin := filepath.Join(dir, tt.spec.Name)
			if err := m.Pin(pin); err != nil {
				t.Fatal(err)
			}
			key := make([]byte, tt.spec.KeySize)
			val := make([]byte, tt.spec.ValueSize)
			val[0] = 0x5a
			if err := m.Put(key, val); err != nil {
				t.Fatal(err)
			}
			info, err := m.Info()
			if err != nil {
				t.Fatal(err)
			}
			wantID, _ := info.ID()

			_, err = loader.Load(loader.Options{PinDir: dir, Logger: testLogger(t)})
			if !errors.Is(err, loader.ErrIncompatible) {
				t.Fatalf("Load = %v, want ErrIncompatible", err)
			}
			if !strings.Contains(err.Error(), "detach --all --purge") {
				t.Errorf("error does not say what to do: %v", err)
			}
			if !strings.Contains(err.Error(), tt.spec.Name) {
				t.Errorf("error does not name the map %s: %v", tt.spec.Name, err)
			}

			pinned, err := ebpf.LoadPinnedMap(pin, nil)
			if err != nil {
				t.Fatalf("the incompatible map is gone after Load: %v", err)
			}
			defer pinned.Close()
			pinfo, err := pinned.Info()
			if err != nil {
				t.Fatal(err)
			}
			if id, _ := pinfo.ID(); id != wantID {
				t.Errorf("pinned map replaced: id %d, want %d", id, wantID)
			}
			got := make([]byte, tt.spec.ValueSize)
			if err := pinned.Lookup(key, &got); err != nil {
				t.Fatalf("entry of the incompatible map lost: %v", err)
			}
			if got[0] != 0x5a {
				t.Errorf("entry of the incompatible map changed: % x", got)
			}
			if _, err := os.Stat(filepath.Join(dir, "portcullis")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a program was pinned beside the incompatible map (stat: %v)", err)
			}
		})
	}
}

func TestLoadCapacity(t *testing.T) {
	dir := newPinDir(t)
	first := load(t, dir, loader.Capacity{Bans: 512, Sources: 1024})
	ban := maps.Ban{Prefix: netip.MustParsePrefix("198.18.3.4/32"), Scope: maps.ScopeAll}
	if err := first.Maps.AddBan(ban); err != nil {
		t.Fatal(err)
	}
	bansCapacity(t, first, 512)

	tests := []struct {
		name    string
		c       loader.Capacity
		wantErr bool
	}{
		{name: "none asked adopts the pinned one", c: loader.Capacity{}},
		{name: "the same one asked is fine", c: loader.Capacity{Bans: 512}},
		{name: "a different one asked is an error", c: loader.Capacity{Bans: 2048}, wantErr: true},
		{name: "a different one for another map is an error", c: loader.Capacity{Sources: 4096}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := loader.Load(loader.Options{PinDir: dir, Capacity: tt.c, Logger: testLogger(t)})
			if tt.wantErr {
				if err == nil {
					d.Close()
					t.Fatal("Load with a different capacity succeeded")
				}
				if !strings.Contains(err.Error(), "purge") {
					t.Errorf("error does not say what to do: %v", err)
				}
				// Nothing changed: same capacity, same bans.
				bansCapacity(t, first, 512)
				if _, err := first.Maps.LookupBan(ban.Prefix); err != nil {
					t.Errorf("ban lost after refused Load: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			defer d.Close()
			bansCapacity(t, d, 512)
			if _, err := d.Maps.LookupBan(ban.Prefix); err != nil {
				t.Errorf("ban lost: %v", err)
			}
		})
	}
}

func bansCapacity(t *testing.T, d *loader.Datapath, want int) {
	t.Helper()
	fill, err := d.Maps.Fill()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fill {
		if f.Name == "bans" {
			if f.Capacity != want {
				t.Errorf("bans capacity = %d, want %d", f.Capacity, want)
			}
			return
		}
	}
	t.Errorf("no bans in %+v", fill)
}

func TestLoadNeedsBPFFS(t *testing.T) {
	dir := t.TempDir()
	_, err := loader.Load(loader.Options{PinDir: filepath.Join(dir, "pc"), Logger: testLogger(t)})
	if err == nil {
		t.Fatal("Load outside bpffs succeeded")
	}
	if !strings.Contains(err.Error(), "bpf filesystem") || !strings.Contains(err.Error(), dir) {
		t.Errorf("error does not explain the missing bpffs: %v", err)
	}
}

// TestLoadAddsGeoMapsToAnOlderPinnedSet: a pin directory made by a build
// without the geo maps is upgraded in place by the next Load: the new maps
// are created and pinned, the program is replaced by one that uses them,
// and every ban stays.
func TestLoadAddsGeoMapsToAnOlderPinnedSet(t *testing.T) {
	dir := newPinDir(t)
	first := load(t, dir, smallCapacity)
	banned := netip.MustParsePrefix("198.18.7.9/32")
	if err := first.Maps.AddBan(maps.Ban{Prefix: banned, Scope: maps.ScopeAll, Reason: "before geo"}); err != nil {
		t.Fatal(err)
	}
	firstProg, err := loader.ProgramInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	// What an older build pinned: everything but the geo maps.
	geoMaps := []string{bpf.MapGeo4_0, bpf.MapGeo4_1, bpf.MapGeo6_0, bpf.MapGeo6_1, bpf.MapGeoDrops}
	for _, name := range geoMaps {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	old, err := maps.Open(dir)
	if err != nil {
		t.Fatalf("open a pinned set without geo maps: %v", err)
	}
	if _, err := old.GeoStatus(); !errors.Is(err, maps.ErrNoGeoMaps) {
		t.Errorf("geo status of an older set = %v, want ErrNoGeoMaps", err)
	}
	old.Close()

	second := load(t, dir, loader.Capacity{})
	for _, name := range geoMaps {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("map %s not pinned by the upgrade: %v", name, err)
		}
	}
	if b, err := second.Maps.LookupBan(banned); err != nil || b.Reason != "before geo" {
		t.Errorf("ban after the upgrade = %+v, %v", b, err)
	}
	secondProg, err := loader.ProgramInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if secondProg == firstProg {
		t.Error("the pinned program, which used the old geo maps, was kept")
	}
	src := netip.MustParseAddr("198.18.130.1")
	if err := second.Maps.SetGeo(maps.GeoTable{
		Countries: map[string]maps.GeoCountry{"IR": {Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.130.0/24")}, Drop: maps.GeoAuth}},
		Classes:   maps.GeoAuth,
	}); err != nil {
		t.Fatal(err)
	}
	pinned, err := loader.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	e, err := pinned.Explain(src, 587)
	if err != nil {
		t.Fatal(err)
	}
	if e.Action != "drop" || e.Rule != "geo" || e.GeoCountry != "IR" {
		t.Errorf("the pinned program after the upgrade: %s by %s in %q, want drop by geo in IR", e.Action, e.Rule, e.GeoCountry)
	}
}
