package bpf_test

import (
	"net/netip"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/geo"
	"github.com/portcullis-mail/portcullis/maps"
)

// benchGeoDB is the full real database `make bench-data` fetches.
const benchGeoDB = "../bench-data/geo-whois-asn-country.mmdb"

// topCountries returns the n countries with the most (merged) prefixes.
func topCountries(b *testing.B, db *geo.DB, n int) ([]string, map[string][]netip.Prefix) {
	all, err := db.Prefixes(func(string) bool { return true }, false)
	if err != nil {
		b.Fatal(err)
	}
	codes := make([]string, 0, len(all))
	for c := range all {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool { return len(all[codes[i]]) > len(all[codes[j]]) })
	return codes[:n], all
}

// firstOf returns the first address of the first prefix of code in the family.
func firstOf(b *testing.B, all map[string][]netip.Prefix, code string, v6 bool) netip.Addr {
	for _, p := range all[code] {
		if p.Addr().Is6() == v6 {
			return p.Addr().Next()
		}
	}
	b.Fatalf("%s has no prefix of that family", code)
	return netip.Addr{}
}

// BenchmarkGeo loads a deny-list of the ten countries with the most prefixes
// from a full real database, reports the load's time and the tries' kernel
// memory, and measures SYNs through the geo step against the floor.
func BenchmarkGeo(b *testing.B) {
	if _, err := os.Stat(benchGeoDB); err != nil {
		b.Skipf("no real geo database (%v): run `make bench-data` first", err)
	}
	d := loadDatapath(b, 0)
	floor := floorProgram(b)

	start := time.Now()
	db, err := geo.Open(benchGeoDB)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	opened := time.Since(start)
	top, all := topCountries(b, db, 10)
	merged := 0
	for _, ps := range all {
		merged += len(ps)
	}
	b.Logf("database: %d countries, %d merged prefixes; top ten %v", len(all), merged, top)

	// What the daemon does on a load: read, build, fill the unused set,
	// switch, empty the old set. The switch is seen by polling the config
	// word the datapath reads.
	cfgMap := d.pinned(bpf.MapConfig)
	word := func() uint64 {
		var w uint64
		if err := cfgMap.Lookup(bpf.ConfigHaveGeo, &w); err != nil {
			b.Error(err)
		}
		return w
	}
	deny := map[maps.Class]geo.Policy{maps.ClassAuth: {Deny: top}}
	load := func(p map[maps.Class]geo.Policy) (built, switched, total time.Duration, n int) {
		before := word()
		start := time.Now()
		t, err := db.Table(p)
		if err != nil {
			b.Fatal(err)
		}
		built = time.Since(start)
		seen := make(chan time.Duration, 1)
		stop := make(chan struct{})
		go func() {
			for {
				if word() != before {
					seen <- time.Since(start)
					return
				}
				select {
				case <-stop:
					// Switched within the last poll interval (the old
					// set was empty) or not at all.
					if word() != before {
						seen <- time.Since(start)
					} else {
						seen <- 0
					}
					return
				case <-time.After(200 * time.Microsecond):
				}
			}
		}()
		if err := d.Maps.SetGeo(t); err != nil {
			b.Fatal(err)
		}
		total = time.Since(start)
		close(stop)
		switched = <-seen
		for _, c := range t.Countries {
			n += len(c.Prefixes)
		}
		return built, switched, total, n
	}
	built, switched, total, n := load(deny)
	reportOnce(b, "geo-load/open-and-detect", opened)
	reportOnce(b, "geo-load/deny-top10-read-and-merge", built)
	reportOnce(b, "geo-load/deny-top10-enforced", opened+switched)
	reportOnce(b, "geo-load/deny-top10-total", opened+total)
	st, err := d.Maps.GeoStatus()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("deny-list of the top ten: %d prefixes, %d bytes of kernel memory (memlock of the four tries)", n, st.Bytes)
	reportBytes(b, "geo-mem/deny-top10", n, st.Bytes)
	// A reload fills the other set, switches, and empties the old one.
	_, switched, total, _ = load(deny)
	reportOnce(b, "geo-load/reload-deny-top10-enforced", switched)
	reportOnce(b, "geo-load/reload-deny-top10-total", total)

	denied4, denied6 := firstOf(b, all, top[0], false), firstOf(b, all, top[0], true)
	other := "NZ"
	other4, other6 := firstOf(b, all, other, false), firstOf(b, all, other, true)
	d.rateLimit(maps.ClassAuth, 4_000_000_000, 1_000_000) // on, never reached
	d.rateLimit(maps.ClassMX, 4_000_000_000, 1_000_000)
	measure(b, d, floor, benchCase{"geo-deny-top10/syn-587-denied-drop", syn(denied4, 587), xdpDrop})
	measure(b, d, floor, benchCase{"geo-deny-top10/syn-587-denied-drop-ipv6", syn(denied6, 587), xdpDrop})
	measure(b, d, floor, benchCase{"geo-deny-top10/syn-587-other-pass", syn(other4, 587), xdpPass})
	measure(b, d, floor, benchCase{"geo-deny-top10/syn-587-other-pass-ipv6", syn(other6, 587), xdpPass})
	measure(b, d, floor, benchCase{"geo-deny-top10/syn-25-denied-country-pass", syn(denied4, 25), xdpPass})
	measure(b, d, floor, benchCase{"geo-deny-top10/ack-587-denied-country", ack(denied4.String(), 587), xdpPass})

	// An allow-list holds the rest of the coverage as "other".
	allow := map[maps.Class]geo.Policy{maps.ClassAuth: {Allow: []string{"NZ", "AU"}}}
	_, switched, total, n = load(allow)
	reportOnce(b, "geo-load/allow-NZ-AU-enforced", switched)
	reportOnce(b, "geo-load/allow-NZ-AU-total", total)
	st, err = d.Maps.GeoStatus()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("allow-list NZ, AU: %d prefixes (with the other countries' coverage), %d bytes of kernel memory", n, st.Bytes)
	reportBytes(b, "geo-mem/allow-NZ-AU", n, st.Bytes)
	measure(b, d, floor, benchCase{"geo-allow-NZ-AU/syn-587-other-drop", syn(denied4, 587), xdpDrop})
	measure(b, d, floor, benchCase{"geo-allow-NZ-AU/syn-587-allowed-pass", syn(other4, 587), xdpPass})
	measure(b, d, floor, benchCase{"geo-allow-NZ-AU/syn-587-allowed-pass-ipv6", syn(other6, 587), xdpPass})
}

// reportBytes reports a table's size as a benchmark line of its own.
func reportBytes(b *testing.B, name string, prefixes int, bytes uint64) {
	b.Run(name, func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(prefixes), "prefixes")
		b.ReportMetric(float64(bytes)/(1<<20), "MiB")
	})
}
