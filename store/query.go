package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

const banColumns = `id, key, addr, bits, scope, origin, reason, start, expires, evidence, lifted_at, lift_reason`

// BansInForce returns the bans in force at t (not lifted, not expired), for
// restoring them into the kernel at start. Bans whose start is after t are
// included: the kernel holds them until they begin.
func (s *Store) BansInForce(ctx context.Context, t time.Time) ([]Ban, error) {
	const inForce = `(lifted_at IS NULL OR lifted_at > ?1) AND (expires IS NULL OR expires > ?1)`
	// Counting first costs a few milliseconds and saves growing (copying
	// and clearing) a slice of 100,000 bans several times over.
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM bans WHERE `+inForce, t.UnixNano()).Scan(&n); err != nil {
		return nil, fmt.Errorf("count bans in force: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+banColumns+` FROM bans WHERE `+inForce+` ORDER BY start, id`, t.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("query bans in force: %w", err)
	}
	return scanBans(rows, n)
}

// BanFilter selects bans. Zero fields select everything.
type BanFilter struct {
	// Since and Until bound the start: Since <= start < Until.
	Since, Until time.Time
	// Prefix selects bans of exactly this prefix (a source's own history,
	// for escalation).
	Prefix netip.Prefix
	// Covering selects bans whose prefix contains this address (what
	// blocked a client: its own ban or a subnet ban).
	Covering netip.Addr
	// Limit keeps only the newest Limit bans.
	Limit int
}

// Bans returns the bans the filter selects, oldest first.
func (s *Store) Bans(ctx context.Context, f BanFilter) ([]Ban, error) {
	where, args := timeRange("start", f.Since, f.Until)
	if f.Prefix.IsValid() {
		p := f.Prefix.Masked()
		where, args = append(where, `addr = ? AND bits = ?`), append(args, addrBytes(p.Addr()), p.Bits())
	}
	if f.Covering.IsValid() {
		// Blobs compare byte by byte, then shorter first; the length test
		// keeps IPv4 and IPv6 apart.
		a := addrBytes(f.Covering)
		where, args = append(where, `addr <= ? AND last >= ? AND length(addr) = ?`), append(args, a, a, len(a))
	}
	q := `SELECT ` + banColumns + ` FROM bans`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	if f.Limit > 0 {
		q = `SELECT * FROM (` + q + ` ORDER BY start DESC, id DESC LIMIT ?) ORDER BY start, id`
		args = append(args, f.Limit)
	} else {
		q += ` ORDER BY start, id`
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query bans: %w", err)
	}
	return scanBans(rows, f.Limit)
}

// timeRange is the WHERE terms for since <= col < until, a zero bound
// leaving that side open.
func timeRange(col string, since, until time.Time) (where []string, args []any) {
	if !since.IsZero() {
		where, args = append(where, col+` >= ?`), append(args, since.UnixNano())
	}
	if !until.IsZero() {
		where, args = append(where, col+` < ?`), append(args, until.UnixNano())
	}
	return where, args
}

// scanBans reads the rows as bans; capHint is how many there will probably
// be.
func scanBans(rows *sql.Rows, capHint int) ([]Ban, error) {
	defer rows.Close()
	out := make([]Ban, 0, capHint)
	for rows.Next() {
		var (
			b                 Ban
			key, liftReason   sql.NullString
			addr              []byte
			bits              int
			scope, origin     string
			start             int64
			expires, liftedAt sql.NullInt64
		)
		if err := rows.Scan(&b.ID, &key, &addr, &bits, &scope, &origin, &b.Reason, &start, &expires,
			&b.Evidence, &liftedAt, &liftReason); err != nil {
			return nil, fmt.Errorf("read ban: %w", err)
		}
		a, err := addrFromBytes(addr)
		if err != nil {
			return nil, fmt.Errorf("read ban %d: %w", b.ID, err)
		}
		if b.Prefix, err = a.Prefix(bits); err != nil {
			return nil, fmt.Errorf("read ban %d: %w", b.ID, err)
		}
		b.Key, b.LiftReason = key.String, liftReason.String
		b.Scope, b.Origin = Scope(scope), Origin(origin)
		b.Start = time.Unix(0, start).UTC()
		b.Expires, b.LiftedAt = fromNanos(expires), fromNanos(liftedAt)
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read bans: %w", err)
	}
	return out, nil
}

// EventFilter selects events. Zero fields select everything.
type EventFilter struct {
	// Since and Until bound the time: Since <= time < Until.
	Since, Until time.Time
	// Within selects events whose address is in the prefix; a single
	// address is a /32 or /128.
	Within netip.Prefix
	// Limit keeps only the newest Limit events.
	Limit int
}

// Events returns the events the filter selects, oldest first.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]logs.Event, error) {
	where, args := timeRange("time", f.Since, f.Until)
	if f.Within.IsValid() {
		p := f.Within.Masked()
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		if p.IsSingleIP() {
			where, args = append(where, `addr = ?`), append(args, addrBytes(p.Addr()))
		} else {
			lo, hi := addrBytes(p.Addr()), addrBytes(lastAddr(p))
			where, args = append(where, `addr BETWEEN ? AND ? AND length(addr) = ?`), append(args, lo, hi, len(lo))
		}
	}
	q := `SELECT time, service, kind, addr, login, rule, attempts, origin_file, origin_line, origin_cursor, COALESCE(country, '') FROM events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	newestFirst := f.Limit > 0
	if newestFirst {
		q += ` ORDER BY time DESC, id DESC LIMIT ?`
		args = append(args, f.Limit)
	} else {
		q += ` ORDER BY time, id`
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query events: %w", err)
	}
	defer rows.Close()
	var out []logs.Event
	for rows.Next() {
		var (
			ev   logs.Event
			t    int64
			kind string
			addr []byte
		)
		if err := rows.Scan(&t, &ev.Service, &kind, &addr, &ev.User, &ev.Rule, &ev.Attempts,
			&ev.Origin.File, &ev.Origin.Line, &ev.Origin.Cursor, &ev.Country); err != nil {
			return nil, fmt.Errorf("read event: %w", err)
		}
		if ev.Addr, err = addrFromBytes(addr); err != nil {
			return nil, fmt.Errorf("read event: %w", err)
		}
		ev.Time, ev.Kind = time.Unix(0, t).UTC(), logs.Kind(kind)
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	if newestFirst {
		slices.Reverse(out)
	}
	return out, nil
}

// Counts sum events and bans over a span of time.
type Counts struct {
	Events   int // event rows
	Attempts int // attempts the events stand for
	Bans     int // bans that started in the span
}

// CountSince counts the events and bans from since on (for status: the last
// hour).
func (s *Store) CountSince(ctx context.Context, since time.Time) (Counts, error) {
	var c Counts
	err := s.r.QueryRowContext(ctx, `SELECT
	(SELECT COUNT(*) FROM events WHERE time >= ?1),
	(SELECT COALESCE(SUM(attempts), 0) FROM events WHERE time >= ?1),
	(SELECT COUNT(*) FROM bans WHERE start >= ?1)`, since.UnixNano()).Scan(&c.Events, &c.Attempts, &c.Bans)
	if err != nil {
		return Counts{}, fmt.Errorf("count since %s: %w", since.UTC(), err)
	}
	return c, nil
}

// HourCount is the counts of one hour.
type HourCount struct {
	Hour time.Time // the hour's start, UTC
	Counts
}

// Hourly counts events and bans per hour (UTC) from since to until, oldest
// first. Hours with nothing in them are left out.
func (s *Store) Hourly(ctx context.Context, since, until time.Time) ([]HourCount, error) {
	const hour = int64(time.Hour)
	rows, err := s.r.QueryContext(ctx, `SELECT h, SUM(ev), SUM(att), SUM(bn) FROM (
		SELECT time / ?3 AS h, COUNT(*) AS ev, SUM(attempts) AS att, 0 AS bn
			FROM events WHERE time >= ?1 AND time < ?2 GROUP BY h
		UNION ALL
		SELECT start / ?3 AS h, 0, 0, COUNT(*)
			FROM bans WHERE start >= ?1 AND start < ?2 GROUP BY h
	) GROUP BY h ORDER BY h`, since.UnixNano(), until.UnixNano(), hour)
	if err != nil {
		return nil, fmt.Errorf("count by hour: %w", err)
	}
	defer rows.Close()
	var out []HourCount
	for rows.Next() {
		var h int64
		var c HourCount
		if err := rows.Scan(&h, &c.Events, &c.Attempts, &c.Bans); err != nil {
			return nil, fmt.Errorf("count by hour: %w", err)
		}
		c.Hour = time.Unix(0, h*hour).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count by hour: %w", err)
	}
	return out, nil
}

// LastEvent is the time of the newest event, zero when there is none.
func (s *Store) LastEvent(ctx context.Context) (time.Time, error) {
	var t sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(time) FROM events`).Scan(&t); err != nil {
		return time.Time{}, fmt.Errorf("query last event: %w", err)
	}
	return fromNanos(t), nil
}

const positionColumns = `key, path, dev, inode, fingerprint, offset, line, cursor`

// Position returns the read position saved under key, and false when there
// is none.
func (s *Store) Position(ctx context.Context, key string) (Position, bool, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+positionColumns+` FROM positions WHERE key = ?`, key)
	if err != nil {
		return Position{}, false, fmt.Errorf("query position of %s: %w", key, err)
	}
	ps, err := scanPositions(rows)
	if err != nil || len(ps) == 0 {
		return Position{}, false, err
	}
	return ps[0], true, nil
}

// Positions returns every saved read position, by key.
func (s *Store) Positions(ctx context.Context) ([]Position, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+positionColumns+` FROM positions ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("query positions: %w", err)
	}
	return scanPositions(rows)
}

func scanPositions(rows *sql.Rows) ([]Position, error) {
	defer rows.Close()
	var out []Position
	for rows.Next() {
		var p Position
		var dev, inode int64
		if err := rows.Scan(&p.Key, &p.Path, &dev, &inode, &p.Fingerprint, &p.Offset, &p.Line, &p.Cursor); err != nil {
			return nil, fmt.Errorf("read position: %w", err)
		}
		p.Dev, p.Inode = uint64(dev), uint64(inode)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	return out, nil
}

// SetMeta stores a small piece of daemon metadata (its heartbeat, the time
// of its start), replacing the previous value.
func (s *Store) SetMeta(ctx context.Context, key, value string) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)
	ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, value, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}

// Meta reads what SetMeta stored under key and when; ok is false when
// nothing is.
func (s *Store) Meta(ctx context.Context, key string) (value string, updated time.Time, ok bool, err error) {
	var ns int64
	err = s.r.QueryRowContext(ctx, `SELECT value, updated_at FROM kv WHERE key = ?`, key).Scan(&value, &ns)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("read %s: %w", key, err)
	}
	return value, time.Unix(0, ns).UTC(), true, nil
}
