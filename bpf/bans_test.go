package bpf_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/maps"
)

func TestExactAndPrefixBansCoverWhatTheyName(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	d.ban(maps.Ban{Prefix: prefix("198.18.10.7/32"), Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: prefix("198.18.11.0/24"), Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: prefix("198.18.12.128/25"), Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: prefix("fd00:10::7/128"), Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: prefix("fd00:11::/48"), Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: prefix("fd00:12:0:1::/64"), Scope: maps.ScopeAll})

	tests := []struct {
		src   string
		rule  string // as explain names it; "" when passed
		by    string // the ban that matched
		drops bool
	}{
		{"198.18.10.7", "ban", "198.18.10.7/32", true},
		{"198.18.10.6", "pass", "", false},
		{"198.18.10.8", "pass", "", false},
		{"198.18.11.0", "ban-prefix", "198.18.11.0/24", true},
		{"198.18.11.255", "ban-prefix", "198.18.11.0/24", true},
		{"198.18.12.0", "ban-prefix", "198.18.11.0/24", false},
		{"198.18.10.255", "pass", "", false},
		{"198.18.12.127", "pass", "", false},
		{"198.18.12.128", "ban-prefix", "198.18.12.128/25", true},
		{"fd00:10::7", "ban", "fd00:10::7/128", true},
		{"fd00:10::6", "pass", "", false},
		{"fd00:11::1", "ban-prefix", "fd00:11::/48", true},
		{"fd00:11:0:ffff:ffff:ffff:ffff:ffff", "ban-prefix", "fd00:11::/48", true},
		{"fd00:12::1", "pass", "", false},
		{"fd00:11:1::1", "pass", "", false},
		{"fd00:12:0:1::1", "ban-prefix", "fd00:12:0:1::/64", true},
		{"fd00:12:0:2::1", "pass", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			d.tb = t
			src := addr(tt.src)
			e := d.explain(src, 25)
			want := xdpPass
			if tt.drops {
				want = xdpDrop
				if e.Rule != tt.rule || e.Ban == nil || e.Ban.Prefix != prefix(tt.by) {
					t.Errorf("explained rule %q ban %v, want %q by %s", e.Rule, e.Ban, tt.rule, tt.by)
				}
			}
			var hitsBefore uint64
			if tt.drops {
				hitsBefore = d.lookupBan(prefix(tt.by)).Hits
			}
			if got := d.run(syn(src, 25)); got != want {
				t.Fatalf("%s, want %s", actionName(got), actionName(want))
			}
			if tt.drops {
				if hits := d.lookupBan(prefix(tt.by)).Hits - hitsBefore; hits != 1 {
					t.Errorf("hits of %s moved by %d, want 1", tt.by, hits)
				}
			}
		})
	}
}

// An inactive ban (expired, not started, or of a scope that does not apply)
// must not hide a wider active one, nor an active exact or prefix ban be
// hidden by anything.
func TestInactiveNarrowerBanDoesNotHideAWiderActiveOne(t *testing.T) {
	now := time.Now()
	expired := maps.Ban{Scope: maps.ScopeAll, Expires: now.Add(-time.Minute)}
	future := maps.Ban{Scope: maps.ScopeAll, Starts: now.Add(time.Hour)}
	mail := maps.Ban{Scope: maps.ScopeMail}
	active := maps.Ban{Scope: maps.ScopeAll}
	at := func(b maps.Ban, p string) maps.Ban { b.Prefix = prefix(p); return b }

	tests := []struct {
		name string
		bans []maps.Ban
		src  string
		port uint16
		by   string // the ban that drops; "" for pass
	}{
		{"expired /24 inside active /16", []maps.Ban{at(active, "198.18.0.0/16"), at(expired, "198.18.5.0/24")}, "198.18.5.7", 80, "198.18.0.0/16"},
		{"future /24 inside active /16", []maps.Ban{at(active, "198.18.0.0/16"), at(future, "198.18.5.0/24")}, "198.18.5.7", 80, "198.18.0.0/16"},
		{"mail /24 inside all /16, to port 80", []maps.Ban{at(active, "198.18.0.0/16"), at(mail, "198.18.5.0/24")}, "198.18.5.7", 80, "198.18.0.0/16"},
		{"mail /24 inside all /16, to port 25", []maps.Ban{at(active, "198.18.0.0/16"), at(mail, "198.18.5.0/24")}, "198.18.5.7", 25, "198.18.5.0/24"},
		{"expired exact inside active /24", []maps.Ban{at(active, "198.18.5.0/24"), at(expired, "198.18.5.7/32")}, "198.18.5.7", 80, "198.18.5.0/24"},
		{"future exact inside active /24", []maps.Ban{at(active, "198.18.5.0/24"), at(future, "198.18.5.7/32")}, "198.18.5.7", 80, "198.18.5.0/24"},
		{"active /24 inside expired /16", []maps.Ban{at(expired, "198.18.0.0/16"), at(active, "198.18.5.0/24")}, "198.18.5.7", 80, "198.18.5.0/24"},
		{"both expired", []maps.Ban{at(expired, "198.18.0.0/16"), at(expired, "198.18.5.0/24"), at(expired, "198.18.5.7/32")}, "198.18.5.7", 80, ""},
		{"expired /64 inside active /48", []maps.Ban{at(active, "fd00:20::/48"), at(expired, "fd00:20:0:5::/64")}, "fd00:20:0:5::9", 80, "fd00:20::/48"},
		{"expired /56 and future /64 inside active /32", []maps.Ban{at(active, "fd00:20::/32"), at(expired, "fd00:20:0:500::/56"), at(future, "fd00:20:0:505::/64")}, "fd00:20:0:505::9", 80, "fd00:20::/32"},
		{"active /96 (long IPv6 trie)", []maps.Ban{at(active, "fd00:20:0:5::/96")}, "fd00:20:0:5::9", 80, "fd00:20:0:5::/96"},
		{"expired /96 inside active /64", []maps.Ban{at(active, "fd00:20:0:5::/64"), at(expired, "fd00:20:0:5::/96")}, "fd00:20:0:5::9", 80, "fd00:20:0:5::/64"},
		{"expired /112 and future /80 inside active /48", []maps.Ban{at(active, "fd00:20::/48"), at(future, "fd00:20:0:5::/80"), at(expired, "fd00:20:0:5::/112")}, "fd00:20:0:5::9", 80, "fd00:20::/48"},
		{"active /96 inside expired /64", []maps.Ban{at(expired, "fd00:20:0:5::/64"), at(active, "fd00:20:0:5::/96")}, "fd00:20:0:5::9", 80, "fd00:20:0:5::/96"},
		{"/96 does not cover a neighbour /96", []maps.Ban{at(active, "fd00:20:0:5::/96")}, "fd00:20:0:5::1:0:9", 80, ""},
		{"expired exact inside active /96", []maps.Ban{at(active, "fd00:20:0:5::/96"), at(expired, "fd00:20:0:5::9/128")}, "fd00:20:0:5::9", 80, "fd00:20:0:5::/96"},
		{"seven inactive levels above an active /8", []maps.Ban{
			at(active, "198.0.0.0/8"), at(expired, "198.18.0.0/15"), at(future, "198.18.0.0/16"), at(expired, "198.18.0.0/18"),
			at(mail, "198.18.0.0/20"), at(expired, "198.18.4.0/22"), at(future, "198.18.5.0/24"), at(expired, "198.18.5.0/28"),
		}, "198.18.5.7", 80, "198.0.0.0/8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := loadDatapath(t, 4096)
			d.noRateLimits()
			if err := d.Maps.AddBans(tt.bans); err != nil {
				t.Fatal(err)
			}
			src := addr(tt.src)
			want := xdpPass
			if tt.by != "" {
				want = xdpDrop
			}
			if got := d.run(syn(src, tt.port)); got != want {
				t.Fatalf("%s, want %s", actionName(got), actionName(want))
			}
			for _, b := range tt.bans {
				want := uint64(0)
				if b.Prefix.String() == tt.by {
					want = 1
				}
				if hits := d.lookupBan(b.Prefix).Hits; hits != want {
					t.Errorf("ban %s has %d hits, want %d", b.Prefix, hits, want)
				}
			}
		})
	}
}

func TestAllowlistWinsOverBans(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	d.allow(prefix("198.18.20.0/24"))
	d.allow(prefix("198.18.21.5/32"))
	d.allow(prefix("fd00:21::/64"))
	d.allow(prefix("fd00:22::5/128"))
	for _, p := range []string{"198.18.20.0/22", "198.18.21.5/32", "198.18.21.6/32", "fd00::/16", "fd00:22::6/128"} {
		d.ban(maps.Ban{Prefix: prefix(p), Scope: maps.ScopeAll})
	}

	tests := []struct {
		name    string
		src     string
		ban     string // the ban that covers src
		allowed bool
	}{
		{"inside an allowed /24, under a /22 ban", "198.18.20.9", "198.18.20.0/22", true},
		{"outside the allowed /24, under the /22 ban", "198.18.22.9", "198.18.20.0/22", false},
		{"allowed exactly, banned exactly", "198.18.21.5", "198.18.21.5/32", true},
		{"neighbour of an exact allow, banned exactly", "198.18.21.6", "198.18.21.6/32", false},
		{"inside an allowed /64, under a /16 ban", "fd00:21::77", "fd00::/16", true},
		{"another /64 under the /16 ban", "fd00:21:0:1::77", "fd00::/16", false},
		{"allowed exactly, under the /16 ban", "fd00:22::5", "fd00::/16", true},
		// IPv6 prefixes are looked up before exact bans (IPv6 sources are
		// banned per /64), so the /16 counts the hit.
		{"neighbour of an exact allow, banned exactly and by the /16", "fd00:22::6", "fd00::/16", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.tb = t
			src := addr(tt.src)
			ack := testnet.SYN(src, dstFor(src), 80)
			ack.Flags = testnet.FlagACK
			hits := d.lookupBan(prefix(tt.ban)).Hits
			if !tt.allowed {
				d.expect("syn", syn(src, 25), xdpDrop, maps.Counters{DroppedBan: 1})
				d.expect("ack", ack.Bytes(), xdpDrop, maps.Counters{DroppedBan: 1})
				if got := d.lookupBan(prefix(tt.ban)).Hits - hits; got != 2 {
					t.Errorf("ban %s hits moved by %d, want 2", tt.ban, got)
				}
				return
			}
			d.expect("syn", syn(src, 25), xdpPass, maps.Counters{Allowlisted: 1})
			d.expect("ack", ack.Bytes(), xdpPass, maps.Counters{Allowlisted: 1})
			if got := d.lookupBan(prefix(tt.ban)).Hits - hits; got != 0 {
				t.Errorf("ban %s hits moved by %d for allowlisted traffic", tt.ban, got)
			}
			if e := d.explain(src, 25); !e.Allowlisted || e.Rule != "allowlist" || e.Action != "pass" {
				t.Errorf("explain: %+v, want allowlisted pass", e)
			}
		})
	}
}

func TestAllowlistWinsOverRateLimit(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.rateLimit(maps.ClassMX, 1, 1)
	d.allow(prefix("198.18.20.0/24"))
	d.allow(prefix("fd00:21::/64"))
	tests := []struct {
		src     string
		allowed bool
	}{
		{"198.18.20.100", true},
		{"198.18.21.100", false},
		{"fd00:21::100", true},
		{"fd00:21:0:1::100", false},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			d.tb = t
			src := addr(tt.src)
			d.expect("first syn", syn(src, 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
			for range 3 {
				if tt.allowed {
					d.expect("syn over the rate", syn(src, 25), xdpPass, maps.Counters{Allowlisted: 1, SynMX: 1})
				} else {
					d.expect("syn over the rate", syn(src, 25), xdpDrop, maps.Counters{DroppedRate: 1, SynMX: 1})
				}
			}
		})
	}
}

func TestAllowlistEntriesCanBeRemoved(t *testing.T) {
	d := loadDatapath(t, 4096)
	src := addr("198.18.23.1")
	d.ban(maps.Ban{Prefix: host(src), Scope: maps.ScopeAll})
	d.allow(prefix("198.18.23.0/24"))
	d.expect("allowed", syn(src, 25), xdpPass, maps.Counters{Allowlisted: 1})
	if err := d.Maps.Disallow(prefix("198.18.23.0/24")); err != nil {
		t.Fatal(err)
	}
	d.expect("no longer allowed", syn(src, 25), xdpDrop, maps.Counters{DroppedBan: 1})
	if got := d.config(bpf.ConfigHaveAllow); got != 0 {
		t.Errorf("allowlist present flag is %d after the last entry went", got)
	}
	d.allow(prefix("198.18.23.1/32"))
	d.expect("allowed again", syn(src, 25), xdpPass, maps.Counters{Allowlisted: 1})
}

// The maps hold IPv4 as IPv4-mapped IPv6; a ban or allow written in the
// mapped form is the IPv4 one.
func TestIPv4MappedFormsNameTheIPv4Address(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	d.ban(maps.Ban{Prefix: prefix("::ffff:198.18.30.1/128"), Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: prefix("::ffff:198.18.31.0/120"), Scope: maps.ScopeAll})
	d.allow(prefix("::ffff:198.18.31.128/121"))

	if b := d.lookupBan(prefix("198.18.30.1/32")); b.Prefix != prefix("198.18.30.1/32") {
		t.Errorf("mapped exact ban stored as %s", b.Prefix)
	}
	if b := d.lookupBan(prefix("198.18.31.0/24")); b.Prefix != prefix("198.18.31.0/24") {
		t.Errorf("mapped prefix ban stored as %s", b.Prefix)
	}
	d.expect("exact", syn(addr("198.18.30.1"), 80), xdpDrop, maps.Counters{DroppedBan: 1})
	d.expect("exact neighbour", syn(addr("198.18.30.2"), 80), xdpPass, maps.Counters{Passed: 1})
	d.expect("prefix", syn(addr("198.18.31.5"), 80), xdpDrop, maps.Counters{DroppedBan: 1})
	d.expect("prefix, allowed half", syn(addr("198.18.31.200"), 80), xdpPass, maps.Counters{Allowlisted: 1})
	d.expect("outside the prefix", syn(addr("198.18.32.5"), 80), xdpPass, maps.Counters{Passed: 1})
	if e := d.explain(addr("::ffff:198.18.30.1"), 25); e.Action != "drop" || e.Addr != addr("198.18.30.1") {
		t.Errorf("explain of the mapped form: %+v", e)
	}
	if err := d.Maps.AddBan(maps.Ban{Prefix: prefix("::ffff:0:0/95"), Scope: maps.ScopeAll}); err == nil {
		t.Error("a mapped prefix wider than the mapped range was accepted")
	}
}

// IPv6 prefixes are keyed in the same trie as mapped IPv4; a wide IPv6 ban
// (which the maps package accepts) must not reach IPv4 sources.
func TestIPv6PrefixBanDoesNotCoverIPv4Sources(t *testing.T) {
	for _, p := range []string{"::/0", "::/1", "::/64", "::ffff:0:0/80"} {
		t.Run(p, func(t *testing.T) {
			d := loadDatapath(t, 4096)
			d.noRateLimits()
			err := d.Maps.AddBan(maps.Ban{Prefix: prefix(p), Scope: maps.ScopeAll})
			if err != nil {
				return // refusing such a ban is fine too
			}
			d.expect("ipv4 source", syn(addr("198.18.33.1"), 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
		})
	}
}

// The datapath skips maps that userspace marks empty; the marks must follow
// the maps' contents through deletes and re-adds.
func TestEmptyMapFlagsFollowTheMaps(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	a, b := addr("198.18.40.1"), addr("198.18.40.2")
	p, q := prefix("198.18.41.0/24"), prefix("198.18.42.0/24")
	inP, inQ := addr("198.18.41.1"), addr("198.18.42.1")

	flags := func(what string, exact, pfx uint64) {
		t.Helper()
		if got := d.config(bpf.ConfigHaveExact); got != exact {
			t.Errorf("%s: exact present flag %d, want %d", what, got, exact)
		}
		if got := d.config(bpf.ConfigHavePrefix4); got != pfx {
			t.Errorf("%s: prefix present flag %d, want %d", what, got, pfx)
		}
	}
	drop := func(what string, src netip.Addr) {
		t.Helper()
		d.expect(what, syn(src, 80), xdpDrop, maps.Counters{DroppedBan: 1})
	}
	pass := func(what string, src netip.Addr) {
		t.Helper()
		d.expect(what, syn(src, 80), xdpPass, maps.Counters{Passed: 1})
	}
	del := func(p netip.Prefix) {
		t.Helper()
		if err := d.Maps.DeleteBan(p); err != nil {
			t.Fatal(err)
		}
	}

	flags("fresh", 0, 0)
	d.ban(maps.Ban{Prefix: host(a), Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: host(b), Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: p, Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: q, Scope: maps.ScopeAll})
	flags("two of each", 1, 1)

	del(host(a))
	del(p)
	flags("one of each deleted", 1, 1)
	pass("deleted exact", a)
	drop("remaining exact", b)
	pass("deleted prefix", inP)
	drop("remaining prefix", inQ)

	del(host(b))
	del(q)
	flags("all deleted", 0, 0)
	pass("exact after all deleted", b)
	pass("prefix after all deleted", inQ)

	d.ban(maps.Ban{Prefix: host(a), Scope: maps.ScopeAll})
	drop("new exact ban after the last was deleted", a)
	d.ban(maps.Ban{Prefix: p, Scope: maps.ScopeAll})
	drop("new prefix ban after the last was deleted", inP)
	flags("re-added", 1, 1)

	if err := d.Maps.DeleteBan(host(b)); err == nil {
		t.Error("deleting a ban that is not there succeeded")
	}
	flags("failed delete", 1, 1)
}

// A replaced ban keeps dropping, with its new terms.
func TestReplacingABanTakesEffect(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	src := addr("198.18.43.1")
	d.ban(maps.Ban{Prefix: host(src), Scope: maps.ScopeAll})
	d.expect("all scope, port 80", syn(src, 80), xdpDrop, maps.Counters{DroppedBan: 1})
	d.ban(maps.Ban{Prefix: host(src), Scope: maps.ScopeMail})
	d.expect("replaced by mail scope, port 80", syn(src, 80), xdpPass, maps.Counters{Passed: 1})
	d.expect("replaced by mail scope, port 25", syn(src, 25), xdpDrop, maps.Counters{DroppedBan: 1})
	if h := d.lookupBan(host(src)).Hits; h != 1 {
		t.Errorf("replaced ban has %d hits, want 1 (counted from the replacement)", h)
	}
	d.ban(maps.Ban{Prefix: host(src), Scope: maps.ScopeAll, Expires: time.Now().Add(-time.Second)})
	d.expect("replaced by an expired ban", syn(src, 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
}

// The kernel checks bans against the coarse monotonic clock plus the boot
// offset userspace writes. A stale offset (after a suspend with no
// userspace running) may only make bans last longer, never shorter.
func TestStaleBootOffsetEndsBansLateNeverEarly(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	src := addr("198.18.60.1")
	d.ban(maps.Ban{Prefix: host(src), Scope: maps.ScopeAll, Expires: time.Now().Add(time.Hour)})
	d.expect("with the offset", syn(src, 80), xdpDrop, maps.Counters{DroppedBan: 1})
	if err := d.pinned(bpf.MapConfig).Update(bpf.ConfigBootOffset, uint64(0), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	d.expect("offset lost", syn(src, 80), xdpDrop, maps.Counters{DroppedBan: 1})

	// A ban that ended a moment ago by the boot clock is over with the
	// offset in place.
	gone := addr("198.18.60.2")
	d.ban(maps.Ban{Prefix: host(gone), Scope: maps.ScopeAll, Expires: time.Now().Add(-50 * time.Millisecond)})
	d.expect("ended", syn(gone, 80), xdpPass, maps.Counters{Passed: 1})
}
