package bpf_test

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/geo"
	"github.com/portcullis-mail/portcullis/internal/mmdbtest"
	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/maps"
)

// geoNets is the test world: every source below is placed by it, or
// deliberately not (198.19.128.0/17, fd00:9::/48).
var geoNets = []mmdbtest.Network{
	mmdbtest.N("198.18.0.0/17", "NZ"),
	mmdbtest.N("198.18.128.0/18", "IR"),
	mmdbtest.N("198.18.192.0/18", "AU"),
	mmdbtest.N("198.19.0.0/17", "KP"),
	mmdbtest.N("fd00:1::/48", "IR"),
	mmdbtest.N("fd00:2::/48", "NZ"),
	mmdbtest.N("fd00:3::/48", "US"),
}

const (
	srcNZ   = "198.18.1.1"
	srcIR   = "198.18.130.1"
	srcAU   = "198.18.200.1"
	srcKP   = "198.19.1.1"
	srcNone = "198.19.200.1"
	srcIR6  = "fd00:1::1"
	srcNZ6  = "fd00:2::1"
	srcUS6  = "fd00:3::1"
	srcNo6  = "fd00:9::1"
)

func openGeoDB(t testing.TB, shape mmdbtest.Shape, nets []mmdbtest.Network) *geo.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "geo.mmdb")
	mmdbtest.Write(t, path, shape, nets...)
	db, err := geo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (d *datapath) setGeo(db *geo.DB, policies map[maps.Class]geo.Policy) {
	d.tb.Helper()
	table, err := db.Table(policies)
	if err != nil {
		d.tb.Fatal(err)
	}
	if err := d.Maps.SetGeo(table); err != nil {
		d.tb.Fatal(err)
	}
}

func ack(src string, port uint16) []byte {
	a := addr(src)
	return testnet.Packet{Src: a, Dst: dstFor(a), SrcPort: 40000, DstPort: port, Flags: testnet.FlagACK}.Bytes()
}

func TestGeoPolicyVerdicts(t *testing.T) {
	type probe struct {
		frame []byte
		what  string
		drop  bool
	}
	synTo := func(src string, port uint16, drop bool) probe {
		return probe{syn(addr(src), port), src + " syn " + itoa(int(port)), drop}
	}
	ackTo := func(src string, port uint16, drop bool) probe {
		return probe{ack(src, port), src + " ack " + itoa(int(port)), drop}
	}
	tests := []struct {
		name     string
		shape    mmdbtest.Shape
		policies map[maps.Class]geo.Policy
		probes   []probe
	}{
		{
			name:     "auth deny-list: only logins from the denied country drop",
			shape:    mmdbtest.MaxMind,
			policies: map[maps.Class]geo.Policy{maps.ClassAuth: {Deny: []string{"IR"}}},
			probes: []probe{
				synTo(srcIR, 587, true), synTo(srcIR6, 993, true),
				synTo(srcIR, 25, false), ackTo(srcIR, 587, false), synTo(srcIR, 80, false),
				synTo(srcNZ, 587, false), synTo(srcNone, 587, false), synTo(srcNo6, 587, false),
			},
		},
		{
			name:     "auth allow-list: other countries drop, unknown passes",
			shape:    mmdbtest.Flat,
			policies: map[maps.Class]geo.Policy{maps.ClassAuth: {Allow: []string{"NZ", "AU"}}},
			probes: []probe{
				synTo(srcNZ, 587, false), synTo(srcAU, 587, false), synTo(srcNZ6, 587, false),
				synTo(srcIR, 587, true), synTo(srcKP, 465, true), synTo(srcUS6, 143, true),
				synTo(srcNone, 587, false), synTo(srcNo6, 587, false),
				synTo(srcKP, 25, false),
			},
		},
		{
			name:     "auth allow-list with unknown drop",
			shape:    mmdbtest.Flat,
			policies: map[maps.Class]geo.Policy{maps.ClassAuth: {Allow: []string{"NZ"}, UnknownDrop: true}},
			probes: []probe{
				synTo(srcNZ, 587, false), synTo(srcIR, 587, true), synTo(srcNone, 587, true), synTo(srcNo6, 587, true),
			},
		},
		{
			name:     "deny-list with unknown drop: other countries pass",
			shape:    mmdbtest.MaxMind,
			policies: map[maps.Class]geo.Policy{maps.ClassAuth: {Deny: []string{"IR"}, UnknownDrop: true}},
			probes: []probe{
				synTo(srcIR, 587, true), synTo(srcNone, 587, true), synTo(srcNo6, 587, true),
				synTo(srcKP, 587, false), synTo(srcUS6, 587, false), synTo(srcNone, 25, false),
			},
		},
		{
			name:     "all: every packet of the country drops",
			shape:    mmdbtest.MaxMindRegisteredOnly,
			policies: map[maps.Class]geo.Policy{maps.ClassNone: {Deny: []string{"KP"}}},
			probes: []probe{
				synTo(srcKP, 25, true), ackTo(srcKP, 80, true), ackTo(srcKP, 25, true),
				synTo(srcNZ, 25, false), ackTo(srcIR, 80, false),
			},
		},
		{
			name:  "a policy per class: mx and auth differ",
			shape: mmdbtest.Flat,
			policies: map[maps.Class]geo.Policy{
				maps.ClassMX:   {Deny: []string{"KP"}},
				maps.ClassAuth: {Allow: []string{"NZ"}},
			},
			probes: []probe{
				synTo(srcKP, 25, true), synTo(srcIR, 25, false), synTo(srcIR, 587, true),
				synTo(srcNZ, 587, false), synTo(srcNZ, 25, false), synTo(srcNone, 587, false),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := loadDatapath(t, 1024)
			d.noRateLimits()
			d.setGeo(openGeoDB(t, tc.shape, geoNets), tc.policies)
			for _, p := range tc.probes {
				want, moved := xdpPass, maps.Counters{Passed: 1}
				if p.drop {
					want, moved = xdpDrop, maps.Counters{DroppedGeo: 1}
				}
				got, delta := d.verdict(p.frame)
				delta.SynMX, delta.SynAuth = 0, 0
				if got != want || delta != moved {
					t.Errorf("%s: %s with counters %+v, want %s with %+v", p.what, actionName(got), delta, actionName(want), moved)
				}
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestGeoOrderAllowlistBansGeoRate(t *testing.T) {
	d := loadDatapath(t, 1024)
	d.setGeo(openGeoDB(t, mmdbtest.Flat, geoNets), map[maps.Class]geo.Policy{maps.ClassAuth: {Deny: []string{"IR"}}})
	d.allow(prefix("198.18.130.7/32"))
	d.ban(maps.Ban{Prefix: prefix("198.18.130.8/32"), Scope: maps.ScopeAll})
	d.rateLimit(maps.ClassAuth, 1, 1)

	d.expect("allowlisted source in a denied country", syn(addr("198.18.130.7"), 587), xdpPass, maps.Counters{Allowlisted: 1})
	d.expect("banned source in a denied country", syn(addr("198.18.130.8"), 587), xdpDrop, maps.Counters{DroppedBan: 1})
	// Geo comes before the rate limit: a denied source spends no tokens.
	d.expect("denied country", syn(addr(srcIR), 587), xdpDrop, maps.Counters{DroppedGeo: 1})
	d.expect("allowed country, first syn", syn(addr(srcNZ), 587), xdpPass, maps.Counters{Passed: 1, SynAuth: 1})
	d.expect("allowed country, over the rate", syn(addr(srcNZ), 587), xdpDrop, maps.Counters{DroppedRate: 1, SynAuth: 1})
}

func TestGeoCountsDropsPerCountry(t *testing.T) {
	d := loadDatapath(t, 1024)
	d.noRateLimits()
	d.setGeo(openGeoDB(t, mmdbtest.Flat, geoNets), map[maps.Class]geo.Policy{maps.ClassAuth: {Allow: []string{"NZ"}, UnknownDrop: true}})
	for range 3 {
		d.run(syn(addr(srcIR), 587))
	}
	d.run(syn(addr(srcIR6), 587))
	d.run(syn(addr(srcKP), 587))
	d.run(syn(addr(srcNone), 587))
	d.run(syn(addr(srcNZ), 587))
	st, err := d.Maps.GeoStatus()
	if err != nil {
		t.Fatal(err)
	}
	// IR and KP are not named: they are "other" in the tries.
	want := map[string]maps.GeoCountryStatus{
		"NZ":                {Country: "NZ", IPv4: 1, IPv6: 1, Drop: 0},
		maps.CountryOther:   {Country: maps.CountryOther, IPv4: 2, IPv6: 2, Drop: maps.GeoAuth, Dropped: 5},
		maps.CountryUnknown: {Country: maps.CountryUnknown, Dropped: 1},
	}
	if len(st.Countries) != len(want) {
		t.Errorf("status countries %+v, want %+v", st.Countries, want)
	}
	for _, c := range st.Countries {
		if c != want[c.Country] {
			t.Errorf("status of %s = %+v, want %+v", c.Country, c, want[c.Country])
		}
	}
	if !st.On || st.Classes != maps.GeoAuth || st.Unknown != maps.GeoAuth || st.Bytes == 0 {
		t.Errorf("status %+v, want on, auth policy, unknown dropped for auth, some memory", st)
	}
}

func TestGeoSwitchesSetsAndClears(t *testing.T) {
	d := loadDatapath(t, 1024)
	d.noRateLimits()
	if d.config(bpf.ConfigHaveGeo) != 0 {
		t.Fatal("a fresh datapath has a geo policy")
	}
	deny := map[maps.Class]geo.Policy{maps.ClassAuth: {Deny: []string{"IR"}}}
	d.setGeo(openGeoDB(t, mmdbtest.Flat, geoNets), deny)
	d.expect("IR before the move", syn(addr(srcIR), 587), xdpDrop, maps.Counters{DroppedGeo: 1})
	first := d.config(bpf.ConfigHaveGeo) & bpf.GeoCfgSet

	// A new database moves IR's range to NZ and NZ's to IR.
	moved := []mmdbtest.Network{mmdbtest.N("198.18.0.0/17", "IR"), mmdbtest.N("198.18.128.0/18", "NZ")}
	d.setGeo(openGeoDB(t, mmdbtest.Flat, moved), deny)
	d.expect("old IR range after the move", syn(addr(srcIR), 587), xdpPass, maps.Counters{Passed: 1, SynAuth: 1})
	d.expect("old NZ range after the move", syn(addr(srcNZ), 587), xdpDrop, maps.Counters{DroppedGeo: 1})
	if d.config(bpf.ConfigHaveGeo)&bpf.GeoCfgSet == first {
		t.Error("the second policy went into the live set")
	}
	old := []string{bpf.MapGeo4_0, bpf.MapGeo6_0}
	if first != 0 {
		old = []string{bpf.MapGeo4_1, bpf.MapGeo6_1}
	}
	for _, name := range old {
		var k, v []byte
		if d.pinned(name).Iterate().Next(&k, &v) {
			t.Errorf("%s, the set no longer live, still holds entries", name)
		}
	}

	d.setGeo(openGeoDB(t, mmdbtest.Flat, moved), nil)
	if d.config(bpf.ConfigHaveGeo) != 0 {
		t.Error("no policy left geo on")
	}
	d.expect("no policy", syn(addr(srcNZ), 587), xdpPass, maps.Counters{Passed: 1, SynAuth: 1})
}

func TestExplainGeo(t *testing.T) {
	d := loadDatapath(t, 1024)
	d.setGeo(openGeoDB(t, mmdbtest.Flat, geoNets), map[maps.Class]geo.Policy{maps.ClassAuth: {Allow: []string{"NZ"}}})
	for _, tc := range []struct {
		src     string
		port    uint16
		action  string
		rule    string
		country string
	}{
		{srcIR, 587, "drop", "geo", maps.CountryOther},
		{srcIR, 25, "pass", "pass", maps.CountryOther},
		{srcNZ, 587, "pass", "pass", "NZ"},
		{srcNo6, 587, "pass", "pass", maps.CountryUnknown},
	} {
		before := d.counters()
		e := d.explain(addr(tc.src), tc.port)
		if e.Action != tc.action || e.Rule != tc.rule || !e.Geo || e.GeoCountry != tc.country {
			t.Errorf("explain %s port %d = %s by %s, geo %v %q; want %s by %s in %q", tc.src, tc.port, e.Action, e.Rule, e.Geo, e.GeoCountry, tc.action, tc.rule, tc.country)
		}
		if after := d.counters(); after != before {
			t.Errorf("explain moved counters: %+v", sub(after, before))
		}
	}
}

// IPv6 geo prefixes longer than /64 decide inside their /64, and the
// country around them stands outside them. A database whose /48 holds a /80
// of another country is split into disjoint pieces, some longer than /64.
func TestGeoIPv6PrefixesLongerThan64(t *testing.T) {
	db := openGeoDB(t, mmdbtest.MaxMind, []mmdbtest.Network{
		mmdbtest.N("fd00:30::/48", "IR"),
		mmdbtest.N("fd00:30::1:0:0:0/80", "NZ"),
		mmdbtest.N("fd00:31::1:0:0:0/80", "IR"), // alone in its /64
	})
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	d.setGeo(db, map[maps.Class]geo.Policy{maps.ClassAuth: {Deny: []string{"IR"}}})
	for _, tt := range []struct {
		src  string
		drop bool
	}{
		{"fd00:30::1:0:0:5", false}, // in the NZ /80
		{"fd00:30::5", true},        // the same /64, IR around the /80
		{"fd00:30::2:0:0:5", true},  // the same /64, IR after the /80
		{"fd00:30:0:1::5", true},    // another /64 of the IR /48
		{"fd00:31::1:0:0:5", true},  // the lone IR /80
		{"fd00:31::5", false},       // its /64 outside it: no country
		{"fd00:31:0:1::5", false},   // nothing there
	} {
		if tt.drop {
			d.expect(tt.src, syn(addr(tt.src), 587), xdpDrop, maps.Counters{DroppedGeo: 1, SynAuth: 0})
		} else {
			d.expect(tt.src, syn(addr(tt.src), 587), xdpPass, maps.Counters{Passed: 1, SynAuth: 1})
		}
	}

	// Overlapping prefixes (no database writes them, a table may): the
	// longest match decides.
	err := d.Maps.SetGeo(maps.GeoTable{Classes: maps.GeoAuth, Countries: map[string]maps.GeoCountry{
		"IR": {Prefixes: []netip.Prefix{netip.MustParsePrefix("fd00:32::/64")}, Drop: maps.GeoAuth},
		"NZ": {Prefixes: []netip.Prefix{netip.MustParsePrefix("fd00:32::1:0:0:0/80")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	d.expect("inside the /80", syn(addr("fd00:32::1:0:0:5"), 587), xdpPass, maps.Counters{Passed: 1, SynAuth: 1})
	d.expect("the /64 around it", syn(addr("fd00:32::5"), 587), xdpDrop, maps.Counters{DroppedGeo: 1})
	st, err := d.Maps.GeoStatus()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Countries {
		if c.Country != "IR" && c.Country != "NZ" && c.IPv6 > 0 {
			t.Errorf("geo status lists %+v, a country the table does not hold", c)
		}
	}
}
