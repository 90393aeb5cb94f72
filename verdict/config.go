package verdict

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// Config holds the engine's thresholds. Start from DefaultConfig and change
// what differs; New refuses a Config that does not Validate.
type Config struct {
	// Threshold weighted failures within Window ban a source.
	Threshold int
	Window    time.Duration
	// Weights says how many failures one attempt of each kind counts for.
	// A kind missing from the map counts for nothing; kinds the parsers may
	// add later (invalid_user, say) can be weighed here by name. See
	// DefaultWeights for why the defaults are what they are.
	Weights map[logs.Kind]int

	// BanTime is a source's first ban; each repeat remembered in
	// HistoryTTL lasts Factor times the one before, up to MaxBanTime.
	BanTime    time.Duration
	Factor     float64
	MaxBanTime time.Duration
	// HistoryTTL is how long after its last ban ends a source's ban history
	// is remembered for escalation and recidive.
	HistoryTTL time.Duration
	// Scope is the scope of the bans the engine decides. Under ScopeMail,
	// MailServices are the services whose ports a mail-scope ban drops;
	// evidence from any other service (ssh) makes a ban of scope all.
	Scope        Scope
	MailServices []string

	// RecidiveBans bans within RecidiveWindow make the last of them last
	// RecidiveBanTime (or the escalated time, whichever is longer).
	RecidiveBans    int
	RecidiveWindow  time.Duration
	RecidiveBanTime time.Duration

	// SquadSources distinct sources banned within SquadWindow in one
	// /SquadBitsV4 or /SquadBitsV6 ban that prefix for SquadBanTime
	// (escalated like a source's ban when the squad comes back).
	SquadSources int
	SquadWindow  time.Duration
	SquadBanTime time.Duration
	SquadBitsV4  int
	SquadBitsV6  int

	// SourceBitsV6 is the prefix an IPv6 source is counted and banned as:
	// 64, because one host (or one customer) owns a /64 and picks any of its
	// 2^64 addresses at will, so counting /128s would count nothing.
	SourceBitsV6 int

	// MaxSources caps the sources with failure counters, and separately
	// the sources with a remembered ban history; past it the stalest are
	// evicted and counted in Stats.
	MaxSources int
}

// DefaultWeights: an auth failure is the thing being counted. Protocol
// abuse (pregreet, pipelining, too many errors) is what spam bots and
// credential sprayers do and no correctly written client does, so it counts
// the same. A relay denial comes just as well from a legitimate server or a
// misconfigured client of a customer, and a DNSBL listing says something
// about an address's past, not about its logins here (postscreen already
// turns it away), so by default neither counts toward a ban.
func DefaultWeights() map[logs.Kind]int {
	return map[logs.Kind]int{
		logs.KindAuthFailure:   1,
		logs.KindProtocolAbuse: 1,
		logs.KindRelayDenied:   0,
		logs.KindDNSBL:         0,
	}
}

// DefaultMailServices are the services the parsers name on the ports of
// maps.DefaultPorts (25, 465, 587, 110, 995, 143, 993, 4190); "dovecot" is
// Dovecot's auth process, which answers for them.
func DefaultMailServices() []string {
	return []string{"smtp", "submission", "submissions", "imap", "pop3", "sieve", "dovecot"}
}

// DefaultConfig is the policy: 5 failures in 10 minutes ban for an
// hour, x4 per repeat up to 30 days, 3 bans in 24 hours a week, 4 banned
// sources of a /24 or /48 within an hour ban the prefix for 24 hours.
//
// History is remembered 30 days after the last ban ends: as long as the
// longest ban, so a source that sat out a 30-day ban and comes straight back
// gets another, not an hour. A squad's prefix holds many hosts of which
// only some are hostile, so its first ban is a day, not a week.
func DefaultConfig() Config {
	return Config{
		Threshold:       5,
		Window:          10 * time.Minute,
		Weights:         DefaultWeights(),
		BanTime:         time.Hour,
		Factor:          4,
		MaxBanTime:      30 * 24 * time.Hour,
		HistoryTTL:      30 * 24 * time.Hour,
		Scope:           ScopeAll,
		MailServices:    DefaultMailServices(),
		RecidiveBans:    3,
		RecidiveWindow:  24 * time.Hour,
		RecidiveBanTime: 7 * 24 * time.Hour,
		SquadSources:    4,
		SquadWindow:     time.Hour,
		SquadBanTime:    24 * time.Hour,
		SquadBitsV4:     24,
		SquadBitsV6:     48,
		SourceBitsV6:    64,
		MaxSources:      1_000_000,
	}
}

// maxKinds is what fits in the high byte of a ring's tags.
const maxKinds = 256

// maxThreshold bounds the per-source ring of failure times, whose
// positions are bytes.
const maxThreshold = 255

// Validate reports every problem with c, one error per field, joined.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	positive := func(field string, d time.Duration) {
		if d <= 0 {
			bad(field, "must be positive, is %s", d)
		}
	}
	if c.Threshold < 1 || c.Threshold > maxThreshold {
		bad("threshold", "must be 1 to %d, is %d", maxThreshold, c.Threshold)
	}
	positive("window", c.Window)
	counted := false
	for _, k := range slices.Sorted(maps.Keys(c.Weights)) {
		w := c.Weights[k]
		switch {
		case k == "":
			bad("weights", "a weight for an empty kind")
		case k == logs.KindAuthSuccess && w != 0:
			bad("weights."+string(k), "a successful login must not count toward a ban")
		case w < 0 || w > maxThreshold:
			bad("weights."+string(k), "must be 0 to %d, is %d", maxThreshold, w)
		case w > 0:
			counted = true
		}
	}
	if !counted {
		bad("weights", "no kind of event counts toward a ban")
	}
	if len(c.Weights) > maxKinds {
		bad("weights", "at most %d kinds, has %d", maxKinds, len(c.Weights))
	}
	positive("ban_time", c.BanTime)
	if !(c.Factor >= 1) || math.IsInf(c.Factor, 0) { // NaN fails every comparison
		bad("factor", "must be a finite number of at least 1, is %g", c.Factor)
	}
	if c.MaxBanTime < c.BanTime {
		bad("max_ban_time", "must be at least ban_time (%s), is %s", c.BanTime, c.MaxBanTime)
	}
	if c.HistoryTTL < 0 {
		bad("history_ttl", "must not be negative, is %s", c.HistoryTTL)
	}
	if c.Scope != ScopeAll && c.Scope != ScopeMail {
		bad("scope", "unknown scope %s", c.Scope)
	}
	if c.Scope == ScopeMail && len(c.MailServices) == 0 {
		bad("mail_services", "scope mail needs the services its ports serve")
	}
	if c.RecidiveBans < 2 {
		bad("recidive_bans", "must be at least 2, is %d", c.RecidiveBans)
	}
	positive("recidive_window", c.RecidiveWindow)
	positive("recidive_ban_time", c.RecidiveBanTime)
	if c.SquadSources < 2 {
		bad("squad_sources", "must be at least 2, is %d", c.SquadSources)
	}
	positive("squad_window", c.SquadWindow)
	positive("squad_ban_time", c.SquadBanTime)
	if c.SquadBitsV4 < 8 || c.SquadBitsV4 > 31 {
		bad("squad_bits_v4", "must be 8 to 31, is %d", c.SquadBitsV4)
	}
	if c.SourceBitsV6 < 32 || c.SourceBitsV6 > 128 {
		bad("source_bits_v6", "must be 32 to 128, is %d", c.SourceBitsV6)
	}
	if c.SquadBitsV6 < 16 || c.SquadBitsV6 >= c.SourceBitsV6 {
		bad("squad_bits_v6", "must be 16 to source_bits_v6-1 (%d), is %d", c.SourceBitsV6-1, c.SquadBitsV6)
	}
	if c.MaxSources < 1 {
		bad("max_sources", "must be at least 1, is %d", c.MaxSources)
	}
	return errors.Join(errs...)
}
