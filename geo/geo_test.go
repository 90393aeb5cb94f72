package geo_test

import (
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/geo"
	"github.com/portcullis-mail/portcullis/internal/mmdbtest"
)

// testNets places the test ranges: NZ and AU share 198.18.0.0/16 in
// adjacent pieces, IR holds 198.19.0.0/17, KP two adjacent /64s of IPv6,
// and 198.19.128.0/17 is in no country.
var testNets = []mmdbtest.Network{
	mmdbtest.N("198.18.0.0/17", "NZ"),
	mmdbtest.N("198.18.128.0/18", "NZ"), // adjacent to the /17: merges into 198.18.0.0/17 + /18
	mmdbtest.N("198.18.192.0/18", "AU"),
	mmdbtest.N("198.19.0.0/18", "IR"),
	mmdbtest.N("198.19.64.0/18", "IR"), // merges with the /18 before into a /17
	mmdbtest.N("fd00:1::/64", "KP"),
	mmdbtest.N("fd00:1:0:1::/64", "KP"), // merges into fd00:1::/63
	mmdbtest.N("fd00:2::/48", "NZ"),
}

func TestShapes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape mmdbtest.Shape
		want  geo.Shape
		typ   string
	}{
		{"maxmind country", mmdbtest.MaxMind, geo.ShapeMaxMind, "GeoLite2-Country"},
		{"registered country only", mmdbtest.MaxMindRegisteredOnly, geo.ShapeMaxMind, "GeoLite2-Country"},
		{"ip-location-db flat", mmdbtest.Flat, geo.ShapeFlat, "geo-whois-asn-country"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "db.mmdb")
			mmdbtest.Write(t, path, tc.shape, testNets...)
			db, err := geo.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			info := db.Info()
			if info.Shape != tc.want || info.Type != tc.typ || info.Path != path {
				t.Errorf("info = %+v, want shape %s and type %s", info, tc.want, tc.typ)
			}
			if info.Built.Year() != 2025 {
				t.Errorf("build time %s, want the database's", info.Built)
			}
			for addr, want := range map[string]string{
				"198.18.1.1":          "NZ",
				"198.18.200.1":        "AU",
				"198.19.100.1":        "IR",
				"198.19.200.1":        "",
				"::ffff:198.19.100.1": "IR",
				"fd00:1:0:1::5":       "KP",
				"fd00:3::1":           "",
			} {
				got, err := db.Country(netip.MustParseAddr(addr))
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("Country(%s) = %q, want %q", addr, got, want)
				}
			}
		})
	}
}

func TestNoCountryDataNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "asn.mmdb")
	mmdbtest.Write(t, path, mmdbtest.ASN, mmdbtest.Network{Prefix: "198.18.0.0/16"})
	_, err := geo.Open(path)
	if !errors.Is(err, geo.ErrNoCountry) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v, want ErrNoCountry naming %s", err, path)
	}
}

func TestMissingFileNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.mmdb")
	_, err := geo.Open(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v, want an error naming %s", err, path)
	}
}

func TestPrefixesMergeAdjacent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.mmdb")
	mmdbtest.Write(t, path, mmdbtest.Flat, testNets...)
	db, err := geo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	named := func(c string) bool { return c == "NZ" || c == "KP" || c == "IR" }

	for _, tc := range []struct {
		name  string
		other bool
		want  map[string][]string
	}{
		{"named only", false, map[string][]string{
			"NZ": {"198.18.0.0/17", "198.18.128.0/18", "fd00:2::/48"},
			"IR": {"198.19.0.0/17"},
			"KP": {"fd00:1::/63"},
		}},
		{"with the rest of the coverage", true, map[string][]string{
			"NZ":      {"198.18.0.0/17", "198.18.128.0/18", "fd00:2::/48"},
			"IR":      {"198.19.0.0/17"},
			"KP":      {"fd00:1::/63"},
			geo.Other: {"198.18.192.0/18"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Prefixes(named, tc.other)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("labels %v, want %v", keys(got), keys(tc.want))
			}
			for label, want := range tc.want {
				var have []string
				for _, p := range got[label] {
					have = append(have, p.String())
				}
				if !slices.Equal(have, want) {
					t.Errorf("%s: %v, want %v", label, have, want)
				}
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestValidCode(t *testing.T) {
	for c, want := range map[string]bool{"NZ": true, "nz": false, "N": false, "NZL": false, "N1": false, "": false} {
		if got := geo.ValidCode(c); got != want {
			t.Errorf("ValidCode(%q) = %v, want %v", c, got, want)
		}
	}
}
