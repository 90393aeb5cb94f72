package logs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestFilePositionsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "positions.json")
	s, err := OpenFilePositions(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Load(ctx, "file:/var/log/mail.log"); ok || err != nil {
		t.Fatalf("empty store: Load = %v, %v", ok, err)
	}
	a := Position{Key: "file:/var/log/mail.log", Path: "/var/log/mail.log", Dev: 2049, Inode: 77, Fingerprint: "ab", Offset: 4096, Line: 40}
	b := Position{Key: "journal:mail", Cursor: "s=1;i=2"}
	if err := s.Save(ctx, []Position{a, b}); err != nil {
		t.Fatal(err)
	}
	a.Offset, a.Line = 8192, 80
	if err := s.Save(ctx, []Position{a}); err != nil {
		t.Fatal(err)
	}

	reopened, err := OpenFilePositions(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Position{a, b} {
		got, ok, err := reopened.Load(ctx, want.Key)
		if err != nil || !ok || got != want {
			t.Errorf("Load(%q) = %+v, %v, %v; want %+v", want.Key, got, ok, err, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the positions file (no temporary left)", len(entries))
	}
}

func TestFilePositionsFailedSaveChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFilePositions(filepath.Join(dir, "positions.json"))
	if err != nil {
		t.Fatal(err)
	}
	kept := Position{Key: "k", Offset: 1}
	if err := s.Save(ctx, []Position{kept}); err != nil {
		t.Fatal(err)
	}
	// A directory that cannot be written makes the next save fail.
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if os.Geteuid() == 0 {
		// root writes anyway; make the temporary file's place a file instead.
		s.path = filepath.Join(dir, "positions.json", "x")
	}
	if err := s.Save(ctx, []Position{{Key: "k", Offset: 2}}); err == nil {
		t.Fatal("Save into an unwritable place succeeded")
	}
	if got, _, _ := s.Load(ctx, "k"); got != kept {
		t.Errorf("after a failed Save, Load = %+v, want %+v", got, kept)
	}
}

func TestOpenFilePositionsRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "positions.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFilePositions(path); err == nil {
		t.Fatal("OpenFilePositions accepted a corrupt file")
	}
}
