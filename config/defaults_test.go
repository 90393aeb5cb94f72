package config

import (
	"slices"
	"testing"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
)

// TestDefaultsMatchTheDatapath holds the config's datapath defaults to those
// the datapath uses when nothing is configured, so that running with the
// default config changes nothing the CLI set up.
func TestDefaultsMatchTheDatapath(t *testing.T) {
	cfg := Default()
	if cfg.Daemon.PinDir != loader.DefaultPinDir {
		t.Errorf("daemon.pin_dir %q, the loader's default is %q", cfg.Daemon.PinDir, loader.DefaultPinDir)
	}
	ports := maps.DefaultPorts()
	if got, want := cfg.Datapath.Ports.MX, ports[maps.ClassMX]; !slices.Equal(got, want) {
		t.Errorf("datapath.ports.mx %v, the datapath's default is %v", got, want)
	}
	if got, want := cfg.Datapath.Ports.Auth, ports[maps.ClassAuth]; !slices.Equal(got, want) {
		t.Errorf("datapath.ports.auth %v, the datapath's default is %v", got, want)
	}
	limits := maps.DefaultRateLimits()
	for name, got := range map[string]RateLimit{"mx": cfg.Datapath.RateLimit.MX, "auth": cfg.Datapath.RateLimit.Auth} {
		class, err := maps.ParseClass(name)
		if err != nil {
			t.Fatal(err)
		}
		want := limits[class]
		if got.PerMinute != want.PerMinute || got.Burst != want.Burst {
			t.Errorf("datapath.rate_limit.%s %+v, the datapath's default is %+v", name, got, want)
		}
	}
	spec, err := bpf.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]uint32{
		bpf.MapBans:         cfg.Datapath.Capacity.Bans,
		bpf.MapPrefixBans4:  cfg.Datapath.Capacity.PrefixBans,
		bpf.MapPrefixBans6:  cfg.Datapath.Capacity.PrefixBans,
		bpf.MapPrefixBans6L: cfg.Datapath.Capacity.PrefixBans,
		bpf.MapAllowlist:    cfg.Datapath.Capacity.Allowlist,
		bpf.MapSources:      cfg.Datapath.Capacity.Sources,
	} {
		ms, ok := spec.Maps[name]
		if !ok {
			t.Errorf("the datapath has no map %s", name)
			continue
		}
		if ms.MaxEntries != got {
			t.Errorf("datapath.capacity.%s %d, the map holds %d", name, got, ms.MaxEntries)
		}
	}
}
