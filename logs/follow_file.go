package logs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// fingerprintLen bounds the part of a file's first line that is hashed into
// its fingerprint: enough to tell two syslog files apart by their first
// timestamp and message, small enough to read on every check.
const fingerprintLen = 256

// fileID is a file's identity on its filesystem.
type fileID struct {
	dev, ino uint64
}

func idOf(fi fs.FileInfo) fileID {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}
}

func nlinkOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// fingerprint hashes the first line of f (at most fingerprintLen bytes). It
// returns "" while the file holds neither a newline nor fingerprintLen bytes,
// because that prefix may still grow.
func fingerprint(f *os.File) (string, error) {
	var head [fingerprintLen]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read first line of %s: %w", f.Name(), err)
	}
	line := head[:n]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	} else if n < fingerprintLen {
		return "", nil
	}
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:8]), nil
}

// findRotated looks in the directory of path for the file with identity id,
// the way rotation renames it (path.1, path-20240101, ...), skipping
// compressed copies that can no longer be read at an offset.
func findRotated(path string, id fileID) (string, bool) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false
	}
	for _, e := range entries {
		name := e.Name()
		if name == base || !strings.HasPrefix(name, base) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || idOf(fi) != id {
			continue
		}
		return filepath.Join(dir, name), true
	}
	return "", false
}

// tailer follows one path: the file now at that path, or the file that was
// there until a rotation, read to its end before the new one is taken up.
type tailer struct {
	key  string // "file:" + path
	path string // the path followed

	f    *os.File // the file being read; nil while none is open
	name string   // the name f had when opened, for Origin.File
	id   fileID
	fp   string // f's fingerprint; "" until f has a first line
	off  int64  // bytes of f consumed
	line int64  // lines of f consumed

	lb lineBuffer

	lastErr string // the last read error logged, so a lasting one is logged once
}

func newTailer(path string, maxLen, readSize int) *tailer {
	return &tailer{key: "file:" + path, path: path, lb: newLineBuffer(maxLen, readSize)}
}

// position is where the tailer stands after the lines it has handed over.
func (t *tailer) position() Position {
	return Position{
		Key: t.key, Path: t.name, Dev: t.id.dev, Inode: t.id.ino,
		Fingerprint: t.fp, Offset: t.off, Line: t.line,
	}
}

// open starts reading the file at name from off, counting line lines before it.
func (t *tailer) open(name string, off, line int64) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat %s: %w", name, err)
	}
	if off > fi.Size() {
		// Shorter than where we stood: truncated while we were away.
		off, line = 0, 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("seek %s: %w", name, err)
	}
	fp, err := fingerprint(f)
	if err != nil {
		f.Close()
		return err
	}
	t.close()
	t.f, t.name, t.id, t.fp, t.off, t.line = f, name, idOf(fi), fp, off, line
	return nil
}

// rewind starts over at the beginning of the open file, which was truncated
// or rewritten in place.
func (t *tailer) rewind() error {
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s: %w", t.name, err)
	}
	fp, err := fingerprint(t.f)
	if err != nil {
		return err
	}
	t.lb.reset()
	t.fp, t.off, t.line = fp, 0, 0
	return nil
}

func (t *tailer) close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	t.lb.reset()
}

// matches reports whether the saved position p belongs to the file f, whose
// stat is fi: same device and inode, and the same first line (a reused inode
// has different content).
func matches(p Position, f *os.File, fi fs.FileInfo) (bool, error) {
	if id := idOf(fi); id.dev != p.Dev || id.ino != p.Inode {
		return false, nil
	}
	fp, err := fingerprint(f)
	if err != nil {
		return false, err
	}
	return p.Fingerprint == "" || p.Fingerprint == fp, nil
}
