package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

func openReadOnlyTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenReadOnly(t.Context(), dir)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestReadOnlySeesTheWritersCommitsWhileItRuns(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir)
	commit(t, w, Batch{Bans: []Ban{ban("198.18.0.7/32", base, time.Hour)}})

	r := openReadOnlyTest(t, dir)
	bans, err := r.Bans(t.Context(), BanFilter{})
	if err != nil || len(bans) != 1 {
		t.Fatalf("Bans through the reader = %v, %v; want the one ban", bans, err)
	}

	// The writer goes on committing with the reader open, and the reader's
	// next query sees it: neither blocks the other.
	commit(t, w, Batch{Events: []logs.Event{event("198.18.0.8", base.Add(time.Minute), "sasl")}})
	evs, err := r.Events(t.Context(), EventFilter{})
	if err != nil || len(evs) != 1 || evs[0].Addr.String() != "198.18.0.8" {
		t.Fatalf("Events through the reader after a new commit = %v, %v", evs, err)
	}
}

func TestReadOnlyOpensADatabaseTheWriterClosed(t *testing.T) {
	// A clean close checkpoints and removes the -wal and -shm files; the
	// reader must still open it (the daemon stopped, history still works).
	// The path has characters a file: URI must escape.
	dir := filepath.Join(t.TempDir(), "state 100% dir")
	w := openTest(t, dir)
	commit(t, w, Batch{Events: []logs.Event{event("fd00::7", base, "sasl")}})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := openReadOnlyTest(t, dir)
	evs, err := r.Events(t.Context(), EventFilter{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("Events = %v, %v; want the one event", evs, err)
	}
	if got := r.Path(); got != filepath.Join(dir, FileName) {
		t.Errorf("Path() = %q", got)
	}
}

func TestReadOnlyRefusesToWrite(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir)
	commit(t, w, Batch{Bans: []Ban{ban("198.18.0.7/32", base, time.Hour)}})
	r := openReadOnlyTest(t, dir)

	err := r.Commit(t.Context(), Batch{Bans: []Ban{ban("198.18.0.9/32", base, time.Hour)}})
	if err == nil {
		t.Fatal("Commit through a read-only store succeeded")
	}
	if err := r.SetMeta(t.Context(), "heartbeat", "x"); err == nil {
		t.Error("SetMeta through a read-only store succeeded")
	}
	bans, err := w.Bans(t.Context(), BanFilter{})
	if err != nil || len(bans) != 1 {
		t.Errorf("bans after the refused writes = %v, %v; want only the first", bans, err)
	}
}

func TestReadOnlyCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "never-ran")
	_, err := OpenReadOnly(t.Context(), dir)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("OpenReadOnly of a missing directory = %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s (stat: %v)", dir, err)
	}
}

func TestReadOnlyRefusesASchemaItCannotRead(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		wantErr error
	}{
		{
			name: "an empty file",
			prepare: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, FileName), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNoSchema,
		},
		{
			name: "a newer schema",
			prepare: func(t *testing.T, dir string) {
				s := openTest(t, dir)
				if _, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_version (version, applied_at) VALUES (?, 0)`,
					SchemaVersion()+1); err != nil {
					t.Fatal(err)
				}
				s.Close()
			},
			wantErr: ErrNewerSchema,
		},
		{
			// Open made the version table and died before the first
			// migration committed.
			name: "a version table and no migration",
			prepare: func(t *testing.T, dir string) {
				s := openTest(t, dir)
				if _, err := s.w.ExecContext(t.Context(), `DELETE FROM schema_version`); err != nil {
					t.Fatal(err)
				}
				s.Close()
			},
			wantErr: ErrNoSchema,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.prepare(t, dir)
			s, err := OpenReadOnly(t.Context(), dir)
			if err == nil {
				s.Close()
				t.Fatal("OpenReadOnly succeeded")
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestReadOnlyDoesNotWaitForAnOpenWriteTransaction(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir)
	commit(t, w, Batch{Bans: []Ban{ban("198.18.0.7/32", base, time.Hour)}})
	r := openReadOnlyTest(t, dir)

	// The daemon in the middle of a commit holds SQLite's write lock; a
	// reader in WAL mode reads the last committed state without waiting
	// (the busy timeout would otherwise hold it for ten seconds).
	tx, err := w.w.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(t.Context(), `DELETE FROM bans`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bans, err := r.Bans(t.Context(), BanFilter{})
	if err != nil || len(bans) != 1 {
		t.Fatalf("Bans during a write = %v, %v; want the committed ban", bans, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the read waited %v for the writer", d)
	}
}
