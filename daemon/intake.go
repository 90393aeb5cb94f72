package daemon

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/logs"
	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/store"
)

// namedSource is a log source with the name status shows for it.
type namedSource struct {
	name string
	src  logs.Source
}

// sourceHealth is one source's progress as the intake records it: the
// part of SourceStatus it knows (status adds the lag), and where it stands.
type sourceHealth struct {
	SourceStatus
	positions []logs.Position
}

// sourcesFor picks the log sources: the configured files that exist (or
// globs), and the journal when asked, or when set to auto and no file
// exists (Debian 12 and newer log mail only to the journal by default).
func (d *Daemon) sourcesFor(opts Options) ([]namedSource, error) {
	lc := d.cfg.Logs
	var files []string
	for _, f := range lc.Files {
		if _, err := os.Stat(f); err == nil || isGlob(f) {
			files = append(files, f)
		}
	}
	var out []namedSource
	if len(files) > 0 {
		fs, err := logs.NewFileSource(logs.FileConfig{
			Paths:     files,
			Store:     positions{d.st},
			FromStart: lc.ReadFromStart,
			Logger:    d.log,
		})
		if err != nil {
			return nil, fmt.Errorf("log files: %w", err)
		}
		out = append(out, namedSource{name: fmt.Sprintf("files %v", files), src: fs})
	}
	journal := lc.Journal == config.JournalOn || (lc.Journal == config.JournalAuto && len(files) == 0)
	if journal {
		js, err := logs.NewJournalSource(logs.JournalConfig{
			Journalctl: opts.Journalctl,
			Files:      opts.JournalFiles,
			Store:      positions{d.st},
			FromStart:  lc.ReadFromStart,
			Logger:     d.log,
		})
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		out = append(out, namedSource{name: "journal", src: js})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no log to read: none of %v exists and the journal is off (set [logs] files or journal)", lc.Files)
	}
	return out, nil
}

func isGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// track registers a source's health before it runs, so status lists every
// source from the moment the daemon says it runs.
func (d *Daemon) track(s namedSource) *sourceHealth {
	h := &sourceHealth{SourceStatus: SourceStatus{Name: s.name}}
	d.healthMu.Lock()
	d.sources[s.name] = h
	d.healthMu.Unlock()
	return h
}

// follow feeds one source's batches to the engine until ctx ends. A
// failure to commit stops the daemon (systemd restarts it): the batch's
// positions were not saved, so its lines are read again, none lost.
func (d *Daemon) follow(ctx context.Context, s namedSource, h *sourceHealth) error {
	err := s.src.Run(ctx, func(b logs.Batch) error { return d.handle(ctx, h, b) })
	if ctx.Err() != nil {
		return nil
	}
	d.healthMu.Lock()
	h.Error = fmt.Sprint(err)
	d.healthMu.Unlock()
	return fmt.Errorf("log source %s: %w", s.name, err)
}

// handle turns one batch of lines into events, decisions and bans. The
// store commits the events, the new bans and the read positions together;
// then the kernel gets the bans.
func (d *Daemon) handle(ctx context.Context, h *sourceHealth, b logs.Batch) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	var (
		events    []logs.Event
		unmatched int64
		sample    string
	)
	for _, l := range b.Lines {
		before := len(events)
		d.parser.Parse(l, func(ev logs.Event) {
			ev.Country = d.country(ev.Addr)
			events = append(events, ev)
		})
		// A line that reads like a failed login but became no event is a
		// gap in the rules: after an upgrade changes a log format, this
		// is how the daemon would otherwise go silently blind.
		if len(events) == before && logs.LooksLikeFailure(l.Text) {
			unmatched++
			sample = strings.ToValidUTF8(string(l.Text[:min(len(l.Text), 300)]), "?")
		}
	}
	kbans, sbans := d.decide(events, now)
	if err := d.st.Commit(ctx, store.Batch{Events: events, Bans: sbans, Positions: toStorePositions(b.Positions)}); err != nil {
		return fmt.Errorf("commit %d events: %w", len(events), err)
	}
	if len(kbans) > 0 {
		if err := d.dp.Maps.AddBans(kbans); err != nil {
			// Recorded but not enforced: the next start restores it; say
			// so loudly now.
			d.setError(fmt.Sprintf("kernel ban update failed: %v", err))
			d.noteKernelError(err)
			d.log.Error("put bans in the kernel", "bans", len(kbans), "err", err)
		}
	}
	d.healthMu.Lock()
	if unmatched > 0 {
		h.Unmatched += unmatched
		h.LastUnmatched, h.UnmatchedAt = sample, now
	}
	h.Lines += int64(len(b.Lines))
	h.Events += int64(len(events))
	if len(b.Lines) > 0 {
		h.LastLine = now
	}
	if len(events) > 0 {
		h.LastEvent = events[len(events)-1].Time
	}
	if len(b.Positions) > 0 {
		h.positions = mergePositions(h.positions, b.Positions)
	}
	d.healthMu.Unlock()
	return nil
}

// decide runs events through the engine and returns the bans it decides,
// in the kernel's and the store's form, each logged. d.mu must be held.
func (d *Daemon) decide(events []logs.Event, now time.Time) ([]maps.Ban, []store.Ban) {
	var (
		kbans []maps.Ban
		sbans []store.Ban
	)
	for _, ev := range events {
		for _, dec := range d.eng.Observe(ev, now) {
			kb, sb := decisionBans(dec)
			kbans = append(kbans, kb)
			sbans = append(sbans, sb)
			d.log.Info("ban", "prefix", dec.Prefix, "scope", dec.Scope, "for", dec.Duration().String(),
				"origin", dec.Origin, "reason", dec.Reason, "evidence", dec.Evidence, "offence", dec.Offence)
		}
	}
	return kbans, sbans
}

func mergePositions(old, upd []logs.Position) []logs.Position {
	for _, p := range upd {
		found := false
		for i := range old {
			if old[i].Key == p.Key {
				old[i] = p
				found = true
			}
		}
		if !found {
			old = append(old, p)
		}
	}
	return old
}

func (d *Daemon) setError(msg string) {
	d.healthMu.Lock()
	d.lastErr = msg
	d.healthMu.Unlock()
}
