package geo_test

import (
	"path/filepath"
	"testing"

	"github.com/portcullis-mail/portcullis/geo"
	"github.com/portcullis-mail/portcullis/internal/mmdbtest"
	"github.com/portcullis-mail/portcullis/maps"
)

func TestPolicyDrops(t *testing.T) {
	deny := geo.Policy{Deny: []string{"IR", "KP"}}
	allow := geo.Policy{Allow: []string{"NZ", "AU"}, UnknownDrop: true}
	for _, tc := range []struct {
		p       geo.Policy
		country string
		want    bool
	}{
		{deny, "IR", true}, {deny, "NZ", false}, {deny, "", false},
		{allow, "NZ", false}, {allow, "IR", true}, {allow, "", true},
		{geo.Policy{}, "IR", false},
	} {
		if got := tc.p.Drops(tc.country); got != tc.want {
			t.Errorf("%s drops %q = %v, want %v", tc.p, tc.country, got, tc.want)
		}
	}
	if s := allow.String(); s != "allow [NZ AU], unknown drop" {
		t.Errorf("String() = %q", s)
	}
}

// TestTableHoldsWhatPoliciesNeed checks which labels go to the kernel: the
// named countries always, the rest of the coverage only when other
// countries and unknown addresses must be told apart (or an allow-list
// counts its drops as other).
func TestTableHoldsWhatPoliciesNeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.mmdb")
	mmdbtest.Write(t, path, mmdbtest.MaxMind, testNets...)
	db, err := geo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, tc := range []struct {
		name     string
		policies map[maps.Class]geo.Policy
		want     map[string]maps.GeoMask // label -> drop mask
		unknown  maps.GeoMask
		classes  maps.GeoMask
	}{
		{"no policy", map[maps.Class]geo.Policy{maps.ClassAuth: {}}, map[string]maps.GeoMask{}, 0, 0},
		{"deny-list", map[maps.Class]geo.Policy{maps.ClassAuth: {Deny: []string{"IR"}}},
			map[string]maps.GeoMask{"IR": maps.GeoAuth}, 0, maps.GeoAuth},
		{"deny-list, unknown drop", map[maps.Class]geo.Policy{maps.ClassAuth: {Deny: []string{"IR"}, UnknownDrop: true}},
			map[string]maps.GeoMask{"IR": maps.GeoAuth, maps.CountryOther: 0}, maps.GeoAuth, maps.GeoAuth},
		{"allow-list", map[maps.Class]geo.Policy{maps.ClassAuth: {Allow: []string{"NZ"}}},
			map[string]maps.GeoMask{"NZ": 0, maps.CountryOther: maps.GeoAuth}, 0, maps.GeoAuth},
		{"all and mx", map[maps.Class]geo.Policy{maps.ClassNone: {Deny: []string{"KP"}}, maps.ClassMX: {Deny: []string{"KP", "IR"}}},
			map[string]maps.GeoMask{"KP": maps.GeoAll | maps.GeoMX, "IR": maps.GeoMX}, 0, maps.GeoAll | maps.GeoMX},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table, err := db.Table(tc.policies)
			if err != nil {
				t.Fatal(err)
			}
			if table.Unknown != tc.unknown || table.Classes != tc.classes {
				t.Errorf("unknown %s classes %s, want %s and %s", table.Unknown, table.Classes, tc.unknown, tc.classes)
			}
			if len(table.Countries) != len(tc.want) {
				t.Errorf("labels %v, want %v", keys(table.Countries), tc.want)
			}
			for label, drop := range tc.want {
				c, ok := table.Countries[label]
				if !ok || c.Drop != drop || len(c.Prefixes) == 0 {
					t.Errorf("%s: %+v (present %v), want drop %s and prefixes", label, c, ok, drop)
				}
			}
		})
	}
}
