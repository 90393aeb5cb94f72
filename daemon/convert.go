package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/logs"
	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/store"
	"github.com/portcullis-mail/portcullis/verdict"
)

// The engine, the kernel and the store each name scopes and origins in
// their own types (the engine may import neither of the others); these
// convert between them by name.

func scopeToMaps(s string) maps.Scope {
	if s == "mail" {
		return maps.ScopeMail
	}
	return maps.ScopeAll
}

func originToMaps(name string) maps.Origin {
	for o := maps.OriginManual; o <= maps.OriginImport; o++ {
		if o.String() == name {
			return o
		}
	}
	return maps.OriginManual
}

func originToVerdict(name string) verdict.Origin {
	for o := verdict.OriginManual; o <= verdict.OriginImport; o++ {
		if o.String() == name {
			return o
		}
	}
	return verdict.OriginManual
}

func scopeToVerdict(s string) verdict.Scope {
	if s == "mail" {
		return verdict.ScopeMail
	}
	return verdict.ScopeAll
}

// decisionBans turns an engine decision into the kernel's and the store's
// form of the ban.
func decisionBans(d verdict.Decision) (maps.Ban, store.Ban) {
	kb := maps.Ban{
		Prefix:  d.Prefix,
		Scope:   scopeToMaps(d.Scope.String()),
		Origin:  originToMaps(d.Origin.String()),
		Reason:  d.Reason,
		Expires: d.Expires,
	}
	sb := store.Ban{
		Prefix:   d.Prefix,
		Scope:    store.Scope(d.Scope.String()),
		Origin:   store.Origin(d.Origin.String()),
		Reason:   d.Reason,
		Start:    d.Start,
		Expires:  d.Expires,
		Evidence: d.Evidence,
	}
	return kb, sb
}

// storeToMaps is a stored ban as the kernel should hold it.
func storeToMaps(b store.Ban) maps.Ban {
	return maps.Ban{
		Prefix:  b.Prefix,
		Scope:   scopeToMaps(string(b.Scope)),
		Origin:  originToMaps(string(b.Origin)),
		Reason:  b.Reason,
		Expires: b.Expires,
	}
}

// mapsToStore is a kernel ban as the store records it, for bans the
// daemon finds in the kernel without a record (made while it was down).
func mapsToStore(b maps.Ban, now time.Time) store.Ban {
	start := b.Starts
	if start.IsZero() || start.After(now) {
		start = now
	}
	return store.Ban{
		Prefix:  b.Prefix,
		Scope:   store.Scope(b.Scope.String()),
		Origin:  store.Origin(b.Origin.String()),
		Reason:  b.Reason,
		Start:   start,
		Expires: b.Expires,
	}
}

func storeToPast(b store.Ban) verdict.PastBan {
	return verdict.PastBan{
		Prefix:  b.Prefix,
		Scope:   scopeToVerdict(string(b.Scope)),
		Origin:  originToVerdict(string(b.Origin)),
		Start:   b.Start,
		Expires: b.Expires,
		Lifted:  b.LiftedAt,
	}
}

// verdictConfig maps the file's [verdict] section onto the engine's config.
func verdictConfig(c config.Verdict) verdict.Config {
	v := verdict.DefaultConfig()
	v.Threshold = c.Threshold
	v.Window = time.Duration(c.Window)
	v.BanTime = time.Duration(c.Ban)
	v.Factor = c.EscalationFactor
	v.MaxBanTime = time.Duration(c.MaxBan)
	v.HistoryTTL = time.Duration(c.Remember)
	v.MaxSources = c.MaxSources
	v.RecidiveBans = c.Recidive.Bans
	v.RecidiveWindow = time.Duration(c.Recidive.Within)
	v.RecidiveBanTime = time.Duration(c.Recidive.Ban)
	v.SquadSources = c.Squad.Sources
	v.SquadWindow = time.Duration(c.Squad.Within)
	v.SquadBitsV4 = c.Squad.IPv4Prefix
	v.SquadBitsV6 = c.Squad.IPv6Prefix
	v.SquadBanTime = time.Duration(c.Squad.Ban)
	return v
}

func toStorePositions(ps []logs.Position) []store.Position {
	out := make([]store.Position, len(ps))
	for i, p := range ps {
		out[i] = store.Position(p)
	}
	return out
}

// positions lets the log sources load where they stopped from the store.
// Saving happens in the daemon, in the transaction that commits the events.
type positions struct{ st *store.Store }

func (p positions) Load(ctx context.Context, key string) (logs.Position, bool, error) {
	sp, ok, err := p.st.Position(ctx, key)
	return logs.Position(sp), ok, err
}

func (p positions) Save(ctx context.Context, ps []logs.Position) error {
	return p.st.Commit(ctx, store.Batch{Positions: toStorePositions(ps)})
}

// loopback is never banned.
func loopback() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}
