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
