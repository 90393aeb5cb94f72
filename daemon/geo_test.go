package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/internal/mmdbtest"
	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/store"
)

// opens reports whether a handshake from local (zero: the client's own
// address) to dst completes; a timeout is a dropped SYN, anything else
// (a reset) fails the test.
func opens(t *testing.T, ns *testnet.NS, local netip.Addr, dst netip.AddrPort) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var from netip.AddrPort
	if local.IsValid() {
		from = netip.AddrPortFrom(local, 0)
	}
	c, err := ns.DialFrom(ctx, "tcp", from, dst)
	if err == nil {
		c.Close()
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	t.Fatalf("connect to %s: %v", dst, err)
	return false
}

// TestGeoBlocksLoginsFromADeniedCountry runs the daemon with an auth policy
// denying the country the test database places the client in: the client
// cannot open 587 but can open 25, an allowlisted address of that country
// can open 587, the store records the country of its events, and when the
// database file is replaced by rename with one that moves the client to
// another country, the verdict follows within a second. SIGHUP then applies
// a new policy.
func TestGeoBlocksLoginsFromADeniedCountry(t *testing.T) {
	h := newHarness(t)
	dbDir := t.TempDir()
	db := filepath.Join(dbDir, "GeoLite2-Country.mmdb")
	mmdbtest.Write(t, db, mmdbtest.MaxMind, mmdbtest.N("198.18.0.0/16", "IR"), mmdbtest.N("fd00:18::/64", "IR"))
	allowed := netip.MustParseAddr("198.18.50.1")
	h.pair.AddClientAddrs(t, netip.PrefixFrom(allowed, 32))
	h.cfg.Geo.Database = db
	h.cfg.Geo.Policy.Auth.Deny = []string{"IR"}
	h.cfg.Verdict.Allowlist = []netip.Prefix{netip.PrefixFrom(allowed, 32)}
	reloaded := make(chan struct{}, 1)
	h.reload = func() (config.Config, error) {
		defer func() { reloaded <- struct{}{} }()
		cfg := h.cfg
		cfg.Geo.Policy.Auth.Deny = []string{"NZ"}
		return cfg, nil
	}
	h.pair.Server.Serve(t, 25)
	h.pair.Server.Serve(t, 587)
	h.start()

	server := h.pair.ServerAddr4
	client := h.pair.Client
	if opens(t, client, netip.Addr{}, netip.AddrPortFrom(server, 587)) {
		t.Error("a client in a denied country opened 587")
	}
	if !opens(t, client, netip.Addr{}, netip.AddrPortFrom(server, 25)) {
		t.Error("a client in a denied country could not open 25, which no policy restricts")
	}
	if opens(t, client, netip.Addr{}, netip.AddrPortFrom(h.pair.ServerAddr6, 587)) {
		t.Error("a client in a denied country opened 587 over IPv6")
	}
	if !opens(t, client, allowed, netip.AddrPortFrom(server, 587)) {
		t.Error("an allowlisted client in a denied country could not open 587")
	}

	// Events get the source's country.
	h.appendLog(saslFailure("198.18.0.1"))
	st := h.store()
	var events []eventCountry
	deadline := time.Now().Add(5 * time.Second)
	for len(events) == 0 && time.Now().Before(deadline) {
		events = storedCountries(t, st)
		time.Sleep(10 * time.Millisecond)
	}
	if len(events) != 1 || events[0].country != "IR" {
		t.Errorf("stored events %+v, want one from IR", events)
	}
	status, err := h.daemonStatus()
	if err != nil || status.Geo == nil || status.Geo.Path != db || status.Geo.Policies["auth"] != "deny [IR], unknown pass" {
		t.Errorf("status geo = %+v (%v), want %s with the auth deny-list", status.Geo, err, db)
	}

	// geoipupdate's way: a new file renamed over the old one.
	mmdbtest.Write(t, db, mmdbtest.MaxMind, mmdbtest.N("198.18.0.0/16", "NZ"), mmdbtest.N("fd00:18::/64", "NZ"))
	moved := time.Now()
	pinned, err := loader.Open(h.cfg.Daemon.PinDir)
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	for {
		e, err := pinned.Explain(h.pair.ClientAddr4, 587)
		if err != nil {
			t.Fatal(err)
		}
		// NZ is named by no policy: the tries do not hold it.
		if e.Action == "pass" && e.GeoCountry == "unknown" {
			break
		}
		if time.Since(moved) > time.Second {
			t.Fatalf("a second after the database moved the client: %s by %s in %q", e.Action, e.Rule, e.GeoCountry)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("the verdict followed the new database after %v", time.Since(moved).Round(time.Millisecond))
	if !opens(t, client, netip.Addr{}, netip.AddrPortFrom(server, 587)) {
		t.Error("after the database moved the client to an allowed country it still cannot open 587")
	}

	// SIGHUP: a new policy denies the client's new country.
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloaded:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload within 5s of SIGHUP")
	}
	h.waitFor("configuration reloaded", 0)
	if opens(t, client, netip.Addr{}, netip.AddrPortFrom(server, 587)) {
		t.Error("after SIGHUP denied NZ, the client in NZ opened 587")
	}
}

type eventCountry struct {
	addr    netip.Addr
	country string
}

func storedCountries(t *testing.T, st *store.Store) []eventCountry {
	t.Helper()
	evs, err := st.Events(context.Background(), store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []eventCountry
	for _, ev := range evs {
		out = append(out, eventCountry{ev.Addr, ev.Country})
	}
	return out
}

func (h *harness) daemonStatus() (Status, error) {
	resp, err := Call(context.Background(), h.cfg.Daemon.Socket, Request{Command: "status"})
	if err != nil || resp.Status == nil {
		return Status{}, errors.Join(err, errors.New("no status"))
	}
	return *resp.Status, nil
}
