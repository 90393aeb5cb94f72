package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// Commit writes the batch in one transaction: all of it becomes durable, or
// (on any error) none of it. The daemon commits the events parsed from some
// lines together with the read positions after those lines, so after a crash
// it re-reads exactly the lines whose events were not committed.
//
// Bans already recorded (same prefix and start, or same Key) are left as
// they are, and lifts of bans no longer in force change nothing, so a batch
// committed again after a crash leaves no duplicate.
func (s *Store) Commit(ctx context.Context, b Batch) error {
	// Check everything before taking the write lock: a bad batch should not
	// hold up other writers, and the error names the bad item.
	for i, ev := range b.Events {
		if err := checkEvent(ev); err != nil {
			return fmt.Errorf("commit: event %d: %w", i, err)
		}
	}
	for _, ban := range b.Bans {
		if err := ban.check(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	for _, l := range b.Lifts {
		if err := l.check(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	for _, p := range b.Positions {
		if p.Key == "" {
			return fmt.Errorf("commit: position without a key")
		}
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := insertEvents(ctx, tx, b.Events); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if err := insertBans(ctx, tx, b.Bans); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if err := applyLifts(ctx, tx, b.Lifts); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if err := savePositions(ctx, tx, b.Positions); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	})
}

func checkEvent(ev logs.Event) error {
	switch {
	case ev.Time.IsZero():
		return fmt.Errorf("no time")
	case !ev.Addr.IsValid():
		return fmt.Errorf("no client address")
	case ev.Kind == "":
		return fmt.Errorf("no kind")
	case ev.Attempts < 0:
		return fmt.Errorf("%d attempts", ev.Attempts)
	}
	return nil
}

// eventsPerInsert is how many events one INSERT statement carries. One
// statement per row costs a round trip through the driver per event; a few
// hundred rows per statement stays well under SQLite's limit of 32766 bound
// parameters (eventColumns each).
const eventsPerInsert = 200

const eventColumns = 11

func insertEvents(ctx context.Context, tx *sql.Tx, events []logs.Event) error {
	if len(events) == 0 {
		return nil
	}
	var full *sql.Stmt
	args := make([]any, 0, eventsPerInsert*eventColumns)
	for len(events) > 0 {
		n := min(len(events), eventsPerInsert)
		args = args[:0]
		for _, ev := range events[:n] {
			attempts := ev.Attempts
			if attempts == 0 {
				attempts = 1 // an event is at least one attempt
			}
			args = append(args, ev.Time.UnixNano(), ev.Service, string(ev.Kind), addrBytes(ev.Addr),
				ev.User, ev.Rule, attempts, ev.Origin.File, ev.Origin.Line, ev.Origin.Cursor, nullString(ev.Country))
		}
		var err error
		if n == eventsPerInsert {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, insertEventsSQL(n)); err != nil {
					return fmt.Errorf("prepare event insert: %w", err)
				}
				defer full.Close()
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertEventsSQL(n), args...)
		}
		if err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		events = events[n:]
	}
	return nil
}

func insertEventsSQL(rows int) string {
	const head = `INSERT INTO events (time, service, kind, addr, login, rule, attempts, origin_file, origin_line, origin_cursor, country) VALUES `
	const row = `(?,?,?,?,?,?,?,?,?,?,?)`
	b := make([]byte, 0, len(head)+rows*(len(row)+1))
	b = append(b, head...)
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, row...)
	}
	return string(b)
}

func insertBans(ctx context.Context, tx *sql.Tx, bans []Ban) error {
	if len(bans) == 0 {
		return nil
	}
	// ON CONFLICT DO NOTHING covers both unique keys: (addr, bits, start)
	// and key.
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO bans
	(key, addr, last, bits, scope, origin, reason, start, expires, evidence, lifted_at, lift_reason)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT DO NOTHING`)
	if err != nil {
		return fmt.Errorf("prepare ban insert: %w", err)
	}
	defer stmt.Close()
	for _, b := range bans {
		var key, liftReason any
		if b.Key != "" {
			key = b.Key
		}
		if !b.LiftedAt.IsZero() {
			liftReason = b.LiftReason
		}
		if _, err := stmt.ExecContext(ctx, key, addrBytes(b.Prefix.Addr()), addrBytes(lastAddr(b.Prefix)), b.Prefix.Bits(),
			string(b.Scope), string(b.Origin), b.Reason, b.Start.UnixNano(), nanos(b.Expires), b.Evidence,
			nanos(b.LiftedAt), liftReason); err != nil {
			return fmt.Errorf("insert ban of %s: %w", b.Prefix, err)
		}
	}
	return nil
}

func (l Lift) check() error {
	switch {
	case l.Key == "" && !l.Prefix.IsValid():
		return fmt.Errorf("lift names neither a key nor a prefix")
	case l.At.IsZero():
		return fmt.Errorf("lift of %s: no time", l.Prefix)
	}
	return nil
}

func applyLifts(ctx context.Context, tx *sql.Tx, lifts []Lift) error {
	for _, l := range lifts {
		const inForce = `lifted_at IS NULL AND (expires IS NULL OR expires > ?)`
		var err error
		if l.Key != "" {
			_, err = tx.ExecContext(ctx, `UPDATE bans SET lifted_at = ?, lift_reason = ? WHERE key = ? AND `+inForce,
				l.At.UnixNano(), l.Reason, l.Key, l.At.UnixNano())
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE bans SET lifted_at = ?, lift_reason = ?
	WHERE addr = ? AND bits = ? AND `+inForce,
				l.At.UnixNano(), l.Reason, addrBytes(l.Prefix.Addr()), l.Prefix.Bits(), l.At.UnixNano())
		}
		if err != nil {
			return fmt.Errorf("lift ban of %s: %w", l.Prefix, err)
		}
	}
	return nil
}

func savePositions(ctx context.Context, tx *sql.Tx, positions []Position) error {
	if len(positions) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO positions
	(key, path, dev, inode, fingerprint, offset, line, cursor, updated_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (key) DO UPDATE SET
		path = excluded.path, dev = excluded.dev, inode = excluded.inode,
		fingerprint = excluded.fingerprint, offset = excluded.offset, line = excluded.line,
		cursor = excluded.cursor, updated_at = excluded.updated_at`)
	if err != nil {
		return fmt.Errorf("prepare position update: %w", err)
	}
	defer stmt.Close()
	now := time.Now().UnixNano()
	for _, p := range positions {
		// dev and inode are uint64; SQLite integers are int64. The bits are
		// kept as they are and read back the same way.
		if _, err := stmt.ExecContext(ctx, p.Key, p.Path, int64(p.Dev), int64(p.Inode), p.Fingerprint,
			p.Offset, p.Line, p.Cursor, now); err != nil {
			return fmt.Errorf("save position of %s: %w", p.Key, err)
		}
	}
	return nil
}

// nullString is NULL for "": a column with nothing known stays NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
