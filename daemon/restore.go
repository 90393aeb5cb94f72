package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/store"
	"github.com/portcullis-mail/portcullis/verdict"
)

// restore reconciles the kernel with the store before any log line is
// read. Unexpired stored bans missing from the kernel (after a reboot, or a
// crash between store and kernel) go back in one batch; bans in the kernel
// the store does not know (made with the CLI while the daemon was down) are
// recorded. The engine then learns the ban history, so escalation and
// recidive survive restarts.
// stored are the store's bans in force at now.
func (d *Daemon) restore(ctx context.Context, now time.Time, stored []store.Ban) error {
	kernel, err := d.dp.Maps.Bans()
	if err != nil {
		return fmt.Errorf("read kernel bans: %w", err)
	}
	inKernel := make(map[netip.Prefix]maps.Ban, len(kernel))
	for _, b := range kernel {
		inKernel[b.Prefix] = b
	}

	// Several stored bans may cover one prefix (a mail-scope ban replaced by
	// a longer one of scope all): the kernel holds one, the strongest.
	want := map[netip.Prefix]store.Ban{}
	for _, b := range stored {
		if cur, ok := want[b.Prefix]; !ok || stronger(b, cur) {
			want[b.Prefix] = b
		}
	}
	var missing []maps.Ban
	for p, b := range want {
		kb, ok := inKernel[p]
		if ok && kb.ActiveAt(now) && covers(kb, b) {
			continue
		}
		missing = append(missing, storeToMaps(b))
	}
	start := time.Now()
	if err := d.dp.Maps.AddBans(missing); err != nil {
		return fmt.Errorf("restore %d bans to the kernel: %w", len(missing), err)
	}
	if len(missing) > 0 {
		d.log.Info("restored bans to the kernel", "bans", len(missing), "took", time.Since(start).Round(time.Millisecond))
	}

	var unknown []store.Ban
	for _, kb := range kernel {
		if _, ok := want[kb.Prefix]; !ok && kb.ActiveAt(now) {
			unknown = append(unknown, mapsToStore(kb, now))
		}
	}
	if len(unknown) > 0 {
		if err := d.st.Commit(ctx, store.Batch{Bans: unknown}); err != nil {
			return fmt.Errorf("record %d bans found in the kernel: %w", len(unknown), err)
		}
		d.log.Info("recorded bans made while the daemon was not running", "bans", len(unknown))
	}

	if err := d.restoreHistory(ctx, unknown); err != nil {
		return err
	}
	return d.replayRecent(ctx)
}

// restoreHistory teaches the engine every ban it may still remember, so
// escalation and recidive survive restarts and reloads. extra are bans not
// yet in the store's history query (just recorded).
func (d *Daemon) restoreHistory(ctx context.Context, extra []store.Ban) error {
	now := d.now()
	past, err := d.st.Bans(ctx, store.BanFilter{Since: now.Add(-time.Duration(d.cfg.Verdict.Remember) - time.Duration(d.cfg.Verdict.MaxBan))})
	if err != nil {
		return fmt.Errorf("read ban history: %w", err)
	}
	hist := make([]verdict.PastBan, 0, len(past)+len(extra))
	for _, b := range past {
		hist = append(hist, storeToPast(b))
	}
	for _, b := range extra {
		hist = append(hist, storeToPast(b))
	}
	d.eng.Restore(hist)
	return nil
}

// stronger reports whether a should be the kernel's ban for its prefix
// rather than b: scope all over mail, then the later expiry (never first).
func stronger(a, b store.Ban) bool {
	if a.Scope != b.Scope {
		return a.Scope == store.ScopeAll
	}
	if a.Expires.IsZero() || b.Expires.IsZero() {
		return a.Expires.IsZero() && !b.Expires.IsZero()
	}
	return a.Expires.After(b.Expires)
}

// covers reports whether the kernel's ban already does at least what the
// stored one asks.
func covers(k maps.Ban, s store.Ban) bool {
	if s.Scope == store.ScopeAll && k.Scope != maps.ScopeAll {
		return false
	}
	if k.Expires.IsZero() {
		return true
	}
	// The kernel keeps times to the millisecond.
	return !s.Expires.IsZero() && !k.Expires.Before(s.Expires.Add(-time.Second))
}

// replayRecent gives the engine back the failures of its last window from
// the store, so that its counters survive a restart: a source three
// failures into an attack when the daemon was killed is banned at its
// fifth failure, not its eighth (every crash would otherwise give an
// attacker threshold-1 free attempts). Events are committed together with
// the bans they led to, so the sources those bans name are skipped up to
// the ban's start; a decision here comes only from a configuration that
// bans sooner, and is applied like any other.
func (d *Daemon) replayRecent(ctx context.Context) error {
	now := d.now()
	since := now.Add(-time.Duration(d.cfg.Verdict.Window))
	events, err := d.st.Events(ctx, store.EventFilter{Since: since})
	if err != nil {
		return fmt.Errorf("read recent events: %w", err)
	}
	if len(events) == 0 {
		return nil
	}
	recent, err := d.st.Bans(ctx, store.BanFilter{Since: since})
	if err != nil {
		return fmt.Errorf("read recent bans: %w", err)
	}
	// The latest ban start per banned source (an address, or an IPv6 /64),
	// and the few wider bans apart: a spray may leave thousands of bans in
	// one window.
	lastBan := map[netip.Prefix]time.Time{}
	var wide []store.Ban
	for _, b := range recent {
		if b.Prefix.IsSingleIP() || b.Prefix.Addr().Is6() && b.Prefix.Bits() == 64 {
			if b.Start.After(lastBan[b.Prefix]) {
				lastBan[b.Prefix] = b.Start
			}
		} else {
			wide = append(wide, b)
		}
	}
	evidence := func(ev logs.Event) bool {
		keys := []netip.Prefix{netip.PrefixFrom(ev.Addr, ev.Addr.BitLen())}
		if ev.Addr.Is6() {
			keys = append(keys, netip.PrefixFrom(ev.Addr, 64).Masked())
		}
		for _, k := range keys {
			if start, ok := lastBan[k]; ok && !start.Before(ev.Time) {
				return true
			}
		}
		return bannedAfter(wide, ev)
	}
	replay := events[:0]
	for _, ev := range events {
		if !evidence(ev) {
			replay = append(replay, ev)
		}
	}
	played := len(replay)
	kbans, sbans := d.decide(replay, now)
	if len(sbans) > 0 {
		if err := d.st.Commit(ctx, store.Batch{Bans: sbans}); err != nil {
			return fmt.Errorf("record %d bans from recent events: %w", len(sbans), err)
		}
		if err := d.dp.Maps.AddBans(kbans); err != nil {
			return fmt.Errorf("put %d bans from recent events in the kernel: %w", len(kbans), err)
		}
	}
	d.log.Info("replayed recent events into the verdict engine", "events", played, "since", since.UTC())
	return nil
}

// bannedAfter reports whether a ban among bans covers the event's source
// and started at or after the event: the event is already that ban's
// evidence.
func bannedAfter(bans []store.Ban, ev logs.Event) bool {
	for _, b := range bans {
		if b.Prefix.Contains(ev.Addr) && !b.Start.Before(ev.Time) {
			return true
		}
	}
	return false
}
