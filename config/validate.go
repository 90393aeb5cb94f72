package config

import (
	"fmt"
	"github.com/portcullis-mail/portcullis/logs"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

// problem is a value out of range, named by its dotted key.
type problem struct {
	key, msg string
}

// Validate checks the values of c (after flags have overridden the file,
// say) and returns every problem as Errors without lines, or nil.
func (c Config) Validate() error {
	ps := c.problems()
	if len(ps) == 0 {
		return nil
	}
	errs := make(Errors, len(ps))
	for i, p := range ps {
		errs[i] = &Error{Key: p.key, Msg: p.msg}
	}
	return errs
}

// checker collects problems.
type checker []problem

func (ch *checker) addf(key, format string, args ...any) {
	*ch = append(*ch, problem{key, fmt.Sprintf(format, args...)})
}

func (ch *checker) absPath(key, path string) {
	if !filepath.IsAbs(path) {
		ch.addf(key, "want an absolute path, got %q", path)
	}
}

func (ch *checker) oneOf(key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	ch.addf(key, "invalid value %q (want %s)", v, strings.Join(quoted(allowed), ", "))
}

func (ch *checker) atLeast(key string, v, lo int) {
	if v < lo {
		ch.addf(key, "%d is too small (at least %d)", v, lo)
	}
}

func (ch *checker) between(key string, v, lo, hi int) {
	if v < lo || v > hi {
		ch.addf(key, "%d is out of range (%d to %d)", v, lo, hi)
	}
}

func (ch *checker) positive(key string, d Duration) {
	if d <= 0 {
		ch.addf(key, "want a duration above zero, got %s", d)
	}
}

func quoted(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// problems lists what is wrong with the values of c. Keys are those of the
// file, so Parse can add their lines.
func (c Config) problems() []problem {
	var ch checker

	d := c.Daemon
	ch.absPath("daemon.state_dir", d.StateDir)
	ch.absPath("daemon.pin_dir", d.PinDir)
	ch.absPath("daemon.socket", d.Socket)
	for i, name := range d.Interfaces {
		// The kernel's limit (IFNAMSIZ less the NUL) and its forbidden
		// characters.
		if name == "" || len(name) > 15 || strings.ContainsAny(name, "/: \t") || name == "." || name == ".." {
			ch.addf(fmt.Sprintf("daemon.interfaces[%d]", i), "invalid interface name %q", name)
		}
	}
	ch.oneOf("daemon.log_format", d.LogFormat, "text", "json")
	ch.oneOf("daemon.log_level", d.LogLevel, "debug", "info", "warn", "error")
	if d.Metrics != "" {
		if _, err := netip.ParseAddrPort(d.Metrics); err != nil {
			ch.addf("daemon.metrics", "want an address and port such as \"127.0.0.1:9433\", got %q", d.Metrics)
		}
	}

	for i, f := range c.Logs.Files {
		key := fmt.Sprintf("logs.files[%d]", i)
		ch.absPath(key, f)
		if _, err := filepath.Match(f, ""); err != nil {
			ch.addf(key, "invalid glob %q: %v", f, err)
		}
	}

	for i, r := range c.Logs.Rules {
		if _, err := logs.NewCustomRule(r.Name, r.Service, logs.Kind(r.Kind), r.Pattern); err != nil {
			// One problem a line, as everywhere else.
			errs := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			for _, e := range errs {
				ch.addf(fmt.Sprintf("logs.rule[%d]", i), "%v", e)
			}
		}
	}

	v := c.Verdict
	ch.atLeast("verdict.threshold", v.Threshold, 1)
	ch.positive("verdict.window", v.Window)
	ch.positive("verdict.ban", v.Ban)
	if v.EscalationFactor < 1 {
		ch.addf("verdict.escalation_factor", "%v is too small (at least 1: 1 means no escalation)", v.EscalationFactor)
	}
	ch.positive("verdict.max_ban", v.MaxBan)
	if v.MaxBan > 0 && v.Ban > v.MaxBan {
		ch.addf("verdict.max_ban", "%s is shorter than verdict.ban (%s)", v.MaxBan, v.Ban)
	}
	if v.Remember < 0 {
		ch.addf("verdict.remember", "want a duration of zero or more, got %s", v.Remember)
	}
	ch.atLeast("verdict.max_sources", v.MaxSources, 1)
	for i, p := range v.Allowlist {
		if !p.IsValid() {
			ch.addf(fmt.Sprintf("verdict.allowlist[%d]", i), "invalid prefix")
		}
	}
	ch.atLeast("verdict.recidive.bans", v.Recidive.Bans, 2)
	ch.positive("verdict.recidive.within", v.Recidive.Within)
	ch.positive("verdict.recidive.ban", v.Recidive.Ban)
	ch.atLeast("verdict.squad.sources", v.Squad.Sources, 2)
	ch.positive("verdict.squad.within", v.Squad.Within)
	// A squad prefix holds several sources: an IPv4 source is one address,
	// an IPv6 source a /64.
	ch.between("verdict.squad.ipv4_prefix", v.Squad.IPv4Prefix, 8, 31)
	ch.between("verdict.squad.ipv6_prefix", v.Squad.IPv6Prefix, 16, 63)
	ch.positive("verdict.squad.ban", v.Squad.Ban)

	dp := c.Datapath
	seen := map[uint16]string{}
	for _, class := range []struct {
		name  string
		ports []uint16
	}{{"mx", dp.Ports.MX}, {"auth", dp.Ports.Auth}} {
		for i, port := range class.ports {
			key := fmt.Sprintf("datapath.ports.%s[%d]", class.name, i)
			if port == 0 {
				ch.addf(key, "port 0 is not a port")
				continue
			}
			if other, dup := seen[port]; dup {
				ch.addf(key, "port %d is listed twice (also in %s)", port, other)
				continue
			}
			seen[port] = "datapath.ports." + class.name
		}
	}
	for _, rl := range []struct {
		name string
		RateLimit
	}{{"mx", dp.RateLimit.MX}, {"auth", dp.RateLimit.Auth}} {
		if rl.PerMinute > 0 && rl.Burst == 0 {
			ch.addf("datapath.rate_limit."+rl.name+".burst", "0 lets no SYN through; set per_minute = 0 to turn the limit off")
		}
	}
	for _, cp := range []struct {
		key string
		n   uint32
	}{
		{"datapath.capacity.bans", dp.Capacity.Bans},
		{"datapath.capacity.prefix_bans", dp.Capacity.PrefixBans},
		{"datapath.capacity.allowlist", dp.Capacity.Allowlist},
		{"datapath.capacity.sources", dp.Capacity.Sources},
	} {
		ch.atLeast(cp.key, int(cp.n), 1)
	}

	c.Geo.problems(&ch)

	if c.Store.Retention < Duration(24*time.Hour) {
		ch.addf("store.retention", "%s is too short (at least 1d)", c.Store.Retention)
	}
	c.Alerts.check(&ch)
	return ch
}

func (g Geo) problems(ch *checker) {
	active := ""
	for _, p := range []struct {
		class string
		GeoPolicy
	}{{"mx", g.Policy.MX}, {"auth", g.Policy.Auth}, {"all", g.Policy.All}} {
		key := "geo.policy." + p.class
		if len(p.Deny) > 0 && len(p.Allow) > 0 {
			ch.addf(key+".allow", "a class has either a deny list or an allow list, not both")
		}
		for _, list := range []struct {
			name  string
			codes []string
		}{{"deny", p.Deny}, {"allow", p.Allow}} {
			for i, c := range list.codes {
				if !isCountryCode(c) {
					ch.addf(fmt.Sprintf("%s.%s[%d]", key, list.name, i), "%q is not a two-letter country code such as \"NZ\" (ISO 3166, upper case)", c)
				}
			}
		}
		ch.oneOf(key+".unknown", p.Unknown, "pass", "drop")
		if p.Active() && active == "" {
			active = key
		}
	}
	if g.Database != "" {
		ch.absPath("geo.database", g.Database)
	} else if active != "" {
		ch.addf(active, "a geo policy needs [geo] database (a .mmdb file such as /var/lib/GeoIP/GeoLite2-Country.mmdb)")
	}
}

func isCountryCode(c string) bool {
	return len(c) == 2 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z'
}

// CustomRules are the configured custom rules as the log parser takes them.
func (l Logs) CustomRules() []logs.CustomRule {
	out := make([]logs.CustomRule, len(l.Rules))
	for i, r := range l.Rules {
		out[i] = logs.CustomRule{Name: r.Name, Service: r.Service, Kind: logs.Kind(r.Kind), Pattern: r.Pattern}
	}
	return out
}

func (a Alerts) check(ch *checker) {
	for i, to := range a.To {
		if strings.TrimSpace(to) == "" || strings.ContainsAny(to, "\r\n,<>") {
			ch.addf(fmt.Sprintf("alerts.to[%d]", i), "invalid recipient %q", to)
		}
	}
	if strings.ContainsAny(a.From, "\r\n<>") {
		ch.addf("alerts.from", "invalid sender %q", a.From)
	}
	names := map[string]bool{}
	for i, c := range a.Channels {
		key := fmt.Sprintf("alerts.channel[%d]", i)
		if c.Name == "" || c.Name == "log" || names[c.Name] {
			ch.addf(key+".name", "want a unique name other than \"log\", got %q", c.Name)
		}
		names[c.Name] = true
		switch c.Type {
		case "sendmail":
			if c.Command != "" && !filepath.IsAbs(strings.Fields(c.Command)[0]) {
				ch.addf(key+".command", "want an absolute program path, got %q", c.Command)
			}
		case "smtp":
			if c.Address != "" && !strings.Contains(c.Address, ":") {
				ch.addf(key+".address", "want host:port, got %q", c.Address)
			}
			if c.CAFile != "" {
				ch.absPath(key+".ca_file", c.CAFile)
			}
		case "webhook":
			if !strings.HasPrefix(c.URL, "https://") && !strings.HasPrefix(c.URL, "http://") {
				ch.addf(key+".url", "want an http:// or https:// URL, got %q", c.URL)
			}
			if c.Format != "" {
				ch.oneOf(key+".format", c.Format, "slack", "json")
			}
		default:
			ch.addf(key+".type", "invalid value %q (want \"sendmail\", \"smtp\" or \"webhook\")", c.Type)
		}
		if (c.Type == "sendmail" || c.Type == "smtp") && len(a.To) == 0 {
			ch.addf("alerts.to", "mail channel %q needs at least one recipient", c.Name)
		}
	}
	ch.positive("alerts.cooldown", a.Cooldown)
	ch.positive("alerts.check_interval", a.CheckInterval)
	ch.positive("alerts.attack.ban_storm_within", a.Attack.BanStormWithin)
	ch.positive("alerts.health.stale", a.Health.Stale)
	ch.positive("alerts.health.stall", a.Health.Stall)
	ch.positive("alerts.health.lag", a.Health.Lag)
	ch.between("alerts.health.map_full_percent", a.Health.MapFullPercent, 1, 100)
}
