package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/portcullis-mail/portcullis/geo"
	"github.com/portcullis-mail/portcullis/internal/mmdbtest"
	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
)

func runGeo(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errw bytes.Buffer
	err := run(append([]string{"portcullis", "geo"}, args...), &out, &errw)
	return out.String(), err
}

func TestGeoLookupReadsADatabaseDirectly(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "db.mmdb")
	mmdbtest.Write(t, db, mmdbtest.Flat, mmdbtest.N("198.18.0.0/16", "IR"), mmdbtest.N("fd00:5::/32", "NZ"))
	cfg := filepath.Join(dir, "portcullis.toml")
	if err := os.WriteFile(cfg, []byte("[geo]\ndatabase = \"/nonexistent.mmdb\"\n[geo.policy.auth]\nallow = [\"NZ\"]\n[geo.policy.all]\ndeny = [\"KP\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := runGeo(t, "lookup", "--config", cfg, "--db", db, "--json", "198.18.3.4", "fd00:5::1", "198.51.100.1")
	if err != nil {
		t.Fatal(err)
	}
	var got []geoLookupJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	want := []struct {
		country, mx, auth, all string
	}{
		{"IR", "pass", "drop", "pass"},
		{"NZ", "pass", "pass", "pass"},
		{"", "pass", "pass", "pass"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d answers, want %d: %s", len(got), len(want), out)
	}
	for i, w := range want {
		g := got[i]
		if g.Country != w.country || g.Policies["mx"].Action != w.mx || g.Policies["auth"].Action != w.auth || g.Policies["all"].Action != w.all {
			t.Errorf("%s: %+v, want %+v", g.Addr, g, w)
		}
	}
	if p := got[0].Policies["auth"].Policy; p != "allow [NZ], unknown pass" {
		t.Errorf("auth policy shown as %q", p)
	}

	// Human output, without a config.
	out, err = runGeo(t, "lookup", "--config", filepath.Join(dir, "none.toml"), "--db", db, "198.18.3.4")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "198.18.3.4") || !strings.Contains(out, "IR") {
		t.Errorf("lookup printed:\n%s", out)
	}

	_, err = runGeo(t, "lookup", "--db", filepath.Join(dir, "missing.mmdb"), "198.18.3.4")
	if err == nil || !strings.Contains(err.Error(), "missing.mmdb") {
		t.Errorf("a missing database: %v, want an error naming it", err)
	}
	_, err = runGeo(t, "lookup", "--db", db, "mail.example.org")
	if err == nil {
		t.Error("a host name was looked up")
	}
}

func TestGeoStatusShowsTheKernelsCountries(t *testing.T) {
	testnet.RequireRoot(t)
	if err := testnet.MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pin := filepath.Join("/sys/fs/bpf", "pc-geo-cli-"+filepath.Base(dir))
	t.Cleanup(func() {
		if _, err := loader.DetachAll(pin, true); err != nil && !errors.Is(err, loader.ErrNotAttached) {
			t.Errorf("purge %s: %v", pin, err)
		}
	})
	d, err := loader.Load(loader.Options{PinDir: pin, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Capacity: loader.Capacity{Sources: 1024}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dbPath := filepath.Join(dir, "db.mmdb")
	mmdbtest.Write(t, dbPath, mmdbtest.MaxMind, mmdbtest.N("198.18.0.0/16", "IR"), mmdbtest.N("198.19.0.0/16", "IR"), mmdbtest.N("fd00:5::/32", "IR"))
	db, err := geo.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table, err := db.Table(map[maps.Class]geo.Policy{maps.ClassAuth: {Deny: []string{"IR"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Maps.SetGeo(table); err != nil {
		t.Fatal(err)
	}
	frame := testnet.SYN(netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.0.2"), 587).Bytes()
	if _, err := d.Program().Run(&ebpf.RunOptions{Data: frame}); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "portcullis.toml")
	if err := os.WriteFile(cfg, []byte("[geo]\ndatabase = \""+dbPath+"\"\n[geo.policy.auth]\ndeny = [\"IR\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"status", "--pin-dir", pin, "--socket", filepath.Join(dir, "no.sock"), "--config", cfg}
	out, err := runGeo(t, append(args, "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	var st geoStatusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	// 198.18.0.0/16 and 198.19.0.0/16 merge into one /15.
	if !st.On || len(st.Countries) != 1 || st.Countries[0] != (geoCountryJSON{Country: "IR", IPv4: 1, IPv6: 1, Drops: "auth", Dropped: 1}) {
		t.Errorf("status %+v", st)
	}
	if st.Database == nil || st.Database.Path != dbPath || !st.FromConfig || st.Database.Built.Before(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("database %+v (from config %v), want %s from the config", st.Database, st.FromConfig, dbPath)
	}
	out, err = runGeo(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{dbPath, "GeoLite2-Country", "auth: deny [IR], unknown pass", "IR"} {
		if !strings.Contains(out, want) {
			t.Errorf("status does not show %q:\n%s", want, out)
		}
	}

	var errw bytes.Buffer
	var ex bytes.Buffer
	if err := run([]string{"portcullis", "explain", "198.18.1.1", "--port", "587", "--json", "--pin-dir", pin, "--config", cfg}, &ex, &errw); err != nil {
		t.Fatal(err)
	}
	var e explainJSON
	if err := json.Unmarshal(ex.Bytes(), &e); err != nil {
		t.Fatalf("%v in %s", err, ex.String())
	}
	if e.Rule != "geo" || e.Action != "drop" || e.Geo == nil || e.Geo.Country != "IR" || e.Geo.Policy != "auth: deny [IR], unknown pass" ||
		e.Reason != "dropped by geo policy: country IR, policy auth: deny [IR], unknown pass" {
		t.Errorf("explain: %+v, geo %+v", e, e.Geo)
	}
}
