// Package verdict decides which sources to ban from what the logs say they
// did.
//
// An Engine counts weighted login failures per source in a sliding window,
// bans a source that reaches the threshold, lengthens the ban each time the
// same source comes back, gives recidivists a week, and bans a whole /24 or
// /48 when a squad of its addresses gets banned within an hour. Decisions
// are pure functions of the events, the explicit now passed in, and the
// history handed to Restore: the engine reads no clock, no kernel map and
// no disk, so the daemon applies and records what it decides and the tests
// drive it through any scenario in microseconds.
package verdict

import (
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// Engine turns events into ban decisions. It is not safe for concurrent
// use: the daemon serialises calls from its one run loop.
//
// Rules the issue left open, as decided here:
//   - A source with a ban the engine knows to be active (its own, a manual
//     one, or a restored one, or its squad's subnet ban) gets no new
//     decision: its later events are counted in Stats.Suppressed and dropped.
//     They are lines written before the kernel took the ban (a client with
//     several connections open), and re-banning would only duplicate the ban
//     the daemon already holds. Escalation happens on the next ban after this
//     one ends. The exception: under a mail-scope ban, events of services
//     outside Config.MailServices (ssh) still count, because the ban does not
//     stop them; reaching the threshold again escalates to a longer ban of
//     scope all for the same prefix, which the daemon puts in place of the
//     old one.
//   - Under Config.Scope mail, a ban whose evidence includes a service
//     outside the mail services is of scope all, for the same reason.
//   - A ban starts at now, not at the time of the deciding event, so a
//     daemon catching up on a backlog of log lines still bans for the full
//     time. The window is judged on event times only, to the second.
//   - A successful login does not reset a source's failures: a sprayer who
//     owns one account would otherwise wash its counter between attempts.
//   - An IPv6 source is counted and banned as its /64. If that /64 holds an
//     allowlisted address, the ban is narrowed to the attacking /128 and the
//     reason says so.
//   - A squad prefix that holds an allowlisted address is never banned; its
//     members stay banned one by one and the deciding member's reason says
//     why the prefix was not.
//   - Manual bans count toward escalation and recidive (the administrator
//     judged the source hostile) but not toward squads, which extend a ban to
//     neighbours nobody named and so rest on log evidence only.
//   - Unban forgets the source's counters and its ban history, and ignores
//     events stamped at or before the unban: lifting a ban says the source
//     is not to be held against its past.
type Engine struct {
	cfg   Config
	allow allowlist

	// kinds are the kinds that count, by their tag number; weights theirs.
	kinds   []logs.Kind
	kind    map[logs.Kind]uint8
	weights []int

	counters *lru[counter]
	times    []uint32 // Threshold failure times (unix seconds) per counter slot
	tags     []uint16 // Threshold kind<<8|service per counter slot

	services []string
	service  map[string]uint8

	history *lru[history]
	squads  map[netip.Prefix]*squad
	unbans  []unban // of prefixes wider than a source, until Expire drops them

	stats Stats
}

// Stats counts what the engine saw and did.
type Stats struct {
	Events     uint64 // events observed
	Ignored    uint64 // events from allowlisted sources
	Uncounted  uint64 // events of kinds that weigh nothing, or without an address
	Suppressed uint64 // events of sources under a ban, or older than their unban
	Decisions  uint64 // bans decided
	Tracked    int    // sources with failure counters now
	Evicted    uint64 // counters evicted at MaxSources
	Remembered int    // sources with a ban history now
	Forgotten  uint64 // ban histories evicted at MaxSources
}

// maxServices is what fits in a tag's low byte; the last one is "other".
const maxServices = 256

// counter is a ring of the last Threshold failure times of one source, kept
// beside the slab in Engine.times: "Threshold within Window" needs no more.
// Times are unix seconds in 32 bits (good to 2106): half the memory of
// nanoseconds, and log lines rarely carry more than seconds anyway.
type counter struct {
	head uint8 // the next position to write
	n    uint8 // positions written
}

// history is what the engine remembers of a source's bans.
type history struct {
	offences int     // bans remembered for escalation
	until    int64   // when the latest ban ends (unix ns); math.MaxInt64: never
	cleared  int64   // an unban: events at or before it are not evidence
	scope    Scope   // of the latest ban
	starts   []int64 // the latest RecidiveBans-1 ban starts, oldest first
}

// New returns an engine for cfg, or every problem cfg has.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("verdict config: %w", err)
	}
	e := &Engine{
		cfg:      cfg,
		counters: newLRU[counter](cfg.MaxSources),
		history:  newLRU[history](cfg.MaxSources),
		service:  make(map[string]uint8),
		kind:     make(map[logs.Kind]uint8),
		squads:   make(map[netip.Prefix]*squad),
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Weights)) {
		if w := cfg.Weights[k]; w > 0 {
			e.kind[k] = uint8(len(e.kinds))
			e.kinds = append(e.kinds, k)
			e.weights = append(e.weights, w)
		}
	}
	return e, nil
}

// SetAllowlist replaces the prefixes never to ban: the configured ones,
// loopback and every address of this host, as the daemon keeps them
// current. Counters of sources now allowlisted are dropped.
func (e *Engine) SetAllowlist(ps []netip.Prefix) {
	e.allow = newAllowlist(ps)
	for slot := range e.counters.all {
		if e.allow.covers(e.sourcePrefix(e.counters.nodes[slot].key.addr())) {
			e.counters.remove(slot)
		}
	}
}

// Stats returns the engine's counts.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Tracked = e.counters.len()
	s.Remembered = e.history.len()
	return s
}

// Observe counts one event and returns the bans it leads to: none, a source
// ban, or a source ban and the ban of its squad's prefix.
func (e *Engine) Observe(ev logs.Event, now time.Time) []Decision {
	e.stats.Events++
	addr := ev.Addr.Unmap().WithZone("")
	if !addr.IsValid() {
		e.stats.Uncounted++
		return nil
	}
	if e.allow.contains(addr) {
		e.stats.Ignored++
		return nil
	}
	kind, counts := e.kind[ev.Kind]
	if !counts {
		e.stats.Uncounted++
		return nil
	}
	at := ev.Time
	if at.IsZero() {
		at = now
	}
	units := max(ev.Attempts, 1) * e.weights[kind]
	t, tnow := at.UnixNano(), now.UnixNano()
	src := e.sourceKey(addr)
	if e.banned(src, addr, ev.Service, t, tnow) {
		e.stats.Suppressed++
		return nil
	}

	slot, ok := e.counters.get(src)
	if ok {
		e.counters.touch(slot)
	} else {
		var evicted bool
		slot, evicted = e.counters.add(src)
		if evicted {
			e.stats.Evicted++
		}
		if need := (int(slot) + 1) * e.cfg.Threshold; need > len(e.times) {
			// Slots are handed out in order, so the slab grows by one ring.
			e.times = slices.Grow(e.times, e.cfg.Threshold)[:need]
			e.tags = slices.Grow(e.tags, e.cfg.Threshold)[:need]
		}
	}
	c := &e.counters.nodes[slot].val
	times, tags := e.ring(slot)
	if c.n == 0 {
		clear(times) // a reused slot holds its last owner's times
	}
	tag := uint16(kind)<<8 | uint16(e.serviceTag(ev.Service))
	for range min(units, e.cfg.Threshold) {
		times[c.head], tags[c.head] = seconds(at), tag
		c.head = uint8((int(c.head) + 1) % e.cfg.Threshold)
		c.n = uint8(min(int(c.n)+1, e.cfg.Threshold))
	}
	if int(c.n) < e.cfg.Threshold {
		return nil
	}
	first, last := slices.Min(times), slices.Max(times)
	span := time.Duration(last-first) * time.Second
	if span > e.cfg.Window {
		return nil
	}
	evidence := e.cfg.Threshold + max(units-e.cfg.Threshold, 0)
	reason, services := e.explain(tags, evidence-e.cfg.Threshold, tag, span)
	e.counters.remove(slot)
	return e.banSource(src, addr, now, OriginLog, reason, evidence, services)
}

// banned reports whether src (at addr, seen at t on service) is under a
// ban the engine knows of that covers the service, or t predates the
// source's last unban.
func (e *Engine) banned(src key, addr netip.Addr, service string, t, now int64) bool {
	covers := func(scope Scope) bool { return scope == ScopeAll || slices.Contains(e.cfg.MailServices, service) }
	if slot, ok := e.history.get(src); ok {
		h := &e.history.nodes[slot].val
		if (h.until > now && covers(h.scope)) || t <= h.cleared {
			return true
		}
	}
	if len(e.squads) > 0 {
		if s, ok := e.squads[e.squadPrefix(addr)]; ok && s.until > now && covers(s.scope) {
			return true
		}
	}
	for _, u := range e.unbans {
		if t <= u.at && u.prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// banSource bans the source src and, if that completes a squad, its prefix.
func (e *Engine) banSource(src key, addr netip.Addr, now time.Time, origin Origin, reason string, evidence int, services []string) []Decision {
	tnow := now.UnixNano()
	slot := e.remember(src)
	h := &e.history.nodes[slot].val
	e.forget(h, tnow)
	h.starts = slices.DeleteFunc(h.starts, func(s int64) bool { return s <= tnow-int64(e.cfg.RecidiveWindow) })
	offence := h.offences + 1
	d := escalate(e.cfg.BanTime, e.cfg.Factor, offence, e.cfg.MaxBanTime)
	if offence > 1 {
		reason += fmt.Sprintf("; ban %d in a row: %s", offence, human(d))
	}
	if len(h.starts)+1 >= e.cfg.RecidiveBans {
		origin = OriginRecidive
		d = max(d, e.cfg.RecidiveBanTime)
		reason += fmt.Sprintf("; %d bans in %s: recidive %s", len(h.starts)+1, human(e.cfg.RecidiveWindow), human(d))
	}
	scope := e.cfg.Scope
	if scope == ScopeMail {
		if i := slices.IndexFunc(services, func(s string) bool { return !slices.Contains(e.cfg.MailServices, s) }); i >= 0 {
			// A mail-scope ban would not stop what the source was seen doing.
			scope = ScopeAll
			reason += fmt.Sprintf("; scope all: %s is not a mail service", services[i])
		}
	}
	e.record(h, tnow, tnow+int64(d), scope)

	prefix := e.sourcePrefix(addr)
	if a, ok := e.allow.overlaps(prefix); ok {
		reason += fmt.Sprintf("; only %s: %s holds allowlisted %s", addr, prefix, a)
		prefix = netip.PrefixFrom(addr, addr.BitLen())
	}
	ban := Decision{
		Prefix: prefix, Scope: scope, Origin: origin,
		Start: now, Expires: now.Add(d),
		Evidence: evidence, Services: services, Offence: offence,
	}
	sub, note := e.joinSquad(src, addr, now)
	ban.Reason = reason + note
	out := []Decision{ban}
	if sub != nil {
		out = append(out, *sub)
	}
	e.stats.Decisions += uint64(len(out))
	return out
}

// remember returns src's history slot, making one if need be.
func (e *Engine) remember(src key) int32 {
	slot, ok := e.history.get(src)
	if !ok {
		var evicted bool
		slot, evicted = e.history.add(src)
		if evicted {
			e.stats.Forgotten++
		}
	}
	e.history.touch(slot)
	return slot
}

// forget clears a history whose last ban ended more than HistoryTTL
// before t.
func (e *Engine) forget(h *history, t int64) {
	if e.past(h.until, t) {
		h.offences, h.until, h.starts = 0, 0, h.starts[:0]
	}
}

// past reports whether a ban that ended at until is more than HistoryTTL
// before t, so no longer held against its prefix.
func (e *Engine) past(until, t int64) bool {
	return until != 0 && until < math.MaxInt64-int64(e.cfg.HistoryTTL) && until+int64(e.cfg.HistoryTTL) < t
}

// record adds a ban from start to until (math.MaxInt64: permanent) to h.
func (e *Engine) record(h *history, start, until int64, scope Scope) {
	h.offences++
	if h.until <= start || scope == ScopeAll {
		// A ban may widen the scope of one in force, never narrow it.
		h.scope = scope
	}
	h.until = max(h.until, until)
	h.starts = append(h.starts, start)
	if n := e.cfg.RecidiveBans - 1; len(h.starts) > n {
		h.starts = append(h.starts[:0], h.starts[len(h.starts)-n:]...)
	}
}

// seconds is t as a ring holds it, clamped to what 32 bits hold.
func seconds(t time.Time) uint32 {
	return uint32(min(max(t.Unix(), 0), math.MaxUint32))
}

// escalate is base times factor^(offence-1), capped at ceiling.
func escalate(base time.Duration, factor float64, offence int, ceiling time.Duration) time.Duration {
	d := float64(base) * math.Pow(factor, float64(offence-1))
	if d >= float64(ceiling) || math.IsInf(d, 0) || math.IsNaN(d) {
		return ceiling
	}
	return time.Duration(d)
}

// ring returns slot's failure times and tags.
func (e *Engine) ring(slot int32) ([]uint32, []uint16) {
	n := e.cfg.Threshold
	i := int(slot) * n
	return e.times[i : i+n : i+n], e.tags[i : i+n : i+n]
}

// serviceTag interns a service name in a byte; past 255 names, the rest
// are "other".
func (e *Engine) serviceTag(name string) uint8 {
	if name == "" {
		name = "unknown"
	}
	if i, ok := e.service[name]; ok {
		return i
	}
	if len(e.services) == maxServices-1 {
		return maxServices - 1
	}
	i := uint8(len(e.services))
	e.services = append(e.services, name)
	e.service[name] = i
	return i
}

func (e *Engine) serviceName(i uint8) string {
	if int(i) < len(e.services) {
		return e.services[i]
	}
	return "other"
}

// explain says what a full ring holds: "4 auth failures and 1 protocol
// abuse in 3m12s (imap, smtp)". extra attempts of the last event's tag did
// not fit in the ring.
func (e *Engine) explain(tags []uint16, extra int, last uint16, span time.Duration) (string, []string) {
	perKind := make([]int, len(e.kinds))
	var services []string
	for _, tag := range tags {
		perKind[tag>>8]++
		services = append(services, e.serviceName(uint8(tag)))
	}
	perKind[last>>8] += extra
	slices.Sort(services)
	services = slices.Compact(services)
	var parts []string
	for k, n := range perKind {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, kindName(e.kinds[k], n)))
		}
	}
	return fmt.Sprintf("%s in %s (%s)", strings.Join(parts, " and "), human(span), strings.Join(services, ", ")), services
}

// kindName names n events of kind k for a reason.
func kindName(k logs.Kind, n int) string {
	names := map[logs.Kind][2]string{
		logs.KindAuthFailure:   {"auth failure", "auth failures"},
		logs.KindProtocolAbuse: {"protocol abuse", "protocol abuses"},
		logs.KindRelayDenied:   {"relay denial", "relay denials"},
		logs.KindDNSBL:         {"DNSBL listing", "DNSBL listings"},
	}
	name, ok := names[k]
	if !ok {
		return string(k) // a kind newer than this table: its own name
	}
	if n == 1 {
		return name[0]
	}
	return name[1]
}

// human prints a duration without the zero tails time.Duration.String
// leaves: 1h, 4h, 3m12s, 7d.
func human(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.String()
	s = strings.Replace(s, "m0s", "m", 1)
	s = strings.Replace(s, "h0m", "h", 1)
	return s
}

// sourceKey is the key addr is counted under: IPv4 addresses alone, IPv6
// by their /SourceBitsV6.
func (e *Engine) sourceKey(addr netip.Addr) key {
	return key(e.sourcePrefix(addr).Addr().As16())
}

func (e *Engine) sourcePrefix(addr netip.Addr) netip.Prefix {
	if addr.Is4() {
		return netip.PrefixFrom(addr, 32)
	}
	p, _ := addr.Prefix(e.cfg.SourceBitsV6)
	return p
}

// addr is the first address of the source k stands for.
func (k key) addr() netip.Addr { return netip.AddrFrom16(k).Unmap() }
