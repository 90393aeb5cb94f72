// Package config reads portcullis's TOML configuration.
//
// Every setting has a default, kept in Default and written out, with a
// comment for each key, in the embedded default file that `portcullis config
// default` prints; the two are the same configuration (a test holds them to
// it). A file needs only the keys it changes. Parse reports every problem at
// once, each with its line and key: unknown keys (a typo must not silently
// leave a default in place), values of the wrong type, and values out of
// range.
package config

import (
	_ "embed"
	"fmt"
	"net/netip"
	"time"
)

// DefaultPath is where the daemon and the CLI look for the config file.
const DefaultPath = "/etc/portcullis/portcullis.toml"

// DefaultTOML is the default configuration as a commented TOML file.
//
//go:embed default.toml
var DefaultTOML []byte

// Config is the whole configuration. Later issues add sections and keys; a
// key this build does not know is an error, so a newer file on an older
// binary is refused rather than half-applied.
type Config struct {
	Daemon   Daemon   `toml:"daemon"`
	Logs     Logs     `toml:"logs"`
	Verdict  Verdict  `toml:"verdict"`
	Datapath Datapath `toml:"datapath"`
	Store    Store    `toml:"store"`
	Geo      Geo      `toml:"geo"`
	Alerts   Alerts   `toml:"alerts"`
}

// Daemon is how the daemon runs.
type Daemon struct {
	// StateDir holds the database.
	StateDir string `toml:"state_dir"`
	// PinDir is the bpffs directory of the pinned program and maps.
	PinDir string `toml:"pin_dir"`
	// Socket is the control socket the CLI talks to.
	Socket string `toml:"socket"`
	// Interfaces to attach to; empty means those of the default routes.
	Interfaces []string `toml:"interfaces"`
	// LogFormat is "text" or "json".
	LogFormat string `toml:"log_format"`
	// LogLevel is "debug", "info", "warn" or "error".
	LogLevel string `toml:"log_level"`
	// Metrics is where the daemon serves Prometheus metrics over HTTP
	// (host:port); empty serves none.
	Metrics string `toml:"metrics"`
}

// Logs is what the daemon reads.
type Logs struct {
	// Files are paths or globs; those that do not exist are watched for.
	Files []string `toml:"files"`
	// Journal says whether to read the systemd journal.
	Journal Journal `toml:"journal"`
	// ReadFromStart reads files met for the first time from their start
	// instead of their end.
	ReadFromStart bool `toml:"read_from_start"`
	// Rules are custom parser rules for software the built-in rules do not
	// know, or log formats they miss.
	Rules []Rule `toml:"rule"`
}

// Rule is a custom parser rule: a regular expression with a named group
// "ip" (and optionally "user"), the service it is about and the kind of
// event a match is.
type Rule struct {
	Name    string `toml:"name"`
	Service string `toml:"service"`
	Kind    string `toml:"kind"`
	Pattern string `toml:"pattern"`
}

// Journal says whether the daemon reads the systemd journal.
type Journal string

// The journal settings.
const (
	// JournalAuto reads the journal when none of the log files exists.
	JournalAuto Journal = "auto"
	// JournalOn always reads it (as well as the files).
	JournalOn Journal = "true"
	// JournalOff never does.
	JournalOff Journal = "false"
)

func (j *Journal) decodeTOML(v any) error {
	switch v := v.(type) {
	case bool:
		*j = JournalOff
		if v {
			*j = JournalOn
		}
		return nil
	case string:
		switch Journal(v) {
		case JournalAuto, JournalOn, JournalOff:
			*j = Journal(v)
			return nil
		}
		return fmt.Errorf("invalid value %q (want \"auto\", true or false)", v)
	}
	return fmt.Errorf("want \"auto\", true or false, got %s", describe(v))
}

// Verdict is when sources are banned, and for how long.
type Verdict struct {
	// Threshold failures within Window ban a source for Ban.
	Threshold int      `toml:"threshold"`
	Window    Duration `toml:"window"`
	Ban       Duration `toml:"ban"`
	// EscalationFactor multiplies the ban each time a source is banned
	// again, up to MaxBan; bans are remembered for Remember.
	EscalationFactor float64  `toml:"escalation_factor"`
	MaxBan           Duration `toml:"max_ban"`
	Remember         Duration `toml:"remember"`
	// MaxSources caps the sources whose failures are counted; the stalest
	// are forgotten first.
	MaxSources int `toml:"max_sources"`
	// Allowlist is never banned, on top of loopback and this host's own
	// addresses. An address stands for its /32 or /128.
	Allowlist []netip.Prefix `toml:"allowlist"`
	Recidive  Recidive       `toml:"recidive"`
	Squad     Squad          `toml:"squad"`
}

// Recidive bans a source that keeps coming back: Bans bans within Within
// earn a ban of Ban.
type Recidive struct {
	Bans   int      `toml:"bans"`
	Within Duration `toml:"within"`
	Ban    Duration `toml:"ban"`
}

// Squad bans a whole prefix when Sources of its sources are banned within
// Within: an IPv4 /IPv4Prefix or an IPv6 /IPv6Prefix (IPv6 sources count per
// /64).
type Squad struct {
	Sources    int      `toml:"sources"`
	Within     Duration `toml:"within"`
	IPv4Prefix int      `toml:"ipv4_prefix"`
	IPv6Prefix int      `toml:"ipv6_prefix"`
	Ban        Duration `toml:"ban"`
}

// Datapath is what the kernel program enforces.
type Datapath struct {
	Ports     Ports      `toml:"ports"`
	RateLimit RateLimits `toml:"rate_limit"`
	Capacity  Capacity   `toml:"capacity"`
}

// Ports are the protected ports of each class.
type Ports struct {
	MX   []uint16 `toml:"mx"`
	Auth []uint16 `toml:"auth"`
}

// RateLimits are the per-source SYN rate limits of each port class.
type RateLimits struct {
	MX   RateLimit `toml:"mx"`
	Auth RateLimit `toml:"auth"`
}

// RateLimit is a token bucket: Burst SYNs at once, refilled at PerMinute a
// minute. PerMinute 0 turns the limit off.
type RateLimit struct {
	PerMinute uint32 `toml:"per_minute"`
	Burst     uint32 `toml:"burst"`
}

// Capacity is how many entries the kernel maps hold. They are fixed when
// the maps are created; changing them takes `portcullis detach --all
// --purge`, which removes every ban from the kernel.
type Capacity struct {
	Bans       uint32 `toml:"bans"`
	PrefixBans uint32 `toml:"prefix_bans"`
	Allowlist  uint32 `toml:"allowlist"`
	Sources    uint32 `toml:"sources"`
}

// Store is the database.
type Store struct {
	// Retention is how long events and ended bans are kept.
	Retention Duration `toml:"retention"`
}

// Geo is country policy, from a MaxMind-format (.mmdb) database.
type Geo struct {
	// Database is the .mmdb file; empty: no geo policy and no countries in
	// the store.
	Database string      `toml:"database"`
	Policy   GeoPolicies `toml:"policy"`
}

// GeoPolicies is the country policy of each port class; All sees every
// packet from the source, the others SYNs to their ports.
type GeoPolicies struct {
	MX   GeoPolicy `toml:"mx"`
	Auth GeoPolicy `toml:"auth"`
	All  GeoPolicy `toml:"all"`
}

// GeoPolicy is a deny-list or an allow-list of ISO 3166 country codes (an
// empty list is no list). Unknown ("pass" or "drop") decides addresses the
// database does not place.
type GeoPolicy struct {
	Deny    []string `toml:"deny"`
	Allow   []string `toml:"allow"`
	Unknown string   `toml:"unknown"`
}

// Active reports whether the policy drops anything.
func (p GeoPolicy) Active() bool {
	return len(p.Deny) > 0 || len(p.Allow) > 0 || p.Unknown == "drop"
}

// Alerts is who is told what, and how.
type Alerts struct {
	// To are the mail recipients; From is the sender.
	To   []string `toml:"to"`
	From string   `toml:"from"`
	// Channels in order of preference: a message goes to the first that
	// takes it (and always to the daemon's log).
	Channels []AlertChannel `toml:"channel"`
	// Cooldown holds back repeats of one alert for this long.
	Cooldown Duration `toml:"cooldown"`
	// Digest sends a summary of the last 24 hours once a day.
	Digest bool `toml:"digest"`
	// CheckInterval is how often the daemon looks for trouble.
	CheckInterval Duration     `toml:"check_interval"`
	Attack        AttackAlerts `toml:"attack"`
	Health        HealthAlerts `toml:"health"`
}

// AlertChannel is one way to reach a person.
type AlertChannel struct {
	Name string `toml:"name"`
	// Type is "sendmail", "smtp" or "webhook".
	Type string `toml:"type"`
	// Command is the sendmail program and its arguments.
	Command string `toml:"command"`
	// Address is the SMTP server (host:port), StartTLS whether to upgrade
	// when it offers to.
	Address  string `toml:"address"`
	StartTLS bool   `toml:"starttls"`
	// CAFile verifies the server's STARTTLS certificate against this CA
	// (PEM) instead of the system's roots: a local MTA's own CA.
	CAFile string `toml:"ca_file"`
	// URL and Format ("slack" or "json") are the webhook's.
	URL    string `toml:"url"`
	Format string `toml:"format"`
}

// AttackAlerts are when an attack is worth telling a person.
type AttackAlerts struct {
	FailuresPerMinute   int      `toml:"failures_per_minute"`
	BaselineFactor      float64  `toml:"baseline_factor"`
	MinFailures         int      `toml:"min_failures"`
	SYNsPerMinute       int      `toml:"syns_per_minute"`
	SourceSYNsPerMinute int      `toml:"source_syns_per_minute"`
	BanStorm            int      `toml:"ban_storm"`
	BanStormWithin      Duration `toml:"ban_storm_within"`
	PrefixSources       int      `toml:"prefix_sources"`
	CountrySources      int      `toml:"country_sources"`
}

// HealthAlerts are when portcullis's own state is worth telling.
type HealthAlerts struct {
	// Stale: a heartbeat older than this is a dead or hung daemon.
	Stale Duration `toml:"stale"`
	// Stall: a log behind and not advancing for this long is stalled.
	Stall Duration `toml:"stall"`
	// Lag: unread lines older than this are reported.
	Lag Duration `toml:"lag"`
	// MapFullPercent: a kernel map this full is reported.
	MapFullPercent int `toml:"map_full_percent"`
	// Unmatched: this many lines within 10 minutes that read like failed
	// logins but that no rule reads are reported (0: never).
	Unmatched int `toml:"unmatched"`
}

const day = 24 * time.Hour

// Default is the configuration when no file says otherwise.
func Default() Config {
	return Config{
		Daemon: Daemon{
			StateDir:   "/var/lib/portcullis",
			PinDir:     "/sys/fs/bpf/portcullis",
			Socket:     "/run/portcullis/portcullis.sock",
			Interfaces: []string{},
			LogFormat:  "text",
			LogLevel:   "info",
		},
		Logs: Logs{
			Files:   []string{"/var/log/mail.log", "/var/log/maillog", "/var/log/auth.log", "/var/log/secure"},
			Journal: JournalAuto,
			Rules:   []Rule{},
		},
		Verdict: Verdict{
			Threshold:        5,
			Window:           Duration(10 * time.Minute),
			Ban:              Duration(time.Hour),
			EscalationFactor: 4,
			MaxBan:           Duration(30 * day),
			Remember:         Duration(30 * day),
			MaxSources:       1_000_000,
			Allowlist:        []netip.Prefix{},
			Recidive:         Recidive{Bans: 3, Within: Duration(day), Ban: Duration(7 * day)},
			Squad:            Squad{Sources: 4, Within: Duration(time.Hour), IPv4Prefix: 24, IPv6Prefix: 48, Ban: Duration(day)},
		},
		Datapath: Datapath{
			Ports: Ports{
				MX:   []uint16{25},
				Auth: []uint16{465, 587, 110, 995, 143, 993, 4190},
			},
			RateLimit: RateLimits{
				MX:   RateLimit{PerMinute: 120, Burst: 60},
				Auth: RateLimit{PerMinute: 30, Burst: 30},
			},
			Capacity: Capacity{Bans: 1_000_000, PrefixBans: 65536, Allowlist: 4096, Sources: 1_000_000},
		},
		Store: Store{Retention: Duration(400 * day)},
		Geo: Geo{Policy: GeoPolicies{
			MX:   GeoPolicy{Deny: []string{}, Allow: []string{}, Unknown: "pass"},
			Auth: GeoPolicy{Deny: []string{}, Allow: []string{}, Unknown: "pass"},
			All:  GeoPolicy{Deny: []string{}, Allow: []string{}, Unknown: "pass"},
		}},
		Alerts: Alerts{
			To:            []string{"root"},
			From:          "portcullis",
			Channels:      []AlertChannel{},
			Cooldown:      Duration(time.Hour),
			CheckInterval: Duration(10 * time.Second),
			Attack: AttackAlerts{
				FailuresPerMinute: 120, BaselineFactor: 10, MinFailures: 30,
				SYNsPerMinute: 20000, SourceSYNsPerMinute: 1200,
				BanStorm: 50, BanStormWithin: Duration(10 * time.Minute), PrefixSources: 16,
				CountrySources: 100,
			},
			Health: HealthAlerts{
				Stale: Duration(30 * time.Second), Stall: Duration(30 * time.Second),
				Lag: Duration(5 * time.Minute), MapFullPercent: 90, Unmatched: 10,
			},
		},
	}
}
