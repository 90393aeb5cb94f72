// Package mmdbtest writes small MaxMind-format databases for tests, in the
// shapes package geo reads, with the reserved test ranges (198.18.0.0/15,
// fd00::/8) allowed.
package mmdbtest

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Shape is the record layout to write.
type Shape int

// The shapes.
const (
	// MaxMind writes GeoLite2-Country records: country.iso_code, and
	// registered_country.iso_code.
	MaxMind Shape = iota
	// MaxMindRegisteredOnly writes only registered_country.iso_code, as
	// MaxMind does for networks it cannot locate more closely.
	MaxMindRegisteredOnly
	// Flat writes the ip-location-db shape: country_code.
	Flat
	// ASN writes records without country data.
	ASN
)

// Network is a prefix and the country a database places it in.
type Network struct {
	Prefix  string
	Country string
}

// N is a Network of prefix in country.
func N(prefix, country string) Network { return Network{Prefix: prefix, Country: country} }

// Write builds a database of nets in the given shape at path; the file is
// written under another name and renamed into place, as geoipupdate does.
func Write(tb testing.TB, path string, shape Shape, nets ...Network) {
	tb.Helper()
	dbType := map[Shape]string{MaxMind: "GeoLite2-Country", MaxMindRegisteredOnly: "GeoLite2-Country", Flat: "geo-whois-asn-country", ASN: "GeoLite2-ASN"}[shape]
	w, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		IncludeReservedNetworks: true,
		RecordSize:              24,
		BuildEpoch:              1764806400, // 2025-12-04
	})
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range nets {
		p := netip.MustParsePrefix(n.Prefix)
		ipn := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		if err := w.Insert(ipn, record(shape, n.Country)); err != nil {
			tb.Fatalf("insert %s: %v", n.Prefix, err)
		}
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		f.Close()
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

func record(shape Shape, cc string) mmdbtype.Map {
	switch shape {
	case MaxMind:
		return mmdbtype.Map{
			"country":            mmdbtype.Map{"iso_code": mmdbtype.String(cc), "names": mmdbtype.Map{"en": mmdbtype.String("Country " + cc)}},
			"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String(cc)},
			"continent":          mmdbtype.Map{"code": mmdbtype.String("XX")},
		}
	case MaxMindRegisteredOnly:
		return mmdbtype.Map{"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String(cc)}}
	case Flat:
		return mmdbtype.Map{"country_code": mmdbtype.String(cc)}
	}
	return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(64500), "autonomous_system_organization": mmdbtype.String("test")}
}
