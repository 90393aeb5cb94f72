// Package store keeps the daemon's durable state in an embedded SQLite
// database: the events read from the logs, every ban with when and why it was
// lifted, how far each log source has been read, and a little metadata.
//
// Events, bans, lifts and read positions are written together in one
// transaction (Commit), so the events parsed from some lines and the position
// after those lines become durable at once: a crash re-reads at most lines
// whose events were not committed, and never counts a line twice.
//
// The database runs in WAL mode, so readers (the CLI's history and status)
// never block the daemon's writes. The store keeps its own row types rather
// than importing maps: it records bans, it does not enforce them, and the
// daemon translates between the two.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// FileName is the database's name inside the state directory.
const FileName = "portcullis.db"

// busyTimeoutMS is how long a statement waits for another process's write
// lock (the CLI writing while the daemon runs) before it fails.
const busyTimeoutMS = 10000

// Store is the database. It is safe for concurrent use.
type Store struct {
	path string
	// w has one connection: writes are serialised in the process instead of
	// contending for SQLite's lock, and every transaction takes the write
	// lock at BEGIN (immediate), so a transaction never fails half-way
	// because another writer got there first.
	w *sql.DB
	// r is for queries; in WAL mode readers see the last committed state and
	// neither wait for nor block the writer.
	r *sql.DB
}

// Synchronous is SQLite's synchronous setting: how often it waits for the
// disk.
type Synchronous string

// The synchronous settings the store supports.
const (
	// SyncFull waits for the write-ahead log to reach the disk at every
	// commit: a committed transaction survives power loss.
	SyncFull Synchronous = "FULL"
	// SyncNormal waits for the disk only at checkpoints: a committed
	// transaction survives the process being killed (the kernel holds the
	// written log), but power loss can undo the last transactions.
	SyncNormal Synchronous = "NORMAL"
)

// Options tune Open. The zero value is what Open uses.
type Options struct {
	// Synchronous defaults to SyncFull. Both settings survive kill -9
	// (TestKillLosesNothingAcknowledged runs both); they differ on power
	// loss. Bans are acknowledged to people (`portcullis ban` returns) and
	// restored from this database after a reboot, and a power cut is
	// exactly when a reboot follows, so an acknowledged ban must be on the
	// disk. FULL costs one fsync of the WAL per commit: measured on the
	// (shared) development VM, 0.2-0.8 ms instead of 0.06-0.15 ms to record
	// one ban, and no measurable difference for batches of 100 events or more
	// (BenchmarkCommitEvents, BenchmarkCommitBan); the daemon commits in
	// batches, and the kernel map is written before the store, so ban
	// latency does not include it.
	Synchronous Synchronous
}

// Open opens (creating when missing) dir/portcullis.db and brings its schema
// up to date. The directory is created with mode 0700 and the database file
// with 0600: the events name users and addresses. A database written by a
// newer portcullis is refused with ErrNewerSchema and left untouched.
func Open(ctx context.Context, dir string) (*Store, error) {
	return OpenWith(ctx, dir, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Synchronous == "" {
		opts.Synchronous = SyncFull
	}
	if opts.Synchronous != SyncFull && opts.Synchronous != SyncNormal {
		return nil, fmt.Errorf("open store: unknown synchronous setting %q", opts.Synchronous)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open store: path %q has a character SQLite reads as a parameter", path)
	}
	// Create the file ourselves so it is 0600 from the first byte; SQLite
	// gives its -wal and -shm files the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}

	common := url.Values{}
	common.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
	common.Set("_foreign_keys", "1")
	common.Set("_synchronous", string(opts.Synchronous))

	wq := cloneValues(common)
	wq.Set("_journal_mode", "WAL")
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	s := &Store{path: path, w: w}

	// The schema must exist before readers look at it, and the journal mode
	// must be WAL before a query-only connection opens (it cannot set it).
	if err := s.migrate(ctx, migrations); err != nil {
		w.Close()
		return nil, err
	}

	rq := cloneValues(common)
	rq.Set("_query_only", "1")
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s.r = r
	if err := r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return s, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close closes the database. Everything committed is already durable.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close database %s: %w", s.path, err)
	}
	return nil
}

// inTx runs fn in one write transaction, rolling back when fn fails.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		// The rollback error adds nothing: fn's error says what went wrong,
		// and a failed rollback leaves nothing committed either.
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
