package verdict

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// t0 is an arbitrary start for scenarios; the engine reads no clock.
var t0 = time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)

func newEngine(t testing.TB, change func(*Config)) *Engine {
	t.Helper()
	cfg := DefaultConfig()
	if change != nil {
		change(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func fail(addr string, at time.Time, service string) logs.Event {
	return logs.Event{Time: at, Service: service, Kind: logs.KindAuthFailure, Addr: netip.MustParseAddr(addr), Attempts: 1, Rule: "test"}
}

// observe feeds ev at its own time.
func observe(e *Engine, ev logs.Event) []Decision { return e.Observe(ev, ev.Time) }

// banOnce drives one fresh source through Threshold failures starting at
// at, one a second, and returns the ban.
func banOnce(t *testing.T, e *Engine, addr string, at time.Time) Decision {
	t.Helper()
	var got []Decision
	for i := range e.cfg.Threshold {
		got = observe(e, fail(addr, at.Add(time.Duration(i)*time.Second), "imap"))
		if i < e.cfg.Threshold-1 && len(got) > 0 {
			t.Fatalf("%s banned after %d failures: %+v", addr, i+1, got)
		}
	}
	if len(got) == 0 {
		t.Fatalf("%s not banned after %d failures", addr, e.cfg.Threshold)
	}
	return got[0]
}

func TestSeedIncidentStopsEachSourceAtItsFifthAttempt(t *testing.T) {
	// The incident: two machines, 3 logins a minute each, 206 attempts in
	// 39 minutes. Each must be banned by its 5th failure, once.
	e := newEngine(t, nil)
	sources := []string{"198.18.7.10", "198.18.9.20"}
	bannedAt := map[string]int{}
	attempts := map[string]int{}
	for i := range 39 * 3 {
		for j, src := range sources {
			at := t0.Add(time.Duration(i)*20*time.Second + time.Duration(j)*7*time.Second)
			attempts[src]++
			for _, d := range observe(e, fail(src, at, []string{"submission", "imap"}[i%2])) {
				if _, again := bannedAt[src]; again {
					t.Fatalf("%s banned twice: %+v", src, d)
				}
				bannedAt[src] = attempts[src]
				if d.Prefix != netip.MustParsePrefix(src+"/32") || d.Origin != OriginLog || d.Scope != ScopeAll {
					t.Errorf("ban = %+v; want %s/32, log, all", d, src)
				}
				if d.Duration() != time.Hour || !d.Start.Equal(at) || d.Evidence != 5 || d.Offence != 1 {
					t.Errorf("ban = %+v; want 1h from %s, evidence 5, offence 1", d, at)
				}
				if want := "5 auth failures in 1m20s (imap, submission)"; d.Reason != want {
					t.Errorf("reason = %q; want %q", d.Reason, want)
				}
			}
		}
	}
	for _, src := range sources {
		if bannedAt[src] != 5 {
			t.Errorf("%s banned at attempt %d; want 5", src, bannedAt[src])
		}
	}
	if s := e.Stats(); s.Decisions != 2 || s.Suppressed != 2*(117-5) {
		t.Errorf("stats = %+v; want 2 decisions and the %d later attempts suppressed", s, 2*(117-5))
	}
}

func TestWindowSlides(t *testing.T) {
	tests := []struct {
		name    string
		offsets []time.Duration // of each failure from t0
		banAt   int             // 1-based failure that bans; 0: none
	}{
		{"four then one more after the window", []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute, 10*time.Minute + time.Second}, 0},
		{"five spanning exactly the window", []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute, 10 * time.Minute}, 5},
		{"old failure slides out, later ones still count", []time.Duration{0, 9 * time.Minute, 9*time.Minute + 30*time.Second, 10 * time.Minute, 10*time.Minute + 30*time.Second, 11 * time.Minute}, 6},
		// Fixed 10-minute buckets would reset at 10m and let these through.
		{"burst across a bucket boundary", []time.Duration{9 * time.Minute, 9*time.Minute + 20*time.Second, 9*time.Minute + 40*time.Second, 10*time.Minute + 10*time.Second, 10*time.Minute + 30*time.Second}, 5},
		{"steady trickle just under the rate never bans", trickle(40, 2*time.Minute+31*time.Second), 0},
		{"steady trickle at the rate bans at the fifth", trickle(40, 2*time.Minute+30*time.Second), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, nil)
			got := 0
			for i, off := range tt.offsets {
				if ds := observe(e, fail("198.18.1.1", t0.Add(off), "smtp")); len(ds) > 0 && got == 0 {
					got = i + 1
				}
			}
			if got != tt.banAt {
				t.Errorf("banned at failure %d; want %d (0: never)", got, tt.banAt)
			}
		})
	}
}

func trickle(n int, every time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i) * every
	}
	return out
}

func TestFailuresAddUpAcrossServices(t *testing.T) {
	e := newEngine(t, nil)
	var got []Decision
	for i, svc := range []string{"smtp", "submission", "imap", "pop3", "sieve"} {
		if got = observe(e, fail("198.18.2.2", t0.Add(time.Duration(i)*time.Minute), svc)); i < 4 && got != nil {
			t.Fatalf("banned after %d failures", i+1)
		}
	}
	if len(got) != 1 {
		t.Fatalf("got %+v; want one ban", got)
	}
	if want := []string{"imap", "pop3", "sieve", "smtp", "submission"}; !slices.Equal(got[0].Services, want) {
		t.Errorf("services = %v; want %v", got[0].Services, want)
	}
	if want := "5 auth failures in 4m (imap, pop3, sieve, smtp, submission)"; got[0].Reason != want {
		t.Errorf("reason = %q; want %q", got[0].Reason, want)
	}
	// ssh is one more service like the others.
	e = newEngine(t, nil)
	for i := range 4 {
		observe(e, fail("198.18.2.3", t0.Add(time.Duration(i)*time.Second), "imap"))
	}
	if got := observe(e, fail("198.18.2.3", t0.Add(5*time.Second), "ssh")); len(got) != 1 {
		t.Errorf("4 imap failures and 1 ssh failure: %+v; want a ban", got)
	}
}

func TestEventKindsWeighAsDocumented(t *testing.T) {
	ev := func(kind logs.Kind, attempts int) logs.Event {
		return logs.Event{Service: "smtp", Kind: kind, Addr: netip.MustParseAddr("198.18.3.3"), Attempts: attempts}
	}
	tests := []struct {
		name     string
		change   func(*Config)
		events   []logs.Event
		banAt    int // 1-based event that bans; 0: none
		evidence int
		reason   string
	}{
		{name: "relay denials do not count", events: repeat(ev(logs.KindRelayDenied, 1), 10)},
		{name: "DNSBL listings do not count", events: repeat(ev(logs.KindDNSBL, 1), 10)},
		{name: "successes neither count nor reset", events: []logs.Event{
			ev(logs.KindAuthFailure, 1), ev(logs.KindAuthFailure, 1), ev(logs.KindAuthSuccess, 1),
			ev(logs.KindAuthFailure, 1), ev(logs.KindAuthSuccess, 1), ev(logs.KindAuthFailure, 1), ev(logs.KindAuthFailure, 1),
		}, banAt: 7, evidence: 5, reason: "5 auth failures"},
		{name: "protocol abuse counts like a failure", events: repeat(ev(logs.KindProtocolAbuse, 1), 5), banAt: 5, evidence: 5, reason: "5 protocol abuses"},
		{name: "mixed kinds add up", events: append(repeat(ev(logs.KindAuthFailure, 1), 3), repeat(ev(logs.KindProtocolAbuse, 1), 2)...),
			banAt: 5, evidence: 5, reason: "3 auth failures and 2 protocol abuses"},
		{name: "one line of five attempts bans at once", events: []logs.Event{ev(logs.KindAuthFailure, 5)}, banAt: 1, evidence: 5},
		{name: "one line of seven attempts shows all seven", events: []logs.Event{ev(logs.KindAuthFailure, 7)}, banAt: 1, evidence: 7, reason: "7 auth failures"},
		{name: "zero attempts count as one", events: repeat(ev(logs.KindAuthFailure, 0), 5), banAt: 5, evidence: 5},
		{name: "configured relay weight counts", change: func(c *Config) { c.Weights[logs.KindRelayDenied] = 1 },
			events: repeat(ev(logs.KindRelayDenied, 1), 5), banAt: 5, evidence: 5, reason: "5 relay denials"},
		{name: "a kind the engine does not know counts when weighed", change: func(c *Config) { c.Weights["invalid_user"] = 1 },
			events: repeat(ev("invalid_user", 1), 5), banAt: 5, evidence: 5, reason: "5 invalid_user in"},
		{name: "a kind the engine does not know does not count by default", events: repeat(ev("invalid_user", 1), 10)},
		{name: "heavier weight bans sooner", change: func(c *Config) { c.Weights[logs.KindProtocolAbuse] = 5 },
			events: []logs.Event{ev(logs.KindProtocolAbuse, 1)}, banAt: 1, evidence: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, tt.change)
			got := 0
			var ban Decision
			for i, ev := range tt.events {
				ev.Time = t0.Add(time.Duration(i) * time.Second)
				if ds := observe(e, ev); len(ds) > 0 && got == 0 {
					got, ban = i+1, ds[0]
				}
			}
			if got != tt.banAt {
				t.Fatalf("banned at event %d; want %d (0: never)", got, tt.banAt)
			}
			if got == 0 {
				return
			}
			if ban.Evidence != tt.evidence || !strings.HasPrefix(ban.Reason, tt.reason) {
				t.Errorf("ban = evidence %d, %q; want evidence %d, reason starting %q", ban.Evidence, ban.Reason, tt.evidence, tt.reason)
			}
		})
	}
}

func repeat(ev logs.Event, n int) []logs.Event {
	out := make([]logs.Event, n)
	for i := range out {
		out[i] = ev
	}
	return out
}

func TestMailScopeBansDoNotHideOtherServices(t *testing.T) {
	mail := func(c *Config) { c.Scope = ScopeMail }
	t.Run("mail evidence makes a mail ban", func(t *testing.T) {
		e := newEngine(t, mail)
		if d := banOnce(t, e, "198.18.24.1", t0); d.Scope != ScopeMail {
			t.Errorf("scope %s; want mail", d.Scope)
		}
	})
	t.Run("ssh evidence makes a ban of scope all", func(t *testing.T) {
		e := newEngine(t, mail)
		var got []Decision
		for i := range 5 {
			got = observe(e, fail("198.18.24.2", t0.Add(time.Duration(i)*time.Second), []string{"imap", "ssh"}[i%2]))
		}
		if len(got) != 1 || got[0].Scope != ScopeAll || !strings.Contains(got[0].Reason, "scope all: ssh is not a mail service") {
			t.Errorf("got %+v; want one ban of scope all saying why", got)
		}
	})
	t.Run("ssh failures under a mail ban escalate to scope all", func(t *testing.T) {
		e := newEngine(t, mail)
		first := banOnce(t, e, "198.18.24.3", t0)
		at := t0.Add(10 * time.Minute)
		for i := range 5 {
			if ds := observe(e, fail("198.18.24.3", at.Add(time.Duration(i)*time.Second), "imap")); ds != nil {
				t.Fatalf("imap failures under a mail ban decided %+v", ds)
			}
		}
		var got []Decision
		for i := range 5 {
			got = observe(e, fail("198.18.24.3", at.Add(time.Duration(10+i)*time.Second), "ssh"))
		}
		if len(got) != 1 || got[0].Scope != ScopeAll || got[0].Offence != 2 || got[0].Duration() != 4*time.Hour {
			t.Fatalf("ssh under a mail ban gave %+v; want a 4h ban of scope all, offence 2", got)
		}
		// Now everything is covered: more ssh failures are suppressed.
		for i := range 5 {
			if ds := observe(e, fail("198.18.24.3", at.Add(time.Duration(20+i)*time.Second), "ssh")); ds != nil {
				t.Fatalf("ssh under a ban of scope all decided %+v", ds)
			}
		}
		if first.Scope != ScopeMail {
			t.Errorf("first ban scope %s; want mail", first.Scope)
		}
	})
	t.Run("a mail-scope manual ban lets ssh evidence count", func(t *testing.T) {
		e := newEngine(t, nil)
		e.ManualBan(netip.MustParsePrefix("198.18.24.4/32"), ScopeMail, t0.Add(time.Hour), t0)
		var got []Decision
		for i := range 5 {
			got = observe(e, fail("198.18.24.4", t0.Add(time.Duration(i)*time.Second), "ssh"))
		}
		if len(got) != 1 || got[0].Scope != ScopeAll {
			t.Errorf("got %+v; want a ban of scope all", got)
		}
	})
}

func TestRepeatBansEscalateUpToTheCeiling(t *testing.T) {
	e := newEngine(t, nil)
	want := []time.Duration{time.Hour, 4 * time.Hour, 16 * time.Hour, 64 * time.Hour, 256 * time.Hour, 720 * time.Hour, 720 * time.Hour}
	at := t0
	for i, w := range want {
		d := banOnce(t, e, "198.18.4.4", at)
		if d.Duration() != w || d.Offence != i+1 || d.Origin != OriginLog {
			t.Errorf("ban %d = %s, offence %d, %s; want %s, offence %d, log", i+1, d.Duration(), d.Offence, d.Origin, w, i+1)
		}
		if i > 0 && !strings.Contains(d.Reason, fmt.Sprintf("ban %d in a row", i+1)) {
			t.Errorf("ban %d reason %q does not say it is a repeat", i+1, d.Reason)
		}
		// Come back a day and an hour after the ban ends: outside the
		// recidive window, inside the history.
		at = d.Expires.Add(25 * time.Hour)
	}
}

func TestBanHistoryIsForgottenAfterHistoryTTL(t *testing.T) {
	tests := []struct {
		name  string
		after time.Duration // from the end of the first ban
		want  time.Duration
	}{
		{"back within the history", 29 * 24 * time.Hour, 4 * time.Hour},
		{"back after the history", 31 * 24 * time.Hour, time.Hour},
	}
	for _, tt := range tests {
		for _, expire := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/expire=%v", tt.name, expire), func(t *testing.T) {
				e := newEngine(t, nil)
				first := banOnce(t, e, "198.18.4.5", t0)
				if expire {
					e.Expire(first.Expires.Add(tt.after))
				}
				if d := banOnce(t, e, "198.18.4.5", first.Expires.Add(tt.after)); d.Duration() != tt.want {
					t.Errorf("second ban lasts %s; want %s", d.Duration(), tt.want)
				}
			})
		}
	}
}

func TestThirdBanInADayIsRecidive(t *testing.T) {
	e := newEngine(t, nil)
	b1 := banOnce(t, e, "198.18.5.5", t0)
	b2 := banOnce(t, e, "198.18.5.5", b1.Expires)
	b3 := banOnce(t, e, "198.18.5.5", b2.Expires)
	for i, b := range []Decision{b1, b2} {
		if b.Origin != OriginLog {
			t.Errorf("ban %d origin %s; want log", i+1, b.Origin)
		}
	}
	if b3.Origin != OriginRecidive || b3.Duration() != 7*24*time.Hour {
		t.Errorf("third ban within %s = %s for %s; want recidive for 7d", b3.Start.Sub(b1.Start), b3.Origin, b3.Duration())
	}
	if !strings.Contains(b3.Reason, "3 bans in 1d: recidive 7d") {
		t.Errorf("reason %q does not explain the recidive", b3.Reason)
	}
	// Spread over more than a day, three bans are only escalation.
	e = newEngine(t, nil)
	b1 = banOnce(t, e, "198.18.5.6", t0)
	b2 = banOnce(t, e, "198.18.5.6", t0.Add(13*time.Hour))
	b3 = banOnce(t, e, "198.18.5.6", t0.Add(25*time.Hour))
	if b3.Origin != OriginLog || b3.Duration() != 16*time.Hour {
		t.Errorf("third ban after 25h = %s for %s; want log for 16h", b3.Origin, b3.Duration())
	}
}

func TestSquadsBanTheirPrefix(t *testing.T) {
	tests := []struct {
		name    string
		sources []string
		spacing time.Duration
		want    string // the subnet ban; "" for none
		banned  []string
	}{
		{name: "four IPv4 sources of a /24 within an hour", sources: []string{"198.18.6.1", "198.18.6.77", "198.18.6.200", "198.18.6.254"},
			spacing: 10 * time.Minute, want: "198.18.6.0/24"},
		{name: "four IPv4 sources spread over more than an hour", sources: []string{"198.18.6.1", "198.18.6.77", "198.18.6.200", "198.18.6.254"},
			spacing: 25 * time.Minute},
		{name: "four IPv4 sources in different /24s", sources: []string{"198.18.6.1", "198.18.7.1", "198.18.8.1", "198.18.9.1"},
			spacing: time.Minute},
		{name: "four IPv6 /64s of a /48", sources: []string{"fd00:1:2:1::5", "fd00:1:2:2::5", "fd00:1:2:3::5", "fd00:1:2:ffff::5"},
			spacing: time.Minute, want: "fd00:1:2::/48",
			banned: []string{"fd00:1:2:1::/64", "fd00:1:2:2::/64", "fd00:1:2:3::/64", "fd00:1:2:ffff::/64"}},
		// One host owns a /64: four of its addresses are one source, banned
		// once as the /64, and make no squad.
		{name: "four IPv6 addresses of one /64", sources: []string{"fd00:1:2:1::5", "fd00:1:2:1::6", "fd00:1:2:1::7:7", "fd00:1:2:1:ffff::"},
			spacing: time.Minute, banned: []string{"fd00:1:2:1::/64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, nil)
			var subnets []Decision
			var banned []string
			for i, src := range tt.sources {
				at := t0.Add(time.Duration(i) * tt.spacing)
				for j := range 5 {
					for _, d := range observe(e, fail(src, at.Add(time.Duration(j)*time.Second), "submission")) {
						if d.Origin == OriginSubnet {
							subnets = append(subnets, d)
						} else {
							banned = append(banned, d.Prefix.String())
						}
					}
				}
			}
			if tt.banned != nil && !slices.Equal(banned, tt.banned) {
				t.Errorf("source bans %v; want %v", banned, tt.banned)
			}
			if tt.want == "" {
				if len(subnets) > 0 {
					t.Fatalf("subnet bans %+v; want none", subnets)
				}
				return
			}
			if len(subnets) != 1 {
				t.Fatalf("subnet bans %+v; want one of %s", subnets, tt.want)
			}
			d := subnets[0]
			if d.Prefix.String() != tt.want || d.Duration() != 24*time.Hour || d.Evidence != 4 {
				t.Errorf("subnet ban %s for %s, evidence %d; want %s for 24h, evidence 4", d.Prefix, d.Duration(), d.Evidence, tt.want)
			}
			if !strings.HasPrefix(d.Reason, "4 sources of "+tt.want+" banned in ") {
				t.Errorf("reason %q", d.Reason)
			}
		})
	}
}

func TestSquadMemberEventsAreSuppressedWhileThePrefixIsBanned(t *testing.T) {
	e := newEngine(t, nil)
	for i := range 4 {
		banOnce(t, e, fmt.Sprintf("198.18.10.%d", i+1), t0.Add(time.Duration(i)*time.Minute))
	}
	for i := range 10 {
		if ds := observe(e, fail("198.18.10.99", t0.Add(time.Hour+time.Duration(i)*time.Second), "imap")); ds != nil {
			t.Fatalf("a source inside a banned squad was banned again: %+v", ds)
		}
	}
	// After the subnet ban ends, a new squad is banned for four times longer.
	at := t0.Add(26 * time.Hour)
	var sub *Decision
	for i := range 4 {
		at = at.Add(time.Minute)
		for j := range 5 {
			for _, d := range observe(e, fail(fmt.Sprintf("198.18.10.%d", 100+i), at.Add(time.Duration(j)*time.Second), "imap")) {
				if d.Origin == OriginSubnet {
					sub = &d
				}
			}
		}
	}
	if sub == nil || sub.Duration() != 4*24*time.Hour || sub.Offence != 2 {
		t.Errorf("second squad ban = %+v; want 4d, offence 2", sub)
	}
}

func TestEventsOfABannedSourceMakeNoNewDecision(t *testing.T) {
	e := newEngine(t, nil)
	ban := banOnce(t, e, "198.18.11.1", t0)
	// Lines written before the kernel dropped the source, and lines from
	// later in the ban, are both swallowed.
	for i := range 20 {
		at := t0.Add(time.Duration(i) * time.Minute)
		if ds := e.Observe(fail("198.18.11.1", at, "imap"), at.Add(2*time.Second)); ds != nil {
			t.Fatalf("banned again at %s during its ban: %+v", at, ds)
		}
	}
	// Once the ban is over the source is counted afresh, from zero.
	after := ban.Expires
	for i := range 4 {
		if ds := observe(e, fail("198.18.11.1", after.Add(time.Duration(i)*time.Second), "imap")); ds != nil {
			t.Fatalf("banned after %d failures once the ban ended", i+1)
		}
	}
	if ds := observe(e, fail("198.18.11.1", after.Add(5*time.Second), "imap")); len(ds) != 1 || ds[0].Duration() != 4*time.Hour {
		t.Errorf("after the ban, 5 failures gave %+v; want a 4h ban", ds)
	}
	if s := e.Stats(); s.Suppressed != 20 {
		t.Errorf("suppressed %d; want 20", s.Suppressed)
	}
}

func TestAllowlistedSourcesAreNeverBanned(t *testing.T) {
	allow := []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("198.18.12.0/28"),
		netip.MustParsePrefix("198.18.13.50/32"),
		netip.MustParsePrefix("fd00:12::7/128"),
	}
	t.Run("allowlisted addresses are ignored and counted", func(t *testing.T) {
		e := newEngine(t, nil)
		e.SetAllowlist(allow)
		for _, src := range []string{"127.0.0.1", "::1", "198.18.12.3", "198.18.13.50", "fd00:12::7", "::ffff:198.18.12.4"} {
			for i := range 50 {
				ev := fail(src, t0.Add(time.Duration(i)*time.Second), "smtp")
				ev.Addr = netip.MustParseAddr(src) // unfolded, as a careless parser might
				if ds := observe(e, ev); ds != nil {
					t.Fatalf("allowlisted %s banned: %+v", src, ds)
				}
			}
		}
		if s := e.Stats(); s.Ignored != 300 || s.Tracked != 0 {
			t.Errorf("stats %+v; want 300 ignored, nothing tracked", s)
		}
	})
	t.Run("squad prefix holding an allowlisted address is not banned", func(t *testing.T) {
		e := newEngine(t, nil)
		e.SetAllowlist(allow)
		var sources []Decision
		for i, src := range []string{"198.18.13.1", "198.18.13.2", "198.18.13.3", "198.18.13.4", "198.18.13.5"} {
			// banOnce fails if the source is not banned, as it would be
			// under a subnet ban.
			sources = append(sources, banOnce(t, e, src, t0.Add(time.Duration(i)*time.Minute)))
		}
		if s := e.Stats(); s.Decisions != 5 {
			t.Errorf("%d decisions; want the 5 sources banned one by one and no subnet", s.Decisions)
		}
		if want := "squad 198.18.13.0/24 not banned: holds allowlisted 198.18.13.50/32"; !strings.HasSuffix(sources[3].Reason, want) {
			t.Errorf("4th member's reason %q; want it to end %q", sources[3].Reason, want)
		}
	})
	t.Run("IPv6 ban narrows to the address when its /64 holds an allowlisted one", func(t *testing.T) {
		e := newEngine(t, nil)
		e.SetAllowlist(allow)
		d := banOnce(t, e, "fd00:12::8", t0)
		if d.Prefix != netip.MustParsePrefix("fd00:12::8/128") || !strings.Contains(d.Reason, "holds allowlisted fd00:12::7/128") {
			t.Errorf("ban %s, %q; want fd00:12::8/128 and why", d.Prefix, d.Reason)
		}
	})
	t.Run("a new allowlist drops the counters it covers", func(t *testing.T) {
		e := newEngine(t, nil)
		for i := range 4 {
			observe(e, fail("198.18.14.1", t0.Add(time.Duration(i)*time.Second), "smtp"))
			observe(e, fail("198.18.14.2", t0.Add(time.Duration(i)*time.Second), "smtp"))
		}
		e.SetAllowlist([]netip.Prefix{netip.MustParsePrefix("198.18.14.1/32")})
		if s := e.Stats(); s.Tracked != 1 {
			t.Errorf("tracked %d; want only the source not allowlisted", s.Tracked)
		}
		e.SetAllowlist(nil)
		if ds := observe(e, fail("198.18.14.1", t0.Add(5*time.Second), "smtp")); ds != nil {
			t.Errorf("evidence from while allowlisted banned it: %+v", ds)
		}
		if ds := observe(e, fail("198.18.14.2", t0.Add(5*time.Second), "smtp")); len(ds) != 1 {
			t.Errorf("the other source was not banned: %+v", ds)
		}
	})
}

func TestUnbanClearsCountersAndHistory(t *testing.T) {
	t.Run("counters", func(t *testing.T) {
		e := newEngine(t, nil)
		for i := range 4 {
			observe(e, fail("198.18.15.1", t0.Add(time.Duration(i)*time.Second), "imap"))
		}
		e.Unban(netip.MustParsePrefix("198.18.15.1/32"), t0.Add(10*time.Second))
		if ds := observe(e, fail("198.18.15.1", t0.Add(11*time.Second), "imap")); ds != nil {
			t.Errorf("old evidence re-banned at once after unban: %+v", ds)
		}
	})
	t.Run("backlog from before the unban is not evidence", func(t *testing.T) {
		e := newEngine(t, nil)
		ban := banOnce(t, e, "198.18.15.2", t0)
		unban := t0.Add(time.Minute)
		e.Unban(ban.Prefix, unban)
		for i := range 10 {
			if ds := e.Observe(fail("198.18.15.2", t0.Add(time.Duration(i)*time.Second), "imap"), unban.Add(time.Second)); ds != nil {
				t.Fatalf("lines from before the unban re-banned it: %+v", ds)
			}
		}
		if d := banOnce(t, e, "198.18.15.2", unban.Add(time.Second)); d.Duration() != time.Hour || d.Offence != 1 {
			t.Errorf("after unban, new evidence gave %s, offence %d; want a first ban of 1h", d.Duration(), d.Offence)
		}
	})
	t.Run("IPv6 address unbans its /64", func(t *testing.T) {
		e := newEngine(t, nil)
		banOnce(t, e, "fd00:15::1", t0)
		e.Unban(netip.MustParsePrefix("fd00:15::1/128"), t0.Add(time.Minute))
		if d := banOnce(t, e, "fd00:15::2", t0.Add(2*time.Minute)); d.Offence != 1 {
			t.Errorf("after unban the /64 is on offence %d; want 1", d.Offence)
		}
	})
	t.Run("subnet", func(t *testing.T) {
		e := newEngine(t, nil)
		for i := range 4 {
			banOnce(t, e, fmt.Sprintf("198.18.16.%d", i+1), t0.Add(time.Duration(i)*time.Minute))
		}
		for i := range 4 {
			observe(e, fail("198.18.16.100", t0.Add(10*time.Minute+time.Duration(i)*time.Second), "imap"))
		}
		unban := t0.Add(11 * time.Minute)
		e.Unban(netip.MustParsePrefix("198.18.16.0/24"), unban)
		if s := e.Stats(); s.Tracked != 0 {
			t.Errorf("tracked %d after unbanning the prefix; want 0", s.Tracked)
		}
		// The backlog of a source that had only counters is not evidence
		// either.
		for i := range 5 {
			if ds := e.Observe(fail("198.18.16.100", t0.Add(10*time.Minute+time.Duration(i)*time.Second), "imap"), unban); ds != nil {
				t.Fatalf("backlog re-banned a source inside the unbanned prefix: %+v", ds)
			}
		}
		// Neither the squad nor its members are held against the prefix.
		var got []Decision
		for i := range 4 {
			got = append(got, banOnce(t, e, fmt.Sprintf("198.18.16.%d", i+1), unban.Add(time.Duration(i+1)*time.Minute)))
		}
		for _, d := range got {
			if d.Offence != 1 {
				t.Errorf("%s on offence %d after the unban; want 1", d.Prefix, d.Offence)
			}
		}
	})
}

func TestManualBansCountForEscalationNotSquads(t *testing.T) {
	e := newEngine(t, nil)
	for i := range 4 {
		e.ManualBan(netip.MustParsePrefix(fmt.Sprintf("198.18.17.%d/32", i+1)), ScopeAll, t0.Add(2*time.Hour), t0.Add(time.Duration(i)*time.Minute))
	}
	if ds := observe(e, fail("198.18.17.1", t0.Add(time.Hour), "imap")); ds != nil {
		t.Fatalf("a manually banned source was banned again: %+v", ds)
	}
	if s := e.Stats(); s.Suppressed != 1 {
		t.Errorf("suppressed %d; want 1", s.Suppressed)
	}
	// After the manual ban ends, the next ban is a repeat; the manual bans
	// of four neighbours did not make a squad.
	d := banOnce(t, e, "198.18.17.1", t0.Add(3*time.Hour))
	if d.Offence != 2 || d.Duration() != 4*time.Hour {
		t.Errorf("ban after a manual one: offence %d for %s; want 2 for 4h", d.Offence, d.Duration())
	}
	if s := e.Stats(); s.Decisions != 1 {
		t.Errorf("%d decisions; want only the source's ban", s.Decisions)
	}
	// A permanent manual ban never lets the source back.
	e.ManualBan(netip.MustParsePrefix("198.18.17.9/32"), ScopeAll, time.Time{}, t0)
	for i := range 10 {
		if ds := observe(e, fail("198.18.17.9", t0.AddDate(5, 0, i), "imap")); ds != nil {
			t.Fatalf("permanently banned source banned again: %+v", ds)
		}
	}
}

func TestRestoreRebuildsHistory(t *testing.T) {
	p := netip.MustParsePrefix
	now := t0.Add(48 * time.Hour)
	e := newEngine(t, nil)
	e.Restore([]PastBan{
		// escalation: a 1h ban two days ago
		{Prefix: p("198.18.18.1/32"), Origin: OriginLog, Start: t0, Expires: t0.Add(time.Hour)},
		// still banned: a later 4h ban that runs past now
		{Prefix: p("198.18.18.2/32"), Origin: OriginLog, Start: now.Add(-time.Hour), Expires: now.Add(3 * time.Hour)},
		// lifted by an administrator: not held against it
		{Prefix: p("198.18.18.3/32"), Origin: OriginLog, Start: t0, Expires: t0.Add(time.Hour), Lifted: t0.Add(time.Minute)},
		// three members of a squad in the last hour
		{Prefix: p("198.18.19.1/32"), Origin: OriginLog, Start: now.Add(-30 * time.Minute), Expires: now.Add(30 * time.Minute)},
		{Prefix: p("198.18.19.2/32"), Origin: OriginLog, Start: now.Add(-20 * time.Minute), Expires: now.Add(40 * time.Minute)},
		{Prefix: p("198.18.19.3/32"), Origin: OriginRecidive, Start: now.Add(-10 * time.Minute), Expires: now.Add(7 * 24 * time.Hour)},
		// a country block is no source's history
		{Prefix: p("198.18.18.4/32"), Origin: OriginGeo, Start: t0},
	})
	if d := banOnce(t, e, "198.18.18.1", now); d.Offence != 2 || d.Duration() != 4*time.Hour {
		t.Errorf("restored repeat offender: offence %d for %s; want 2 for 4h", d.Offence, d.Duration())
	}
	for i := range 5 {
		if ds := observe(e, fail("198.18.18.2", now.Add(time.Duration(i)*time.Second), "imap")); ds != nil {
			t.Fatalf("a source with a restored active ban was banned again: %+v", ds)
		}
	}
	if d := banOnce(t, e, "198.18.18.3", now); d.Offence != 1 {
		t.Errorf("source whose ban was lifted: offence %d; want 1", d.Offence)
	}
	if d := banOnce(t, e, "198.18.18.4", now); d.Offence != 1 {
		t.Errorf("source under a geo block: offence %d; want 1", d.Offence)
	}
	var sub []Decision
	for i := range 5 {
		for _, d := range observe(e, fail("198.18.19.4", now.Add(time.Duration(i)*time.Second), "imap")) {
			if d.Origin == OriginSubnet {
				sub = append(sub, d)
			}
		}
	}
	if len(sub) != 1 || sub[0].Prefix != p("198.18.19.0/24") {
		t.Errorf("fourth member after restoring three: %+v; want the /24 banned", sub)
	}
}

func TestRestoreRebuildsSquadBans(t *testing.T) {
	p := netip.MustParsePrefix
	now := t0.Add(48 * time.Hour)
	e := newEngine(t, nil)
	e.Restore([]PastBan{
		// in force: its addresses are not counted
		{Prefix: p("198.18.27.0/24"), Origin: OriginSubnet, Start: now.Add(-time.Hour), Expires: now.Add(23 * time.Hour)},
		// over: the next squad ban of the prefix is a repeat
		{Prefix: p("fd00:27::/48"), Origin: OriginSubnet, Start: t0, Expires: t0.Add(24 * time.Hour)},
		// a manual ban of a squad-sized prefix holds too
		{Prefix: p("198.18.28.0/24"), Origin: OriginManual, Start: now.Add(-time.Hour)},
	})
	for _, src := range []string{"198.18.27.9", "198.18.28.9"} {
		for i := range 5 {
			if ds := observe(e, fail(src, now.Add(time.Duration(i)*time.Second), "imap")); ds != nil {
				t.Fatalf("%s inside a restored subnet ban was banned: %+v", src, ds)
			}
		}
	}
	var sub []Decision
	for i := range 4 {
		for j := range 5 {
			for _, d := range observe(e, fail(fmt.Sprintf("fd00:27:0:%x::1", i+1), now.Add(time.Duration(i)*time.Minute+time.Duration(j)*time.Second), "imap")) {
				if d.Origin == OriginSubnet {
					sub = append(sub, d)
				}
			}
		}
	}
	if len(sub) != 1 || sub[0].Offence != 2 || sub[0].Duration() != 4*24*time.Hour {
		t.Errorf("squad after a restored subnet ban: %+v; want offence 2 for 4d", sub)
	}
}

func TestMemoryStaysBoundedUnderASpray(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxSources = 10_000 })
	const spray = 100_000
	addr := func(i int) string { return fmt.Sprintf("198.18.%d.%d", i/256%256, i%256) }
	v6 := func(i int) string { return fmt.Sprintf("fd00:%x:%x::1", i/65536, i%65536) }
	for i := range spray {
		src := addr(i)
		if i%2 == 1 {
			src = v6(i)
		}
		observe(e, fail(src, t0.Add(time.Duration(i)*time.Millisecond), "smtp"))
	}
	s := e.Stats()
	if s.Tracked != 10_000 || s.Evicted != spray-10_000 {
		t.Fatalf("tracked %d, evicted %d; want 10000 and %d", s.Tracked, s.Evicted, spray-10_000)
	}
	if len(e.counters.nodes) != 10_000 || len(e.times) != 10_000*5 {
		t.Errorf("slab holds %d nodes, %d times; want no more than the cap", len(e.counters.nodes), len(e.times))
	}
	// The stalest sources were evicted; the freshest still count.
	at := t0.Add(spray * time.Millisecond)
	for i := range 4 {
		if ds := observe(e, fail(v6(spray-1), at.Add(time.Duration(i)*time.Millisecond), "smtp")); i == 3 && len(ds) != 1 {
			t.Errorf("freshest source not banned at its 5th failure")
		}
		if ds := observe(e, fail(addr(0), at.Add(time.Duration(i)*time.Millisecond), "smtp")); ds != nil {
			t.Errorf("evicted source banned on 4 more failures")
		}
	}
}

func TestBanHistoryIsBoundedToo(t *testing.T) {
	e := newEngine(t, func(c *Config) { c.MaxSources = 10 })
	for i := range 30 {
		// one source per /24: no squads
		banOnce(t, e, fmt.Sprintf("198.18.%d.1", 100+i), t0.Add(time.Duration(i)*time.Minute))
	}
	if s := e.Stats(); s.Remembered != 10 || s.Forgotten != 20 {
		t.Errorf("remembered %d, forgotten %d; want 10 and 20", s.Remembered, s.Forgotten)
	}
	// The most recently banned are remembered, the first forgotten.
	later := t0.AddDate(0, 0, 2)
	if d := banOnce(t, e, "198.18.129.1", later); d.Offence != 2 {
		t.Errorf("recently banned source on offence %d; want 2", d.Offence)
	}
	if d := banOnce(t, e, "198.18.100.1", later); d.Offence != 1 {
		t.Errorf("forgotten source on offence %d; want 1", d.Offence)
	}
}

func TestExpireGivesMemoryBack(t *testing.T) {
	e := newEngine(t, nil)
	for i := range 100 {
		observe(e, fail(fmt.Sprintf("198.18.20.%d", i), t0, "smtp"))
	}
	ban := banOnce(t, e, "198.18.21.1", t0)
	e.Expire(t0.Add(5 * time.Minute))
	if s := e.Stats(); s.Tracked != 100 || s.Remembered != 1 {
		t.Errorf("after 5 minutes: %+v; want 100 tracked, 1 remembered", s)
	}
	e.Expire(t0.Add(10 * time.Minute))
	if s := e.Stats(); s.Tracked != 0 || s.Remembered != 1 {
		t.Errorf("after the window: %+v; want 0 tracked, 1 remembered", s)
	}
	e.Expire(ban.Expires.Add(30*24*time.Hour + time.Second))
	if s := e.Stats(); s.Remembered != 0 || len(e.squads) != 0 {
		t.Errorf("after the history: %+v, %d squads; want nothing remembered", s, len(e.squads))
	}
}

func TestSameEventsMakeSameDecisions(t *testing.T) {
	run := func() []Decision {
		e := newEngine(t, nil)
		e.SetAllowlist([]netip.Prefix{netip.MustParsePrefix("198.18.22.7/32")})
		var out []Decision
		for _, ev := range randomEvents(42, 20_000) {
			out = append(out, observe(e, ev)...)
		}
		return out
	}
	a, b := run(), run()
	if len(a) < 10 {
		t.Fatalf("only %d decisions: the stream does not exercise the engine", len(a))
	}
	if !slices.EqualFunc(a, b, func(x, y Decision) bool { return fmt.Sprint(x) == fmt.Sprint(y) }) {
		t.Errorf("two runs of the same events decided differently")
	}
}

func TestNewRefusesAnInvalidConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New(Config{}) succeeded")
	}
}

func TestBacklogBansFromNowForTheFullTime(t *testing.T) {
	// The daemon catching up after a crash reads failures from 40 minutes
	// ago: the window is judged on their times, the ban runs from now.
	e := newEngine(t, nil)
	now := t0.Add(40 * time.Minute)
	var got []Decision
	for i := range 5 {
		got = e.Observe(fail("198.18.25.1", t0.Add(time.Duration(i)*time.Minute), "imap"), now)
	}
	if len(got) != 1 || !got[0].Start.Equal(now) || !got[0].Expires.Equal(now.Add(time.Hour)) {
		t.Errorf("got %+v; want a ban from %s for 1h", got, now)
	}
	// Empty service names and zero event times still explain themselves.
	e = newEngine(t, nil)
	for range 5 {
		got = e.Observe(logs.Event{Kind: logs.KindAuthFailure, Addr: netip.MustParseAddr("198.18.25.2")}, now)
	}
	if len(got) != 1 || got[0].Reason != "5 auth failures in 0s (unknown)" {
		t.Errorf("got %+v; want a ban explained as 5 auth failures in 0s (unknown)", got)
	}
}
