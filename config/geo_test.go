package config

import (
	"slices"
	"strings"
	"testing"
)

func TestGeoSection(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // every error, in order; none: the file is good
	}{
		{
			name: "the issue's example",
			file: "[geo]\ndatabase = \"/var/lib/GeoIP/GeoLite2-Country.mmdb\"\n[geo.policy.auth]\ndeny = [\"IR\", \"KP\"]\nunknown = \"pass\"\n",
		},
		{
			name: "an allow list",
			file: "[geo]\ndatabase = \"/db.mmdb\"\n[geo.policy.auth]\nallow = [\"NZ\", \"AU\"]\nunknown = \"drop\"\n",
		},
		{
			name: "both lists, a bad code and a bad unknown",
			file: "[geo]\ndatabase = \"/db.mmdb\"\n[geo.policy.auth]\ndeny = [\"IR\"]\nallow = [\"nz\", \"AUS\"]\nunknown = \"reject\"\n",
			want: []string{
				`portcullis.toml:5: geo.policy.auth.allow: a class has either a deny list or an allow list, not both`,
				`portcullis.toml:5: geo.policy.auth.allow[0]: "nz" is not a two-letter country code such as "NZ" (ISO 3166, upper case)`,
				`portcullis.toml:5: geo.policy.auth.allow[1]: "AUS" is not a two-letter country code such as "NZ" (ISO 3166, upper case)`,
				`portcullis.toml:6: geo.policy.auth.unknown: invalid value "reject" (want "pass", "drop")`,
			},
		},
		{
			name: "a policy without a database",
			file: "[geo]\n[geo.policy.all]\ndeny = [\"KP\"]\n",
			want: []string{`portcullis.toml:2: geo.policy.all: a geo policy needs [geo] database (a .mmdb file such as /var/lib/GeoIP/GeoLite2-Country.mmdb)`},
		},
		{
			name: "a relative database path",
			file: "[geo]\ndatabase = \"GeoLite2-Country.mmdb\"\n",
			want: []string{`portcullis.toml:2: geo.database: want an absolute path, got "GeoLite2-Country.mmdb"`},
		},
		{
			name: "an unknown class",
			file: "[geo.policy.smtp]\ndeny = [\"KP\"]\n",
			want: []string{`portcullis.toml:1: geo.policy.smtp: unknown key`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.file), "portcullis.toml")
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestGeoPolicyActive(t *testing.T) {
	for _, tc := range []struct {
		p    GeoPolicy
		want bool
	}{
		{GeoPolicy{Deny: []string{}, Allow: []string{}, Unknown: "pass"}, false},
		{GeoPolicy{Deny: []string{"KP"}, Unknown: "pass"}, true},
		{GeoPolicy{Allow: []string{"NZ"}, Unknown: "pass"}, true},
		{GeoPolicy{Unknown: "drop"}, true},
	} {
		if got := tc.p.Active(); got != tc.want {
			t.Errorf("%+v.Active() = %v, want %v", tc.p, got, tc.want)
		}
	}
}
