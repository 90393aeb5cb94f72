package alert

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// Attack alerts name each top source's country when the geo database placed
// it (the events carry it), and say "country unknown" otherwise.
func TestAttackNamesSourceCountries(t *testing.T) {
	now := time.Now()
	ev := func(addr, country string) logs.Event {
		return logs.Event{Time: now, Kind: logs.KindAuthFailure, Addr: netip.MustParseAddr(addr), Attempts: 1, Country: country, Service: "imap"}
	}
	events := []logs.Event{ev("198.18.1.1", "IR"), ev("198.18.1.1", "IR"), ev("198.18.2.2", ""), ev("fd00:9::1", "NZ"), ev("fd00:9::2", "NZ")}
	attempts, sources := CountSources(events)
	if attempts != 5 || len(sources) != 3 {
		t.Fatalf("attempts %d, sources %+v", attempts, sources)
	}
	got := map[string]string{}
	for _, s := range sources {
		got[s.Prefix.String()] = s.Country
	}
	want := map[string]string{"198.18.1.1/32": "IR", "198.18.2.2/32": "", "fd00:9::/64": "NZ"}
	for p, c := range want {
		if got[p] != c {
			t.Errorf("%s: country %q, want %q", p, got[p], c)
		}
	}
	msg := Attack{What: "failed-login spike", Attempts: attempts, Sources: len(sources), Top: sources}.Message()
	for _, w := range []string{"IR", "NZ", "country unknown"} {
		if !strings.Contains(msg.Body, w) {
			t.Errorf("message lacks %q:\n%s", w, msg.Body)
		}
	}
}

// A flood spread over many sources of one /24, each under the per-source
// threshold, is reported for the prefix; a source over it alone is
// reported for itself and not again for its prefix.
func TestSYNSpikeFromAPrefix(t *testing.T) {
	th := Thresholds{SourceSYNsPerMinute: 1000}
	var rates []SYNRate
	for i := 1; i <= 10; i++ {
		rates = append(rates, SYNRate{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 7, byte(i)}), 32), PerMinute: 300})
	}
	rates = append(rates, SYNRate{Prefix: netip.MustParsePrefix("198.18.8.1/32"), PerMinute: 5000},
		SYNRate{Prefix: netip.MustParsePrefix("198.18.8.2/32"), PerMinute: 10})
	keys := map[string]bool{}
	for _, a := range SYNSpike(0, rates, th) {
		keys[a.Key] = true
	}
	for _, want := range []string{"attack:syn:prefix:198.18.7.0/24", "attack:syn:198.18.8.1/32"} {
		if !keys[want] {
			t.Errorf("no %s in %v", want, keys)
		}
	}
	if keys["attack:syn:prefix:198.18.8.0/24"] {
		t.Errorf("a prefix reported for one loud source: %v", keys)
	}
}

// Many distinct failing sources from one country are reported once the geo
// database has placed them; events without a country never are.
func TestCountrySquads(t *testing.T) {
	th := Thresholds{CountrySources: 5}
	var events []logs.Event
	for i := 1; i <= 6; i++ {
		events = append(events, logs.Event{Kind: logs.KindAuthFailure, Attempts: 2, Country: "KP",
			Addr: netip.AddrFrom4([4]byte{198, 18, byte(i), 1})})
	}
	for i := 1; i <= 9; i++ {
		events = append(events, logs.Event{Kind: logs.KindAuthFailure, Attempts: 1, Addr: netip.AddrFrom4([4]byte{198, 19, byte(i), 1})})
	}
	got := CountrySquads(events, th)
	if len(got) != 1 || got[0].Key != "attack:country:KP" || got[0].Sources != 6 || got[0].Attempts != 12 {
		t.Fatalf("country squads %+v, want KP with 6 sources and 12 attempts", got)
	}
	if th.CountrySources = 7; len(CountrySquads(events, th)) != 0 {
		t.Errorf("reported under the threshold")
	}
}
