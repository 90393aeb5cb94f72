package verdict

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"time"
)

// ManualBan records an administrator's ban of p of the given scope until
// the given time (zero: permanent). The engine makes no decision of it; it
// holds it against the source when escalating and counting recidive, and
// suppresses the source's events while it lasts. A prefix that is neither one source nor one squad
// (a /16, say) is the kernel's business only.
func (e *Engine) ManualBan(p netip.Prefix, scope Scope, until, now time.Time) {
	e.ban(canonical(p), OriginManual, scope, now.UnixNano(), stamp(until))
}

// Unban forgets what the engine holds against every source in p: failure
// counters, ban history, squad membership, and the squad's own ban when p
// covers it. Events from p stamped at or before now are ignored from then
// on, so a log backlog does not re-ban it at once.
func (e *Engine) Unban(p netip.Prefix, now time.Time) {
	p = canonical(p)
	t := now.UnixNano()
	if e.isSource(p) {
		src := e.sourceKey(p.Addr())
		if slot, ok := e.counters.get(src); ok {
			e.counters.remove(slot)
		}
		e.clear(&e.history.nodes[e.remember(src)].val, t)
	} else {
		for slot := range e.counters.all {
			if p.Overlaps(e.sourcePrefix(e.counters.nodes[slot].key.addr())) {
				e.counters.remove(slot)
			}
		}
		for slot := range e.history.all {
			if p.Overlaps(e.sourcePrefix(e.history.nodes[slot].key.addr())) {
				e.clear(&e.history.nodes[slot].val, t)
			}
		}
		// Sources in p the engine knew nothing of (their events were
		// suppressed under a subnet ban, say) are discounted through p.
		e.unbans = append(e.unbans, unban{prefix: p, at: t})
	}
	for prefix, s := range e.squads {
		if !p.Overlaps(prefix) {
			continue
		}
		if p.Bits() <= prefix.Bits() {
			s.until, s.offences = 0, 0
		}
		s.members = slices.DeleteFunc(s.members, func(m member) bool {
			return p.Overlaps(e.sourcePrefix(m.source.addr()))
		})
	}
}

func (e *Engine) clear(h *history, t int64) {
	h.offences, h.until, h.starts, h.cleared = 0, 0, h.starts[:0], t
}

// Restore rebuilds ban history from the store when the daemon starts, so a
// restart neither resets escalation nor forgets a squad in progress nor
// re-bans sources that are still banned. Call it before the first Observe.
func (e *Engine) Restore(bans []PastBan) {
	type step struct {
		at  int64
		ban PastBan
		// lift: the ban was lifted early at this step's time
		lift bool
	}
	var steps []step
	for _, b := range bans {
		if !b.Prefix.IsValid() || b.Origin == OriginGeo || b.Origin == OriginImport {
			continue
		}
		steps = append(steps, step{at: b.Start.UnixNano(), ban: b})
		if !b.Lifted.IsZero() {
			steps = append(steps, step{at: b.Lifted.UnixNano(), ban: b, lift: true})
		}
	}
	slices.SortStableFunc(steps, func(a, b step) int { return cmp.Compare(a.at, b.at) })
	for _, s := range steps {
		p := canonical(s.ban.Prefix)
		if s.lift {
			e.Unban(p, time.Unix(0, s.at))
			continue
		}
		e.ban(p, s.ban.Origin, s.ban.Scope, s.at, stamp(s.ban.Expires))
	}
}

// unban is an Unban of a prefix wider than one source.
type unban struct {
	prefix netip.Prefix
	at     int64
}

// ban records a ban of p made at t until until: in the source's history, or
// as its squad's ban.
func (e *Engine) ban(p netip.Prefix, origin Origin, scope Scope, t, until int64) {
	switch {
	case e.isSource(p):
		src := e.sourceKey(p.Addr())
		if slot, ok := e.counters.get(src); ok {
			e.counters.remove(slot)
		}
		h := &e.history.nodes[e.remember(src)].val
		e.forget(h, t)
		e.record(h, t, until, scope)
		if origin == OriginLog || origin == OriginRecidive {
			e.addMember(e.squadPrefix(p.Addr()), src, t)
		}
	case p.Bits() == e.squadPrefix(p.Addr()).Bits():
		s, ok := e.squads[p]
		if !ok {
			s = &squad{}
			e.squads[p] = s
		}
		if origin == OriginSubnet {
			if e.past(s.until, t) {
				s.offences = 0
			}
			s.offences++
			s.members = s.members[:0]
		}
		if s.until <= t || scope == ScopeAll {
			s.scope = scope
		}
		s.until = max(s.until, until)
	}
}

// isSource reports whether p is one source or a part of one: an IPv4
// address, or an IPv6 prefix at least as long as SourceBitsV6.
func (e *Engine) isSource(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return p.Bits() == 32
	}
	return p.Bits() >= e.cfg.SourceBitsV6
}

// stamp is t in unix nanoseconds, with the zero time (permanent) as the
// largest.
func stamp(t time.Time) int64 {
	if t.IsZero() {
		return math.MaxInt64
	}
	return t.UnixNano()
}

// Expire drops what can no longer lead to a ban: counters whose newest
// failure is a Window old, histories HistoryTTL past their last ban (and
// unban), squads with neither recent members nor a ban to remember, unbans
// of wide prefixes a Window old (a backlog is read by then). Call it now
// and then (once a minute is plenty); Observe is correct without it, only
// memory is not given back.
func (e *Engine) Expire(now time.Time) {
	t := now.UnixNano()
	for slot := range e.counters.all {
		times, _ := e.ring(slot)
		if int64(slices.Max(times)) <= now.Add(-e.cfg.Window).Unix() {
			e.counters.remove(slot)
		}
	}
	for slot := range e.history.all {
		h := &e.history.nodes[slot].val
		banOver := h.until == 0 || e.past(h.until, t)
		unbanOver := h.cleared == 0 || h.cleared < t-int64(e.cfg.HistoryTTL)
		if banOver && unbanOver {
			e.history.remove(slot)
		}
	}
	e.unbans = slices.DeleteFunc(e.unbans, func(u unban) bool { return u.at < t-int64(e.cfg.Window) })
	for prefix, s := range e.squads {
		s.members = slices.DeleteFunc(s.members, func(m member) bool { return m.at <= t-int64(e.cfg.SquadWindow) })
		if len(s.members) == 0 && (s.until == 0 || e.past(s.until, t)) {
			delete(e.squads, prefix)
		}
	}
}
