// Package geo reads MaxMind-format (.mmdb) databases into per-country sets
// of prefixes, the form the datapath's geo tries hold.
//
// Two shapes of record are understood, and told apart by looking at the
// records: MaxMind's GeoLite2/GeoIP2 Country and City and DB-IP's lite
// databases (country.iso_code, falling back to registered_country.iso_code
// for networks without a located country), and the flat country_code of the
// ip-location-db databases.
package geo

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Shape is how a database's records give the country.
type Shape string

// The shapes Open recognises.
const (
	// ShapeMaxMind is country.iso_code, else registered_country.iso_code.
	ShapeMaxMind Shape = "maxmind"
	// ShapeFlat is a top-level country_code.
	ShapeFlat Shape = "country_code"
)

// ErrNoCountry means a database has no country data in either shape.
var ErrNoCountry = errors.New("no country data (looked for country.iso_code, registered_country.iso_code and country_code)")

// Info describes an open database.
type Info struct {
	Path  string    `json:"path"`
	Type  string    `json:"type"` // the database_type of its metadata
	Built time.Time `json:"built"`
	Shape Shape     `json:"shape"`
}

// DB is an open database, safe for concurrent use. It reads the file
// through a memory map, so a database replaced by rename keeps serving the
// old content until closed.
type DB struct {
	info  Info
	r     *maxminddb.Reader
	mu    sync.Mutex
	cache map[uintptr]string // country by record offset: records are shared by many networks
}

// record holds the fields of both shapes; the decoder skips the rest.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	CountryCode string `maxminddb:"country_code"`
}

// detectRecords is how many distinct records Open looks at to tell the
// shape; any country field in them decides it.
const detectRecords = 10000

// Open opens a database and detects its shape. A file without country data
// is ErrNoCountry, with the file's name.
func Open(path string) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geo database %s: %w", path, err)
	}
	d := &DB{
		r:     r,
		cache: map[uintptr]string{},
		info: Info{
			Path:  path,
			Type:  r.Metadata.DatabaseType,
			Built: r.Metadata.BuildTime().UTC(),
		},
	}
	shape, err := d.detect()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("geo database %s: %w", path, err)
	}
	d.info.Shape = shape
	return d, nil
}

func (d *DB) detect() (Shape, error) {
	seen := map[uintptr]bool{}
	for res := range d.r.Networks() {
		if err := res.Err(); err != nil {
			return "", fmt.Errorf("read networks: %w", err)
		}
		if seen[res.Offset()] {
			continue
		}
		seen[res.Offset()] = true
		var rec record
		if err := res.Decode(&rec); err != nil {
			continue // a record of another type (a string, say) is no country
		}
		if rec.Country.ISOCode != "" || rec.RegisteredCountry.ISOCode != "" {
			return ShapeMaxMind, nil
		}
		if rec.CountryCode != "" {
			return ShapeFlat, nil
		}
		if len(seen) >= detectRecords {
			break
		}
	}
	return "", ErrNoCountry
}

// Info describes the database.
func (d *DB) Info() Info { return d.info }

// Close releases the file.
func (d *DB) Close() error { return d.r.Close() }

// Country returns the ISO 3166 code the database places a at, or "" when it
// does not place it.
func (d *DB) Country(a netip.Addr) (string, error) {
	res := d.r.Lookup(a.Unmap())
	if err := res.Err(); err != nil {
		return "", fmt.Errorf("look up %s: %w", a, err)
	}
	if !res.Found() {
		return "", nil
	}
	return d.country(res)
}

// country reads a record's country, once per record.
func (d *DB) country(res maxminddb.Result) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.cache[res.Offset()]; ok {
		return c, nil
	}
	var c string
	switch d.info.Shape {
	case ShapeFlat:
		if err := res.DecodePath(&c, "country_code"); err != nil {
			return "", fmt.Errorf("read record of %s: %w", res.Prefix(), err)
		}
	default:
		var rec record
		if err := res.Decode(&rec); err != nil {
			return "", fmt.Errorf("read record of %s: %w", res.Prefix(), err)
		}
		c = rec.Country.ISOCode
		if c == "" {
			c = rec.RegisteredCountry.ISOCode
		}
	}
	c = normalizeCode(c)
	d.cache[res.Offset()] = c
	return c, nil
}

// normalizeCode upper-cases a two-letter code; anything else is no country.
func normalizeCode(c string) string {
	if len(c) != 2 {
		return ""
	}
	b := []byte(c)
	for i, ch := range b {
		if ch >= 'a' && ch <= 'z' {
			ch -= 'a' - 'A'
		}
		if ch < 'A' || ch > 'Z' {
			return ""
		}
		b[i] = ch
	}
	return string(b)
}

// ValidCode reports whether c is two upper-case letters, the form of an ISO
// 3166 alpha-2 code.
func ValidCode(c string) bool { return len(c) == 2 && normalizeCode(c) == c }
