package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrNewerSchema means the database was written by a newer portcullis whose
// schema this one does not know; it is refused rather than misread.
var ErrNewerSchema = errors.New("database schema is newer than this portcullis")

// migrations bring the schema from version i to i+1 (migrations[0] makes
// version 1). Append only: a released migration never changes, since
// databases out there have already run it.
//
// Times are Unix nanoseconds (INTEGER, UTC). Addresses are their 4 or 16
// bytes (BLOB), so a range query on a prefix is a byte comparison; a ban
// keeps its first and last address for that reason.
var migrations = []string{
	// 1: events, bans, read positions, metadata.
	`
CREATE TABLE events (
	id            INTEGER PRIMARY KEY,
	time          INTEGER NOT NULL,
	service       TEXT    NOT NULL,
	kind          TEXT    NOT NULL,
	addr          BLOB    NOT NULL,
	login         TEXT    NOT NULL DEFAULT '',
	rule          TEXT    NOT NULL DEFAULT '',
	attempts      INTEGER NOT NULL DEFAULT 1,
	origin_file   TEXT    NOT NULL DEFAULT '',
	origin_line   INTEGER NOT NULL DEFAULT 0,
	origin_cursor TEXT    NOT NULL DEFAULT '',
	country       TEXT -- ISO 3166 code, filled by a later issue's geo lookup
);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_addr ON events (addr, time);

CREATE TABLE bans (
	id          INTEGER PRIMARY KEY,
	key         TEXT UNIQUE, -- the caller's own id for the ban, when it has one
	addr        BLOB    NOT NULL, -- first address of the prefix
	last        BLOB    NOT NULL, -- last address of the prefix
	bits        INTEGER NOT NULL,
	scope       TEXT    NOT NULL CHECK (scope IN ('all', 'mail')),
	origin      TEXT    NOT NULL CHECK (origin IN ('log', 'manual', 'subnet', 'recidive', 'geo', 'import')),
	reason      TEXT    NOT NULL DEFAULT '',
	start       INTEGER NOT NULL,
	expires     INTEGER, -- NULL: permanent
	evidence    INTEGER NOT NULL DEFAULT 0,
	lifted_at   INTEGER,
	lift_reason TEXT,
	-- A ban is one prefix from one moment: recording it again (after a
	-- crash, or a reconcile that finds it in the kernel) is a no-op.
	UNIQUE (addr, bits, start)
);
CREATE INDEX bans_start ON bans (start);
CREATE INDEX bans_in_force ON bans (expires) WHERE lifted_at IS NULL;

CREATE TABLE positions (
	key         TEXT PRIMARY KEY,
	path        TEXT    NOT NULL DEFAULT '',
	dev         INTEGER NOT NULL DEFAULT 0,
	inode       INTEGER NOT NULL DEFAULT 0,
	fingerprint TEXT    NOT NULL DEFAULT '',
	offset      INTEGER NOT NULL DEFAULT 0,
	line        INTEGER NOT NULL DEFAULT 0,
	cursor      TEXT    NOT NULL DEFAULT '',
	updated_at  INTEGER NOT NULL
);

CREATE TABLE kv (
	key        TEXT PRIMARY KEY,
	value      TEXT    NOT NULL,
	updated_at INTEGER NOT NULL
);
`,
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int { return len(migrations) }

// migrate applies the missing migrations, each in its own transaction with
// the version row that records it, so a crash leaves the database at one
// version or the next, never between.
func (s *Store) migrate(ctx context.Context, migrations []string) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("create version table in %s: %w", s.path, err)
	}
	for {
		done, err := s.migrateOne(ctx, migrations)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateOne applies the next migration, or reports that there is none. The
// version is read inside the transaction: another process opening the same
// database at the same moment waits for the write lock and then sees the
// version that one wrote.
func (s *Store) migrateOne(ctx context.Context, migrations []string) (done bool, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var v int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
			return fmt.Errorf("read schema version of %s: %w", s.path, err)
		}
		if v > len(migrations) {
			return fmt.Errorf("%s has schema version %d, this portcullis knows up to %d; run a newer portcullis or move the database aside: %w",
				s.path, v, len(migrations), ErrNewerSchema)
		}
		if v == len(migrations) {
			done = true
			return nil
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate %s to schema version %d: %w", s.path, v+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`,
			v+1, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("record schema version %d in %s: %w", v+1, s.path, err)
		}
		return nil
	})
	return done, err
}

// Version reads the database's schema version.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version of %s: %w", s.path, err)
	}
	return v, nil
}
