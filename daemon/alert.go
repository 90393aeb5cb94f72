package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"

	"github.com/portcullis-mail/portcullis/alert"
	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/logs"
	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/store"
)

// alerts is the daemon's side of alerting: the sender, and what the checks
// remember between runs. Every check reads state the daemon already keeps;
// none takes d.mu, so a hung log batch cannot hang the checks that are
// there to report it.
type alerts struct {
	sender *alert.Sender

	mu        sync.Mutex
	cfg       config.Alerts               // a copy, so checks never wait for d.mu
	positions map[string]*trackedPosition // by position key
	kernelErr string                      // the last failed kernel ban update, until reported
	reloadErr string                      // the last failed reload, until one succeeds
	unclean   *alert.Heartbeat            // the heartbeat a dead daemon left
	ifaces    []string                    // where the datapath was attached

	prevCounters maps.Counters
	prevAt       time.Time
	prevSources  map[string]uint64

	gaps map[string]*gapWindow // unmatched failure-like lines, by source
}

// gapWindow counts a source's unmatched failure-like lines over a window.
type gapWindow struct {
	start time.Time
	base  int64 // the source's Unmatched count at start
}

// trackedPosition is one log stream's read position with when it moved.
type trackedPosition struct {
	alert.Position
	laggingSince time.Time // behind, advancing or not, since
}

// startAlerts makes the sender; cool-down state lives in memory (a restart
// may repeat an alert, never lose one).
func (d *Daemon) startAlerts(cfg config.Config) {
	d.alerts = &alerts{sender: alert.SenderFor(cfg.Alerts, d.log, ""), cfg: cfg.Alerts, positions: map[string]*trackedPosition{}}
}

// reloadedAlerts takes a reloaded configuration's [alerts].
func (d *Daemon) reloadedAlerts(cfg config.Alerts) {
	d.alerts.mu.Lock()
	d.alerts.cfg = cfg
	d.alerts.mu.Unlock()
	d.alerts.sender.SetChannels(alert.Channels(cfg))
}

// watch runs the checks every check interval, the slower ones (map fill,
// attacks) every sixth, and retries failed sends, until ctx ends.
func (d *Daemon) watch(ctx context.Context) error {
	a := d.alerts
	if hb := a.unclean; hb != nil {
		a.sender.Alert(ctx, alert.Message{Key: "daemon:unclean", Severity: alert.Warning, Once: true, Since: hb.At,
			Subject: "the portcullis daemon restarted after an unclean exit",
			Body: fmt.Sprintf("The previous daemon (pid %d) stopped without a clean shutdown; its last heartbeat was at %s. This one restored every stored ban before reading a line.\nLook closer: journalctl -u portcullis --since %q\n",
				hb.PID, hb.At.UTC().Format(time.RFC3339), hb.At.Add(-time.Minute).Local().Format("2006-01-02 15:04:05"))})
	}
	if ps, err := d.st.Positions(ctx); err == nil {
		now := d.now()
		a.mu.Lock()
		for _, p := range ps {
			a.positions[p.Key] = &trackedPosition{Position: alert.Position{Key: p.Key, Path: p.Path, Offset: p.Offset, Advanced: now}}
		}
		a.mu.Unlock()
	}
	a.mu.Lock()
	every := time.Duration(a.cfg.CheckInterval)
	a.mu.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	var digestAt time.Time
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		a.mu.Lock()
		cfg := a.cfg
		a.mu.Unlock()
		d.checkSources(ctx, cfg.Health)
		d.checkGaps(ctx, cfg.Health)
		d.checkErrors(ctx)
		d.checkLinks(ctx)
		if n%6 == 0 {
			d.checkMaps(ctx, cfg.Health)
			d.checkAttacks(ctx, cfg)
		}
		if cfg.Digest {
			if now := d.now(); digestAt.IsZero() {
				digestAt = now.Add(24 * time.Hour)
			} else if now.After(digestAt) {
				digestAt = now.Add(24 * time.Hour)
				d.sendDigest(ctx)
			}
		}
		a.sender.RetryDue(ctx)
	}
}

// trackPositions merges the positions of the sources into the tracker and
// returns a copy of them.
func (d *Daemon) trackPositions(now time.Time) []*trackedPosition {
	a := d.alerts
	d.healthMu.Lock()
	var latest []struct {
		source string
		p      logs.Position
	}
	for _, h := range d.sources {
		for _, p := range h.positions {
			latest = append(latest, struct {
				source string
				p      logs.Position
			}{h.Name, p})
		}
	}
	d.healthMu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range latest {
		tp := a.positions[l.p.Key]
		if tp == nil {
			tp = &trackedPosition{Position: alert.Position{Key: l.p.Key, Advanced: now}}
			a.positions[l.p.Key] = tp
		}
		tp.Source = l.source
		if tp.Offset != l.p.Offset || tp.Path != l.p.Path {
			tp.Advanced, tp.BehindSince = now, time.Time{}
		}
		tp.Path, tp.Offset = l.p.Path, l.p.Offset
	}
	out := make([]*trackedPosition, 0, len(a.positions))
	for _, tp := range a.positions {
		out = append(out, tp)
	}
	return out
}

// checkSources finds logs that grow while the daemon does not read them
// (stalled), that it reads too slowly (lag), and that went missing.
func (d *Daemon) checkSources(ctx context.Context, h config.HealthAlerts) {
	now := d.now()
	s := d.alerts.sender
	for _, tp := range d.trackPositions(now) {
		if tp.Path == "" {
			continue
		}
		followed := strings.TrimPrefix(tp.Key, "file:")
		fi, err := os.Stat(tp.Path)
		if err != nil {
			if _, ferr := os.Stat(followed); ferr == nil {
				continue // rotated away and followed anew
			}
			s.Alert(ctx, alert.Message{Key: "source:" + followed, Severity: alert.Critical,
				Subject: fmt.Sprintf("log %s is missing", followed),
				Body:    fmt.Sprintf("The daemon was reading %s (source %s) and it is gone: %v\nLogins logged there are not seen and not banned until it comes back.\nLook closer: ls -l %s; portcullis status\n", followed, tp.Source, err, followed)})
			continue
		}
		if f, err := os.Open(tp.Path); err != nil {
			s.Alert(ctx, alert.Message{Key: "source:" + followed, Severity: alert.Critical,
				Subject: fmt.Sprintf("log %s is unreadable", tp.Path),
				Body:    fmt.Sprintf("The daemon cannot open %s: %v\nLook closer: ls -l %s; portcullis status\n", tp.Path, err, tp.Path)})
			continue
		} else {
			f.Close()
		}
		d.clearIfRaised(ctx, "source:"+followed, fmt.Sprintf("%s is readable again.", followed))
		d.alerts.mu.Lock()
		behind := fi.Size() - tp.Offset
		if behind <= 0 {
			tp.BehindSince, tp.laggingSince = time.Time{}, time.Time{}
		} else {
			if tp.BehindSince.IsZero() {
				tp.BehindSince = now
			}
			if tp.laggingSince.IsZero() {
				tp.laggingSince = now
			}
		}
		p, lagging := tp.Position, tp.laggingSince
		d.alerts.mu.Unlock()
		key := "stall:" + tp.Path
		if behind > 0 && !p.BehindSince.IsZero() && now.Sub(p.BehindSince) > time.Duration(h.Stall) {
			s.Alert(ctx, alert.Message{Key: key, Severity: alert.Critical, Since: p.BehindSince,
				Subject: fmt.Sprintf("log %s is not being read: %d bytes unread", tp.Path, behind),
				Body: fmt.Sprintf("%s keeps growing but the daemon is alive and has not read past byte %d since %s (%d bytes unread).\nLogins in them are not counted and their sources are not banned.\nLook closer: portcullis status; journalctl -u portcullis --since -1h\nRestart it: systemctl restart portcullis\n",
					tp.Path, p.Offset, p.Advanced.UTC().Format(time.RFC3339), behind)})
		} else if behind <= 0 {
			d.clearIfRaised(ctx, key, fmt.Sprintf("The daemon reads %s again and has caught up.", tp.Path))
		}
		lagKey := "lag:" + tp.Path
		if behind > 0 && !lagging.IsZero() && now.Sub(lagging) > time.Duration(h.Lag) {
			s.Alert(ctx, alert.Message{Key: lagKey, Severity: alert.Warning, Since: lagging,
				Subject: fmt.Sprintf("log %s: the daemon lags %s behind", tp.Path, now.Sub(lagging).Round(time.Second)),
				Body:    fmt.Sprintf("The daemon has been behind on %s since %s (%d bytes unread now): bans come late.\nLook closer: portcullis status; docs/PERFORMANCE.md\n", tp.Path, lagging.UTC().Format(time.RFC3339), behind)})
		} else if behind <= 0 {
			d.clearIfRaised(ctx, lagKey, fmt.Sprintf("The daemon has caught up with %s.", tp.Path))
		}
	}
}

// checkGaps reports a streak of lines that read like failed logins but that
// no rule turns into an event: an upgrade changed a log format, or software
// no rule knows logs there. Without this the daemon would go blind quietly,
// the way the incident's ban software did.
func (d *Daemon) checkGaps(ctx context.Context, h config.HealthAlerts) {
	if h.Unmatched <= 0 {
		return
	}
	const window = 10 * time.Minute
	now := d.now()
	var snaps []SourceStatus
	d.healthMu.Lock()
	for _, sh := range d.sources {
		snaps = append(snaps, sh.SourceStatus)
	}
	d.healthMu.Unlock()
	for _, sn := range snaps {
		key := "gap:" + sn.Name
		d.alerts.mu.Lock()
		if d.alerts.gaps == nil {
			d.alerts.gaps = map[string]*gapWindow{}
		}
		w := d.alerts.gaps[sn.Name]
		switch {
		case w == nil: // the first look counts from the daemon's start
			w = &gapWindow{start: now}
			d.alerts.gaps[sn.Name] = w
		case now.Sub(w.start) > window:
			w = &gapWindow{start: now, base: sn.Unmatched}
			d.alerts.gaps[sn.Name] = w
		}
		n := sn.Unmatched - w.base
		d.alerts.mu.Unlock()
		switch {
		case n >= int64(h.Unmatched):
			d.alerts.sender.Alert(ctx, alert.Message{Key: key, Severity: alert.Warning, Since: w.start,
				Subject: fmt.Sprintf("%d log lines look like failed logins but no rule reads them", n),
				Body: fmt.Sprintf("In %s, %d lines since %s read like failed logins or abuse, but no parser rule turned them into events: those sources are not counted and not banned.\nThe latest:\n  %s\nA software upgrade may have changed the log format, or the software has no rule.\nLook closer: portcullis logs test FILE (shows such lines); add a [[logs.rule]] to the configuration if needed.\n",
					sn.Name, n, w.start.UTC().Format(time.RFC3339), sn.LastUnmatched)})
		case d.alerts.sender.Raised(key) && now.Sub(sn.UnmatchedAt) > window:
			d.alerts.sender.Clear(ctx, key, fmt.Sprintf("No unreadable failure-like lines in %s for %s.", sn.Name, window))
		}
	}
}

func (d *Daemon) clearIfRaised(ctx context.Context, key, body string) {
	if d.alerts.sender.Raised(key) {
		d.alerts.sender.Clear(ctx, key, body)
	}
}

// checkErrors reports kernel ban updates that failed and reloads that
// failed, and says when a reload works again.
func (d *Daemon) checkErrors(ctx context.Context) {
	a := d.alerts
	a.mu.Lock()
	kerr, rerr := a.kernelErr, a.reloadErr
	a.kernelErr = ""
	a.mu.Unlock()
	if kerr != "" {
		a.sender.Alert(ctx, alert.Message{Key: "kernel:update", Severity: alert.Critical,
			Subject: "bans could not be put in the kernel",
			Body:    fmt.Sprintf("A kernel ban update failed: %s\nThe bans are recorded in the store and put back at the next start, but they do not drop traffic now.\nLook closer: portcullis status; portcullis bans\n", kerr)})
	}
	if rerr != "" {
		a.sender.Alert(ctx, alert.Message{Key: "config:reload", Severity: alert.Warning,
			Subject: "configuration reload failed; the running configuration stays",
			Body:    fmt.Sprintf("%s\nLook closer: portcullis config check\n", rerr)})
	} else {
		d.clearIfRaised(ctx, "config:reload", "The configuration reloaded.")
	}
}

// noteKernelError and noteReload record what checkErrors reports.
func (d *Daemon) noteKernelError(err error) {
	d.alerts.mu.Lock()
	d.alerts.kernelErr = err.Error()
	d.alerts.mu.Unlock()
}

func (d *Daemon) noteReload(err error) {
	d.alerts.mu.Lock()
	d.alerts.reloadErr = ""
	if err != nil {
		d.alerts.reloadErr = err.Error()
	}
	d.alerts.mu.Unlock()
}

// checkLinks puts the datapath back on an interface it was attached to
// when its link is gone (detached behind the daemon's back) or stale (the
// interface was removed and re-created), and says so.
func (d *Daemon) checkLinks(ctx context.Context) {
	d.alerts.mu.Lock()
	ifaces := d.alerts.ifaces
	d.alerts.mu.Unlock()
	if len(ifaces) == 0 {
		return
	}
	type fix struct {
		iface, was string
		err        error
	}
	var fixes []fix
	err := d.inOwnNetns(func() error {
		atts, err := loader.Attachments(d.dp.PinDir()) // fixed at start; d.cfg is not ours to read unlocked
		if err != nil {
			return err
		}
		have := map[string]loader.Attachment{}
		for _, a := range atts {
			have[a.Iface] = a
		}
		for _, iface := range ifaces {
			a, ok := have[iface]
			if ok && !a.Stale {
				continue
			}
			was := "its XDP link was removed"
			if ok {
				was = "the interface was removed or re-created, leaving a stale link"
			}
			_, _, err := d.dp.Attach(iface, loader.ModeAuto)
			fixes = append(fixes, fix{iface, was, err})
		}
		return nil
	})
	if err != nil {
		d.log.Error("check xdp links", "err", err)
		return
	}
	for _, f := range fixes {
		key := "xdp:" + f.iface
		if f.err != nil {
			d.alerts.sender.Alert(ctx, alert.Message{Key: key, Severity: alert.Critical,
				Subject: fmt.Sprintf("the datapath is off %s and cannot be re-attached", f.iface),
				Body:    fmt.Sprintf("On %s %s. Re-attaching failed: %v\nNothing is dropped on %s until it is attached.\nLook closer: portcullis status; ip link show %s\n", f.iface, f.was, f.err, f.iface, f.iface)})
			continue
		}
		d.log.Warn("re-attached the datapath", "iface", f.iface, "why", f.was)
		d.alerts.sender.Alert(ctx, alert.Message{Key: key, Severity: alert.Warning, Once: true,
			Subject: fmt.Sprintf("the datapath was off %s and is re-attached", f.iface),
			Body:    fmt.Sprintf("On %s %s; the daemon attached the datapath again. Traffic on it was not filtered in between.\nLook closer: portcullis status; ip link show %s; journalctl -u portcullis --since -1h\n", f.iface, f.was, f.iface)})
	}
}

// inOwnNetns runs fn on a thread in the network namespace the daemon
// started in: interfaces are looked up by name there.
func (d *Daemon) inOwnNetns(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(d.netns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter the daemon's network namespace: %w", err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked, and dies with the goroutine, rather
		// than running other code in the wrong namespace.
		return errors.Join(fnErr, fmt.Errorf("return to network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// checkMaps reports kernel maps filling up.
func (d *Daemon) checkMaps(ctx context.Context, h config.HealthAlerts) {
	fills, err := d.dp.Maps.Fill()
	if err != nil {
		d.log.Error("read map fill", "err", err)
		return
	}
	for _, f := range fills {
		key := "map:" + f.Name
		if f.Capacity > 0 && f.Entries*100 >= f.Capacity*h.MapFullPercent {
			d.alerts.sender.Alert(ctx, alert.Message{Key: key, Severity: alert.Critical,
				Subject: fmt.Sprintf("kernel map %s is %d%% full (%d of %d)", f.Name, f.Entries*100/f.Capacity, f.Entries, f.Capacity),
				Body: fmt.Sprintf("The %s map holds %d of %d entries. When it is full, new entries are refused: new bans are recorded but not enforced.\nLook closer: portcullis status; portcullis bans\nMore room: set [datapath.capacity] and recreate the maps (`portcullis detach --all --purge`, then restart the daemon: it restores every stored ban).\n",
					f.Name, f.Entries, f.Capacity)})
		} else if f.Capacity > 0 && f.Entries*100 < f.Capacity*max(h.MapFullPercent-5, 1) {
			d.clearIfRaised(ctx, key, fmt.Sprintf("The %s map holds %d of %d entries.", f.Name, f.Entries, f.Capacity))
		}
	}
}

// checkAttacks looks at the last minute (and hour) of events, bans and
// kernel counters for attacks a person should hear of.
func (d *Daemon) checkAttacks(ctx context.Context, cfg config.Alerts) {
	now := d.now()
	th := alert.ThresholdsFor(cfg.Attack)
	var found []alert.Attack

	a := d.alerts
	counters, cerr := d.dp.Maps.Counters()
	tops, terr := d.dp.Maps.Top(topN)
	var dropped uint64
	var synTotal uint64
	var synSources []alert.SYNRate
	cur := map[string]uint64{}
	for _, s := range tops {
		cur[s.Prefix.String()] = s.Total()
	}
	a.mu.Lock()
	elapsed := now.Sub(a.prevAt)
	if cerr == nil && terr == nil && !a.prevAt.IsZero() && elapsed > 0 {
		perMin := func(n uint64) uint64 { return uint64(float64(n) * float64(time.Minute) / float64(elapsed)) }
		dropped = counters.DroppedBan + counters.DroppedRate - a.prevCounters.DroppedBan - a.prevCounters.DroppedRate
		synTotal = perMin(counters.SynMX + counters.SynAuth - a.prevCounters.SynMX - a.prevCounters.SynAuth)
		// The last look saw every source when it listed fewer than the
		// top's size: then a source missing from it is new, and all its
		// SYNs came since. Otherwise a newcomer may have been below the
		// top before, and its rate is unknown until the next look.
		sawAll := len(a.prevSources) < topN
		for _, s := range tops {
			prev, ok := a.prevSources[s.Prefix.String()]
			if (ok || sawAll) && s.Total() >= prev {
				synSources = append(synSources, alert.SYNRate{Prefix: s.Prefix, PerMinute: perMin(s.Total() - prev)})
			}
		}
	}
	if cerr == nil && terr == nil {
		a.prevCounters, a.prevAt, a.prevSources = counters, now, cur
	}
	a.mu.Unlock()
	found = append(found, alert.SYNSpike(synTotal, synSources, th)...)

	lastMin, err := d.st.Events(ctx, store.EventFilter{Since: now.Add(-time.Minute)})
	if err != nil {
		d.log.Error("alerts: read events", "err", err)
		return
	}
	baseline := d.baseline(ctx, now)
	if spike, ok := alert.FailureSpike(lastMin, baseline, th); ok {
		found = append(found, spike)
	}
	lastHour, err := d.st.Events(ctx, store.EventFilter{Since: now.Add(-time.Hour), Limit: 200_000})
	if err == nil {
		found = append(found, alert.PrefixSquads(lastHour, th)...)
		found = append(found, alert.CountrySquads(lastHour, th)...)
	}
	within := time.Duration(cfg.Attack.BanStormWithin)
	if bans, err := d.st.Bans(ctx, store.BanFilter{Since: now.Add(-within)}); err == nil {
		var banned []alert.SourceCount
		for _, b := range bans {
			banned = append(banned, alert.SourceCount{Prefix: b.Prefix, Count: b.Evidence, Banned: true})
		}
		if storm, ok := alert.BanStorm(len(bans), within, banned, th); ok {
			found = append(found, storm)
		}
	}
	bansLastMin, _ := d.st.CountSince(ctx, now.Add(-time.Minute))
	raised := map[string]bool{}
	for _, at := range found {
		if at.Banned == 0 {
			at.Banned = bansLastMin.Bans
		}
		at.Dropped = dropped
		for i := range at.Top {
			if _, err := d.dp.Maps.LookupBan(at.Top[i].Prefix); err == nil {
				at.Top[i].Banned = true
			}
		}
		if at.Since.IsZero() {
			at.Since = now.Add(-time.Minute)
		}
		raised[at.Key] = true
		a.sender.Alert(ctx, at.Message())
	}
	for _, k := range a.sender.Keys("attack:") {
		if !raised[k] {
			a.sender.Clear(ctx, k, "The attack has subsided below the alert thresholds.")
		}
	}
}

// topN is how many of the busiest sources the SYN-spike check follows.
const topN = 50

// baseline is the usual failed-login attempts a minute for this hour of
// the day, over the last week.
func (d *Daemon) baseline(ctx context.Context, now time.Time) float64 {
	hours, err := d.st.Hourly(ctx, now.Add(-7*24*time.Hour), now.Truncate(time.Hour))
	if err != nil {
		return 0
	}
	var attempts, days int
	for _, h := range hours {
		if h.Hour.Hour() == now.UTC().Hour() {
			attempts += h.Attempts
			days++
		}
	}
	if days == 0 {
		return 0
	}
	return float64(attempts) / float64(days) / 60
}

func (d *Daemon) sendDigest(ctx context.Context) {
	now := d.now()
	c, err := d.st.CountSince(ctx, now.Add(-24*time.Hour))
	if err != nil {
		d.log.Error("digest", "err", err)
		return
	}
	events, _ := d.st.Events(ctx, store.EventFilter{Since: now.Add(-24 * time.Hour), Limit: 200_000})
	attempts, sources := alert.CountSources(events)
	var b strings.Builder
	fmt.Fprintf(&b, "Last 24 hours: %d failed-login attempts from %d distinct sources; %d bans.\n", attempts, len(sources), c.Bans)
	for _, s := range sources[:min(10, len(sources))] {
		fmt.Fprintf(&b, "  %-22s %8d\n", s.Prefix, s.Count)
	}
	b.WriteString("Look closer: portcullis history --since 24h; portcullis bans\n")
	d.alerts.sender.Digest(ctx, b.String())
}

// heartbeatPositions are the read positions the heartbeat publishes.
func (d *Daemon) heartbeatPositions() []alert.Position {
	if d.alerts == nil {
		return nil
	}
	var out []alert.Position
	for _, tp := range d.trackPositions(d.now()) {
		d.alerts.mu.Lock()
		out = append(out, tp.Position)
		d.alerts.mu.Unlock()
	}
	return out
}

// alertStatus is the alerting part of `portcullis status`.
func (d *Daemon) alertStatus() *alert.Status {
	if d.alerts == nil {
		return nil
	}
	st := d.alerts.sender.Status()
	return &st
}
