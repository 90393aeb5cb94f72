package logs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// Position is how far a source has read one stream of lines. Sources hand
// positions over with each Batch; once the consumer has accepted the batch it
// saves them, so a restart resumes after the last accepted line.
//
// A file's position is stored under the path the source follows, but it is
// applied only to the file with the same identity (device, inode and the
// fingerprint of its first line): a different file found at that path after a
// restart (rotated, re-created, or an inode reused) is never read from an
// offset that belonged to another file.
type Position struct {
	// Key names the stream: "file:" and the followed path, "pattern:" and a
	// glob (a marker that the pattern was followed before), or "journal:" and
	// the journal source's name.
	Key string `json:"key"`
	// Path is the name the file that holds the lines had when it was read;
	// after a rotation it differs from the followed path in Key.
	Path string `json:"path,omitempty"`
	// Dev and Inode identify the file on its filesystem.
	Dev   uint64 `json:"dev,omitempty"`
	Inode uint64 `json:"inode,omitempty"`
	// Fingerprint is a hash of the file's first line (at most
	// fingerprintLen bytes), empty while the file has no complete first line.
	// It tells a reused inode from the file that had it before.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Offset is the byte offset just after the last accepted line.
	Offset int64 `json:"offset,omitempty"`
	// Line is the number of lines accepted, so the next line is Line+1.
	Line int64 `json:"line,omitempty"`
	// Cursor is the journal's __CURSOR of the last accepted entry.
	Cursor string `json:"cursor,omitempty"`
}

// PositionStore keeps positions across restarts. The daemon's implementation
// saves positions in the same transaction as the events parsed from the lines
// they cover; FilePositions is a stand-alone one.
type PositionStore interface {
	// Load returns the position saved under key, and false when there is none.
	Load(ctx context.Context, key string) (Position, bool, error)
	// Save stores the positions durably, replacing those with the same keys,
	// before it returns.
	Save(ctx context.Context, positions []Position) error
}

// FilePositions is a PositionStore kept in one JSON file. Every Save rewrites
// the file through a temporary file, fsync and rename, so a crash leaves either
// the old or the new content, never a mix. It is safe for concurrent use.
type FilePositions struct {
	path string

	mu        sync.Mutex
	positions map[string]Position
}

// OpenFilePositions reads the positions saved at path; a missing file is an
// empty store.
func OpenFilePositions(path string) (*FilePositions, error) {
	s := &FilePositions{path: path, positions: make(map[string]Position)}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read positions: %w", err)
	}
	var list []Position
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("parse positions %s: %w", path, err)
	}
	for _, p := range list {
		s.positions[p.Key] = p
	}
	return s, nil
}

// Load implements PositionStore.
func (s *FilePositions) Load(_ context.Context, key string) (Position, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.positions[key]
	return p, ok, nil
}

// Save implements PositionStore.
func (s *FilePositions) Save(_ context.Context, positions []Position) error {
	if len(positions) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make(map[string]Position, len(s.positions)+len(positions))
	for k, p := range s.positions {
		next[k] = p
	}
	for _, p := range positions {
		next[p.Key] = p
	}
	list := make([]Position, 0, len(next))
	for _, p := range next {
		list = append(list, p)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Key < list[j].Key })
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("encode positions: %w", err)
	}
	if err := writeFileAtomic(s.path, append(data, '\n')); err != nil {
		return err
	}
	// Only a durable write changes what Load answers: a failed Save must
	// leave the store as it was, as a rolled-back transaction would.
	s.positions = next
	return nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory is written and synced, renamed over path, and the directory is
// synced so the rename itself survives a crash.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("create temporary positions file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace positions: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
