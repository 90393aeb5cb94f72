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
)

// ErrNoSchema means the database file exists but no portcullis has written
// its schema yet (a daemon stopped during its first start).
var ErrNoSchema = errors.New("database has no schema yet")

// OpenReadOnly opens dir/portcullis.db for queries only, for the CLI while
// the daemon may be running: in WAL mode it reads the last committed state
// without waiting for or blocking the daemon's writes. It creates nothing
// and migrates nothing. A missing database is an error wrapping
// fs.ErrNotExist; a schema other than this build's is refused
// (ErrNewerSchema, ErrNoSchema, or an older version the daemon has not
// migrated yet). Writes through the returned Store fail.
func OpenReadOnly(ctx context.Context, dir string) (*Store, error) {
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	// mode=ro is one of SQLite's own URI parameters, so the name must be a
	// file: URI; url.URL escapes what SQLite would read as syntax (%, ?, #).
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_busy_timeout", fmt.Sprint(busyTimeoutMS))
	q.Set("_query_only", "1")
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	if !strings.HasPrefix(path, "/") {
		// A relative path has no authority part: file:rel/path.
		u = url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One handle serves as reader and (refusing) writer; closing it twice
	// is allowed by database/sql.
	s := &Store{path: path, w: db, r: db}
	if err := s.checkVersion(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// checkVersion refuses a database whose schema this build would misread.
func (s *Store) checkVersion(ctx context.Context) error {
	var tables int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'`).
		Scan(&tables); err != nil {
		return fmt.Errorf("open database %s: %w", s.path, err)
	}
	if tables == 0 {
		return fmt.Errorf("open database %s: %w", s.path, ErrNoSchema)
	}
	v, err := s.Version(ctx)
	if err != nil {
		return err
	}
	switch {
	case v == 0:
		return fmt.Errorf("open database %s: %w", s.path, ErrNoSchema)
	case v > SchemaVersion():
		return fmt.Errorf("%s has schema version %d, this portcullis knows up to %d; run a newer portcullis: %w",
			s.path, v, SchemaVersion(), ErrNewerSchema)
	case v < SchemaVersion():
		return fmt.Errorf("%s has schema version %d, this portcullis reads %d; start the daemon (or any command that writes) to bring it up to date",
			s.path, v, SchemaVersion())
	}
	return nil
}
