package alert

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// Attack is what an attack alert says: what happened and since when, how
// many attempts from how many distinct sources (a spike from two machines
// reads as two machines), the top sources, what portcullis did about it,
// and the commands to look closer.
type Attack struct {
	Key      string
	What     string
	Since    time.Time
	Attempts int
	Sources  int
	Top      []SourceCount
	// Banned and Dropped are what portcullis did in the same span: bans
	// made and packets the datapath dropped from banned or over-rate
	// sources.
	Banned  int
	Dropped uint64
	// Commands are what to run to look closer.
	Commands []string
}

// SourceCount is one source (an address, or an IPv6 /64) and its count.
type SourceCount struct {
	Prefix  netip.Prefix
	Count   int
	Country string // empty when no geo database is configured
	Banned  bool
}

// Message is the attack as an alert.
func (a Attack) Message() Message {
	var b strings.Builder
	fmt.Fprintf(&b, "What: %s\n", a.What)
	if !a.Since.IsZero() {
		fmt.Fprintf(&b, "Since: %s\n", a.Since.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "Attempts: %d from %d distinct %s\n", a.Attempts, a.Sources, plural(a.Sources, "source", "sources"))
	if len(a.Top) > 0 {
		b.WriteString("Top sources:\n")
		for _, s := range a.Top {
			country := s.Country
			if country == "" {
				country = "country unknown"
			}
			state := "not banned"
			if s.Banned {
				state = "banned"
			}
			fmt.Fprintf(&b, "  %-22s %8d  %-16s %s\n", shortPrefix(s.Prefix), s.Count, country, state)
		}
	}
	fmt.Fprintf(&b, "What portcullis did: banned %d %s; the datapath dropped %d packets from banned or over-rate sources\n",
		a.Banned, plural(a.Banned, "source", "sources"), a.Dropped)
	if len(a.Commands) > 0 {
		b.WriteString("Look closer:\n")
		for _, c := range a.Commands {
			fmt.Fprintf(&b, "  %s\n", c)
		}
	}
	return Message{Key: a.Key, Severity: Warning, Subject: a.What, Body: b.String(), Since: a.Since}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// shortPrefix writes a single address without its /32 or /128.
func shortPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Thresholds are when attack alerts fire.
type Thresholds struct {
	// FailuresPerMinute: failed logins in the last minute above this
	// alert, whatever the baseline.
	FailuresPerMinute int
	// BaselineFactor: failed logins in the last minute above this many
	// times the usual rate for this hour of the day alert too (once the
	// rate is at least MinFailures).
	BaselineFactor float64
	MinFailures    int
	// SYNsPerMinute to the mail ports over all sources, and
	// SourceSYNsPerMinute from one source.
	SYNsPerMinute       uint64
	SourceSYNsPerMinute uint64
	// BanStorm bans within BanStormWithin alert.
	BanStorm       int
	BanStormWithin time.Duration
	// CountrySources distinct attacking sources from one country within an
	// hour alert (0: never).
	CountrySources int
	// PrefixSources distinct attacking sources in one IPv4 /24 or IPv6
	// /48 within the last hour alert.
	PrefixSources int
}

// CountSources adds up the attempts of failed logins per source, most
// first; IPv6 sources count per /64 as the engine bans them.
func CountSources(events []logs.Event) (attempts int, sources []SourceCount) {
	by := map[netip.Prefix]int{}
	country := map[netip.Prefix]string{}
	for _, ev := range events {
		if ev.Kind != logs.KindAuthFailure {
			continue
		}
		attempts += ev.Attempts
		src := sourceOf(ev.Addr)
		by[src] += ev.Attempts
		if ev.Country != "" {
			country[src] = ev.Country // as the geo database placed it
		}
	}
	for p, n := range by {
		sources = append(sources, SourceCount{Prefix: p, Count: n, Country: country[p]})
	}
	slices.SortFunc(sources, func(a, b SourceCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return a.Prefix.Addr().Compare(b.Prefix.Addr())
	})
	return attempts, sources
}

func sourceOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, 32)
}

// FailureSpike reports whether the failed logins of the last minute
// (events) are a spike: over the absolute threshold, or over BaselineFactor
// times baseline (failed logins a minute usually seen in this hour).
func FailureSpike(events []logs.Event, baseline float64, th Thresholds) (Attack, bool) {
	attempts, sources := CountSources(events)
	var why string
	switch {
	case th.FailuresPerMinute > 0 && attempts > th.FailuresPerMinute:
		why = fmt.Sprintf("over the threshold of %d a minute", th.FailuresPerMinute)
	case th.BaselineFactor > 0 && attempts >= max(th.MinFailures, 1) && float64(attempts) > th.BaselineFactor*baseline:
		why = fmt.Sprintf("over %g times the usual %.1f a minute for this hour", th.BaselineFactor, baseline)
	default:
		return Attack{}, false
	}
	a := Attack{
		Key:      "attack:failures",
		What:     fmt.Sprintf("failed-login spike: %d failed logins in the last minute from %d %s, %s", attempts, len(sources), plural(len(sources), "source", "sources"), why),
		Attempts: attempts,
		Sources:  len(sources),
		Top:      top(sources, 10),
		Commands: []string{"portcullis history --since 1h", "portcullis bans", "portcullis top"},
	}
	if len(a.Top) > 0 {
		a.Commands = append(a.Commands, "portcullis history --since 1h --ip "+shortPrefix(a.Top[0].Prefix))
	}
	return a, true
}

func top(s []SourceCount, n int) []SourceCount {
	return slices.Clone(s[:min(n, len(s))])
}

// PrefixSquads finds IPv4 /24s and IPv6 /48s with at least
// th.PrefixSources distinct failing sources among events.
func PrefixSquads(events []logs.Event, th Thresholds) []Attack {
	if th.PrefixSources <= 0 {
		return nil
	}
	members := map[netip.Prefix]map[netip.Prefix]int{}
	attempts := map[netip.Prefix]int{}
	for _, ev := range events {
		if ev.Kind != logs.KindAuthFailure {
			continue
		}
		bits := 24
		if ev.Addr.Unmap().Is6() {
			bits = 48
		}
		wide, _ := ev.Addr.Unmap().Prefix(bits)
		if members[wide] == nil {
			members[wide] = map[netip.Prefix]int{}
		}
		members[wide][sourceOf(ev.Addr)] += ev.Attempts
		attempts[wide] += ev.Attempts
	}
	var out []Attack
	for wide, m := range members {
		if len(m) < th.PrefixSources {
			continue
		}
		var sources []SourceCount
		for p, n := range m {
			sources = append(sources, SourceCount{Prefix: p, Count: n})
		}
		slices.SortFunc(sources, func(a, b SourceCount) int { return cmp.Compare(b.Count, a.Count) })
		out = append(out, Attack{
			Key:      "attack:prefix:" + wide.String(),
			What:     fmt.Sprintf("%d distinct sources in %s failing logins within the last hour", len(m), wide),
			Attempts: attempts[wide],
			Sources:  len(m),
			Top:      top(sources, 10),
			Commands: []string{"portcullis history --since 1h --ip " + wide.String(), "portcullis bans"},
		})
	}
	slices.SortFunc(out, func(a, b Attack) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// SYNRate is one source's SYNs to the mail ports in the last minute.
type SYNRate struct {
	Prefix    netip.Prefix
	PerMinute uint64
}

// SYNSpike reports a SYN flood to the mail ports: overall over
// th.SYNsPerMinute, or from one source over th.SourceSYNsPerMinute.
func SYNSpike(total uint64, sources []SYNRate, th Thresholds) []Attack {
	var out []Attack
	slices.SortFunc(sources, func(a, b SYNRate) int { return cmp.Compare(b.PerMinute, a.PerMinute) })
	var tops []SourceCount
	for _, s := range sources[:min(10, len(sources))] {
		tops = append(tops, SourceCount{Prefix: s.Prefix, Count: int(s.PerMinute)})
	}
	if th.SYNsPerMinute > 0 && total > th.SYNsPerMinute {
		out = append(out, Attack{
			Key:      "attack:syn",
			What:     fmt.Sprintf("SYN spike to the mail ports: %d SYNs in the last minute from %d %s (threshold %d)", total, len(sources), plural(len(sources), "source", "sources"), th.SYNsPerMinute),
			Attempts: int(total), Sources: len(sources), Top: tops,
			Commands: []string{"portcullis top", "portcullis stats"},
		})
	}
	out = append(out, prefixSYNSpikes(sources, th)...)
	for _, s := range sources {
		if th.SourceSYNsPerMinute == 0 || s.PerMinute <= th.SourceSYNsPerMinute {
			break
		}
		out = append(out, Attack{
			Key:      "attack:syn:" + s.Prefix.String(),
			What:     fmt.Sprintf("SYN spike from %s: %d SYNs to the mail ports in the last minute (threshold %d)", shortPrefix(s.Prefix), s.PerMinute, th.SourceSYNsPerMinute),
			Attempts: int(s.PerMinute), Sources: 1, Top: []SourceCount{{Prefix: s.Prefix, Count: int(s.PerMinute)}},
			Commands: []string{"portcullis top", "portcullis explain " + s.Prefix.Addr().String()},
		})
	}
	return out
}

// prefixSYNSpikes reports a flood spread over the sources of one IPv4 /24
// or IPv6 /48, each under the per-source threshold but together over it
// (sources over it on their own are reported as sources).
func prefixSYNSpikes(sources []SYNRate, th Thresholds) []Attack {
	if th.SourceSYNsPerMinute == 0 {
		return nil
	}
	type group struct {
		total   uint64
		members []SourceCount
	}
	groups := map[netip.Prefix]*group{}
	for _, s := range sources {
		if s.PerMinute > th.SourceSYNsPerMinute {
			continue // reported as a source of its own
		}
		bits := 24
		if s.Prefix.Addr().Is6() {
			bits = 48
		}
		wide, _ := s.Prefix.Addr().Prefix(bits)
		g := groups[wide]
		if g == nil {
			g = &group{}
			groups[wide] = g
		}
		g.total += s.PerMinute
		g.members = append(g.members, SourceCount{Prefix: s.Prefix, Count: int(s.PerMinute)})
	}
	var out []Attack
	for wide, g := range groups {
		if len(g.members) < 2 || g.total <= th.SourceSYNsPerMinute {
			continue // one source alone is reported as a source
		}
		out = append(out, Attack{
			Key:      "attack:syn:prefix:" + wide.String(),
			What:     fmt.Sprintf("SYN spike from %s: %d SYNs to the mail ports in the last minute from %d sources (threshold %d)", wide, g.total, len(g.members), th.SourceSYNsPerMinute),
			Attempts: int(g.total), Sources: len(g.members), Top: top(g.members, 10),
			Commands: []string{"portcullis top", "portcullis ban " + wide.String() + " --for 1h --reason \"SYN flood\""},
		})
	}
	slices.SortFunc(out, func(a, b Attack) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// CountrySquads reports countries from which at least th.CountrySources
// distinct sources failed logins within the events (the last hour), as the
// geo database placed them. Without a database events carry no country and
// nothing is reported.
func CountrySquads(events []logs.Event, th Thresholds) []Attack {
	if th.CountrySources <= 0 {
		return nil
	}
	members := map[string]map[netip.Prefix]int{}
	attempts := map[string]int{}
	for _, ev := range events {
		if ev.Kind != logs.KindAuthFailure || ev.Country == "" {
			continue
		}
		if members[ev.Country] == nil {
			members[ev.Country] = map[netip.Prefix]int{}
		}
		members[ev.Country][sourceOf(ev.Addr)] += ev.Attempts
		attempts[ev.Country] += ev.Attempts
	}
	var out []Attack
	for country, m := range members {
		if len(m) < th.CountrySources {
			continue
		}
		var sources []SourceCount
		for p, n := range m {
			sources = append(sources, SourceCount{Prefix: p, Count: n, Country: country})
		}
		slices.SortFunc(sources, func(a, b SourceCount) int { return cmp.Compare(b.Count, a.Count) })
		out = append(out, Attack{
			Key:      "attack:country:" + country,
			What:     fmt.Sprintf("%d distinct sources in %s failing logins within the last hour (threshold %d)", len(m), country, th.CountrySources),
			Attempts: attempts[country],
			Sources:  len(m),
			Top:      top(sources, 10),
			Commands: []string{"portcullis history --since 1h", "portcullis geo status", "a geo policy: [geo.policy.auth] deny = [\"" + country + "\"]"},
		})
	}
	slices.SortFunc(out, func(a, b Attack) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// BanStorm reports n bans within the window as a storm.
func BanStorm(n int, window time.Duration, banned []SourceCount, th Thresholds) (Attack, bool) {
	if th.BanStorm <= 0 || n < th.BanStorm {
		return Attack{}, false
	}
	return Attack{
		Key:      "attack:banstorm",
		What:     fmt.Sprintf("ban storm: %d bans within %s (threshold %d)", n, ago(window), th.BanStorm),
		Attempts: sum(banned), Sources: len(banned), Top: top(banned, 10), Banned: n,
		Commands: []string{"portcullis bans", "portcullis history --since " + ago(window)},
	}, true
}

func sum(s []SourceCount) int {
	n := 0
	for _, c := range s {
		n += c.Count
	}
	return n
}
