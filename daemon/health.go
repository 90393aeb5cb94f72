package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/portcullis-mail/portcullis/alert"
	"github.com/portcullis-mail/portcullis/config"
)

// Status is the daemon's health as `portcullis status` shows it.
type Status struct {
	PID        int            `json:"pid"`
	Started    time.Time      `json:"started"`
	Heartbeat  time.Time      `json:"heartbeat"`
	Sources    []SourceStatus `json:"sources"`
	EventsHour int            `json:"events_last_hour"`
	BansHour   int            `json:"bans_last_hour"`
	LastError  string         `json:"last_error,omitempty"`
	Tracked    int            `json:"tracked_sources"`
	Evicted    uint64         `json:"evicted_sources"`
	Geo        *GeoInfo       `json:"geo,omitempty"`
	// Alerts are the alert channels' health and the alerts not cleared.
	Alerts *alert.Status `json:"alerts,omitempty"`
}

// SourceStatus is one log source's progress.
type SourceStatus struct {
	Name       string    `json:"name"`
	Lines      int64     `json:"lines"`
	Events     int64     `json:"events"`
	LastLine   time.Time `json:"last_line"`
	LastEvent  time.Time `json:"last_event"`
	LagBytes   int64     `json:"lag_bytes"`
	LagSeconds float64   `json:"lag_seconds"`
	Error      string    `json:"error,omitempty"`
	// Unmatched counts lines that read like failed logins but that no
	// rule turned into an event; LastUnmatched is the latest of them.
	Unmatched     int64     `json:"unmatched"`
	LastUnmatched string    `json:"last_unmatched,omitempty"`
	UnmatchedAt   time.Time `json:"unmatched_at,omitzero"`
}

// The heartbeat (alert.Heartbeat) is what the daemon publishes in the store
// every few seconds, with its read positions, so that `portcullis health`
// can tell a dead or hung daemon from a live one, and a live one that has
// stopped reading.
const heartbeatKey = alert.HeartbeatKey

// defaultHungAfter is how long the daemon's lock may stay held before it
// counts as hung. A batch takes milliseconds; the store waits at most 10 s
// for a lock; the unit's WatchdogSec is 30 s.
const defaultHungAfter = 20 * time.Second

func (d *Daemon) hungAfter() time.Duration {
	if d.hung > 0 {
		return d.hung
	}
	return defaultHungAfter
}

func (d *Daemon) writeHeartbeat(ctx context.Context, clean bool) error {
	b, _ := json.Marshal(alert.Heartbeat{PID: os.Getpid(), At: d.now().UTC(), Clean: clean, Positions: d.heartbeatPositions()})
	return d.st.SetMeta(ctx, heartbeatKey, string(b))
}

// checkUncleanExit says so when the last daemon did not stop cleanly.
func (d *Daemon) checkUncleanExit(ctx context.Context) error {
	v, _, ok, err := d.st.Meta(ctx, heartbeatKey)
	if err != nil {
		return fmt.Errorf("read heartbeat: %w", err)
	}
	if !ok {
		return nil
	}
	var hb alert.Heartbeat
	if json.Unmarshal([]byte(v), &hb) == nil && !hb.Clean {
		d.alerts.unclean = &hb
		d.log.Warn("the last daemon did not stop cleanly; bans were restored from the store", "last_heartbeat", hb.At, "pid", hb.PID)
	}
	return nil
}

func (d *Daemon) status(ctx context.Context) (Status, error) {
	st := Status{PID: os.Getpid(), Started: d.started.UTC(), Heartbeat: d.now().UTC()}
	now := d.now()
	d.healthMu.Lock()
	st.LastError = d.lastErr
	for _, h := range d.sources {
		ss := h.SourceStatus
		for _, p := range h.positions {
			if p.Path == "" {
				continue
			}
			fi, err := os.Stat(p.Path)
			if err != nil {
				continue
			}
			if behind := fi.Size() - p.Offset; behind > 0 {
				ss.LagBytes += behind
				if lag := now.Sub(fi.ModTime()).Seconds(); lag > ss.LagSeconds {
					ss.LagSeconds = lag
				}
			}
		}
		st.Sources = append(st.Sources, ss)
	}
	d.healthMu.Unlock()
	counts, err := d.st.CountSince(ctx, now.Add(-time.Hour))
	if err != nil {
		return st, err
	}
	st.EventsHour, st.BansHour = counts.Events, counts.Bans
	d.mu.Lock()
	es := d.eng.Stats()
	d.mu.Unlock()
	st.Tracked, st.Evicted = es.Tracked, es.Evicted
	st.Geo = d.geoInfo()
	st.Alerts = d.alertStatus()
	return st, nil
}

// housekeeping keeps the heartbeat and watchdog going, frees expired bans
// and prunes the store.
func (d *Daemon) housekeeping(ctx context.Context, notify *Notifier) error {
	beat := time.NewTicker(time.Second)
	defer beat.Stop()
	var n int
	lastFree := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-beat.C:
		}
		n++
		// The watchdog is fed only while the daemon makes progress: if the
		// lock every batch and command takes has been held for longer
		// than any batch takes (a hung store, a deadlock), systemd's
		// watchdog restarts the daemon instead of letting it hang alive.
		if d.mu.TryLock() {
			d.mu.Unlock()
			lastFree = time.Now()
		}
		if stuck := time.Since(lastFree); stuck > d.hungAfter() {
			d.setError(fmt.Sprintf("hung: no progress for %s", stuck.Round(time.Second)))
			d.log.Error("the daemon makes no progress; not feeding the watchdog", "stuck", stuck.Round(time.Second))
			continue
		}
		if err := notify.Watchdog(); err != nil {
			d.log.Warn("systemd watchdog", "err", err)
		}
		if n%5 == 1 { // the first a second after the start
			if err := d.writeHeartbeat(ctx, false); err != nil {
				d.setError(fmt.Sprintf("write heartbeat: %v", err))
				d.log.Error("write heartbeat", "err", err)
			}
		}
		if n%60 == 0 {
			d.minutely(ctx)
		}
		if n%3600 == 0 {
			d.mu.Lock()
			before := d.now().Add(-time.Duration(d.cfg.Store.Retention))
			d.mu.Unlock()
			if _, err := d.st.Prune(ctx, before); err != nil {
				d.log.Error("prune store", "err", err)
			}
		}
	}
}

func (d *Daemon) minutely(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	gone, err := d.dp.Maps.ExpireBans()
	if err != nil {
		d.log.Error("collect expired bans", "err", err)
	}
	for _, b := range gone {
		d.log.Info("unban", "prefix", b.Prefix, "reason", "expired", "hits", b.Hits)
	}
	d.eng.Expire(d.now())
	if err := d.dp.Maps.SyncBootOffset(); err != nil {
		d.log.Error("sync boot clock offset", "err", err)
	}
	if err := d.refreshAllowlistLocked(); err != nil {
		d.log.Error("refresh allowlist", "err", err)
	}
}

// reloads applies a new configuration on SIGHUP; a bad one is reported and
// the running one stays.
func (d *Daemon) reloads(ctx context.Context, reload func() (config.Config, error), notify *Notifier) error {
	if reload == nil {
		return nil
	}
	hup := notifyHUP()
	defer hup.stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup.c:
		}
		_ = notify.Reloading()
		cfg, err := reload()
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			d.setError(fmt.Sprintf("config reload failed: %v", err))
			d.noteReload(err)
			d.log.Error("config reload failed; the running configuration stays", "err", err)
			_ = notify.Ready()
			continue
		}
		if err := d.apply(cfg); err != nil {
			d.setError(fmt.Sprintf("config reload failed: %v", err))
			d.noteReload(err)
			d.log.Error("apply reloaded config", "err", err)
			_ = notify.Ready()
			continue
		}
		d.noteReload(nil)
		d.reloadedAlerts(cfg.Alerts)
		d.log.Info("configuration reloaded")
		_ = notify.Ready()
	}
}
