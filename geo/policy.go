package geo

import (
	"fmt"
	"slices"

	"github.com/portcullis-mail/portcullis/maps"
)

// Policy is one port class's country policy: a deny-list or an allow-list
// (Allow non-empty wins the reading; config refuses both), and what to do
// with addresses the database does not place.
type Policy struct {
	Deny        []string
	Allow       []string
	UnknownDrop bool
}

// Active reports whether the policy drops anything.
func (p Policy) Active() bool { return len(p.Deny) > 0 || len(p.Allow) > 0 || p.UnknownDrop }

// Drops reports whether the policy drops a source the database places in
// country ("" when it does not place it).
func (p Policy) Drops(country string) bool {
	switch {
	case country == "":
		return p.UnknownDrop
	case len(p.Allow) > 0:
		return !slices.Contains(p.Allow, country)
	}
	return slices.Contains(p.Deny, country)
}

// dropsOther is what the policy does with a placed country it does not name.
func (p Policy) dropsOther() bool { return len(p.Allow) > 0 }

// String is the policy as a user wrote it.
func (p Policy) String() string {
	if !p.Active() {
		return "none"
	}
	s := ""
	switch {
	case len(p.Allow) > 0:
		s = fmt.Sprintf("allow %v", p.Allow)
	case len(p.Deny) > 0:
		s = fmt.Sprintf("deny %v", p.Deny)
	}
	unknown := "pass"
	if p.UnknownDrop {
		unknown = "drop"
	}
	if s != "" {
		s += ", "
	}
	return s + "unknown " + unknown
}

// Table builds what the kernel needs to enforce policies (by class;
// maps.ClassNone is the `all` policy) with this database.
//
// The tries hold the prefixes of every country a policy names, each with the
// classes that drop it. An address in no entry takes the unknown mask. That
// is only right for the countries no policy names when every class treats
// them as it treats unknown addresses; where one does not (an allow-list
// drops other countries, while unknown defaults to pass; a deny-list with
// unknown = drop passes them), the rest of the database's coverage goes in as
// well, labelled other, merged into large ranges. It goes in with every
// allow-list, so that drops of placed sources count as "other", not
// "unknown"; they are not counted per country, since the tries do not hold
// the countries no policy names.
func (d *DB) Table(policies map[maps.Class]Policy) (maps.GeoTable, error) {
	t := maps.GeoTable{Countries: map[string]maps.GeoCountry{}}
	var other maps.GeoMask
	named := map[string]bool{}
	for c, p := range policies {
		if !p.Active() {
			continue
		}
		bit := maps.GeoClassMask(c)
		t.Classes |= bit
		if p.UnknownDrop {
			t.Unknown |= bit
		}
		if p.dropsOther() {
			other |= bit
		}
		for _, code := range append(slices.Clone(p.Deny), p.Allow...) {
			if !ValidCode(code) {
				return maps.GeoTable{}, fmt.Errorf("%s policy: %q is not a two-letter country code", c, code)
			}
			named[code] = true
		}
	}
	if t.Classes == 0 {
		return t, nil
	}
	// With an allow-list, other countries' drops are also counted as
	// "other" rather than "unknown", so the coverage goes in then as well.
	needOther := other != t.Unknown || other != 0
	sets, err := d.Prefixes(func(code string) bool { return named[code] }, needOther)
	if err != nil {
		return maps.GeoTable{}, err
	}
	for code := range named {
		var drop maps.GeoMask
		for c, p := range policies {
			if p.Active() && p.Drops(code) {
				drop |= maps.GeoClassMask(c)
			}
		}
		t.Countries[code] = maps.GeoCountry{Prefixes: sets[code], Drop: drop}
	}
	if needOther {
		t.Countries[maps.CountryOther] = maps.GeoCountry{Prefixes: sets[Other], Drop: other}
	}
	return t, nil
}
