package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultPollInterval is how often a FileSource looks at its files even when
// inotify said nothing: inotify misses changes on network filesystems and
// says nothing about a file that replaced a watched one in an unwatched
// directory.
const DefaultPollInterval = time.Second

// FileConfig says what a FileSource follows and how.
type FileConfig struct {
	// Paths are the files to follow: plain paths, or globs (filepath.Match
	// syntax) that are matched again as files appear. A glob should match the
	// live files only, not their rotated copies: a rotated copy is followed
	// through the live name it had.
	Paths []string
	// Store has the positions saved by an earlier run. Nil starts afresh
	// every time.
	Store PositionStore
	// FromStart reads files with no saved position from their beginning. By
	// default a first start begins at the end of files that exist then; files
	// that appear later, and files that appeared while portcullis was stopped
	// after a first start, are always read from their beginning.
	FromStart bool
	// MaxLineLen is the longest line handed over; longer lines are cut to it
	// and the rest discarded. Zero means DefaultMaxLineLen.
	MaxLineLen int
	// PollInterval is how often files are looked at without an inotify
	// event. Zero means DefaultPollInterval.
	PollInterval time.Duration
	// ReadSize is how many bytes one read takes at most, and so roughly the
	// size of a batch. Zero means 256 KiB.
	ReadSize int
	// Logger receives rotations, truncations and read errors. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// FileStats counts what a FileSource met while following.
type FileStats struct {
	LinesCut    int64 // lines longer than MaxLineLen, cut
	Rotations   int64 // moves from a rotated file to its successor
	Truncations int64 // files found truncated or rewritten in place
}

// FileSource follows log files through rotation and restarts. It reads from
// one goroutine, its Run's.
type FileSource struct {
	cfg FileConfig
	log *slog.Logger

	// Owned by Run.
	tailers  map[string]*tailer
	patterns map[string]bool // glob patterns seen by an earlier run
	watched  map[string]bool
	lines    []Line
	handle   func(Batch) error

	cut, rotations, truncations atomic.Int64
}

// NewFileSource checks cfg and returns a source for it.
func NewFileSource(cfg FileConfig) (*FileSource, error) {
	if len(cfg.Paths) == 0 {
		return nil, errors.New("file source: no paths")
	}
	for _, p := range cfg.Paths {
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("file source: pattern %q: %w", p, err)
		}
	}
	if cfg.MaxLineLen <= 0 {
		cfg.MaxLineLen = DefaultMaxLineLen
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.ReadSize <= 0 {
		cfg.ReadSize = defaultReadSize
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &FileSource{cfg: cfg, log: log}, nil
}

// Stats returns the counts so far; it may be called while Run runs.
func (s *FileSource) Stats() FileStats {
	return FileStats{LinesCut: s.cut.Load(), Rotations: s.rotations.Load(), Truncations: s.truncations.Load()}
}

// errConsumer marks an error that handle returned, which ends Run; read errors
// on one file are logged and retried instead.
type errConsumer struct{ err error }

func (e errConsumer) Error() string { return e.err.Error() }
func (e errConsumer) Unwrap() error { return e.err }

// Run follows the files and hands their lines to handle until ctx is done or
// handle fails. It implements Source.
func (s *FileSource) Run(ctx context.Context, handle func(Batch) error) error {
	s.tailers = make(map[string]*tailer)
	s.patterns = make(map[string]bool)
	s.watched = make(map[string]bool)
	s.handle = handle
	defer func() {
		for _, t := range s.tailers {
			t.close()
		}
	}()

	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		// Polling alone still follows everything, only later.
		s.log.Warn("inotify unavailable, polling only", "err", err)
		watcher = nil
	} else {
		defer watcher.Close()
	}
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	if watcher != nil {
		events, watchErrs = watcher.Events, watcher.Errors
	}

	var first []Position
	for _, p := range s.cfg.Paths {
		if !isGlob(p) {
			continue
		}
		_, seen, err := s.load(ctx, "pattern:"+p)
		if err != nil {
			return err
		}
		s.patterns[p] = seen
		first = append(first, Position{Key: "pattern:" + p})
	}
	s.watch(watcher)
	started, err := s.scan(ctx, true)
	if err != nil {
		return err
	}
	// Record where a first start began before anything else, so a restart
	// knows it is not a first start.
	if first = append(first, started...); len(first) > 0 {
		if err := s.emit(Batch{Positions: first}); err != nil {
			return err
		}
	}
	if err := s.stepAll(ctx, nil); err != nil {
		return err
	}

	ticker := time.NewTicker(s.cfg.PollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			dirs := map[string]bool{filepath.Dir(ev.Name): true}
			created := ev.Has(fsnotify.Create)
			// Take what else is queued: one pass over the files serves a
			// burst of writes.
		drain:
			for range 4096 {
				select {
				case ev, ok := <-events:
					if !ok {
						break drain
					}
					dirs[filepath.Dir(ev.Name)] = true
					created = created || ev.Has(fsnotify.Create)
				default:
					break drain
				}
			}
			if created {
				if err := s.rescan(ctx); err != nil {
					return err
				}
			}
			if err := s.stepAll(ctx, dirs); err != nil {
				return err
			}
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			// An overflowed queue lost events: look at everything.
			s.log.Warn("inotify", "err", err)
			if err := s.stepAll(ctx, nil); err != nil {
				return err
			}
		case <-ticker.C:
			s.watch(watcher)
			if err := s.rescan(ctx); err != nil {
				return err
			}
			if err := s.stepAll(ctx, nil); err != nil {
				return err
			}
		}
	}
}

func isGlob(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '*', '?', '[', '\\':
			return true
		}
	}
	return false
}

func (s *FileSource) load(ctx context.Context, key string) (Position, bool, error) {
	if s.cfg.Store == nil {
		return Position{}, false, nil
	}
	p, ok, err := s.cfg.Store.Load(ctx, key)
	if err != nil {
		return Position{}, false, fmt.Errorf("load position %s: %w", key, err)
	}
	return p, ok, nil
}

// watch adds an inotify watch on the directory of every path whose directory
// is not a glob; directories that do not exist yet are tried again later.
func (s *FileSource) watch(w *fsnotify.Watcher) {
	if w == nil {
		return
	}
	for _, p := range s.cfg.Paths {
		dir := filepath.Dir(p)
		if s.watched[dir] || isGlob(dir) {
			continue
		}
		if err := w.Add(dir); err == nil {
			s.watched[dir] = true
		}
	}
}

func (s *FileSource) rescan(ctx context.Context) error {
	started, err := s.scan(ctx, false)
	if err != nil || len(started) == 0 {
		return err
	}
	return s.emit(Batch{Positions: started})
}

// scan makes a tailer for every path and every file a glob matches that has
// none yet, and returns the positions they start from.
func (s *FileSource) scan(ctx context.Context, initial bool) ([]Position, error) {
	var started []Position
	for _, p := range s.cfg.Paths {
		paths := []string{p}
		if isGlob(p) {
			var err error
			if paths, err = filepath.Glob(p); err != nil {
				return nil, fmt.Errorf("match %s: %w", p, err)
			}
		}
		for _, path := range paths {
			if s.tailers[path] != nil {
				continue
			}
			if isGlob(p) {
				if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
					continue
				}
			}
			t := newTailer(path, s.cfg.MaxLineLen, s.cfg.ReadSize)
			s.tailers[path] = t
			// A file at a path seen for the first time is old news only on a
			// first start; one that appeared since is read whole.
			fromEnd := initial && !s.cfg.FromStart && !s.patterns[p]
			pos, err := s.start(ctx, t, fromEnd)
			if err != nil {
				return nil, err
			}
			if pos != nil {
				started = append(started, *pos)
			}
		}
	}
	return started, nil
}

// start opens t's file where the saved position says, or where a start
// without one begins. It returns the position to record when there was none.
func (s *FileSource) start(ctx context.Context, t *tailer, fromEnd bool) (*Position, error) {
	saved, ok, err := s.load(ctx, t.key)
	if err != nil {
		return nil, err
	}
	if ok {
		s.resume(t, saved)
		return nil, nil
	}
	if fromEnd {
		if err := s.openAtEnd(t); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("open log", "path", t.path, "err", err)
		}
	} else if err := t.open(t.path, 0, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("open log", "path", t.path, "err", err)
	}
	pos := t.position()
	return &pos, nil
}

// openAtEnd opens t's file after its last complete line, counting the lines
// before it so line numbers stay true.
func (s *FileSource) openAtEnd(t *tailer) error {
	if err := t.open(t.path, 0, 0); err != nil {
		return err
	}
	var lines, lastEnd, off int64
	buf := t.lb.buf
	for {
		n, err := t.f.Read(buf)
		chunk, at := buf[:n], off
		for i := bytes.IndexByte(chunk, '\n'); i >= 0; i = bytes.IndexByte(chunk, '\n') {
			lines++
			at += int64(i) + 1
			lastEnd = at
			chunk = chunk[i+1:]
		}
		off += int64(n)
		if errors.Is(err, io.EOF) || n == 0 {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", t.path, err)
		}
	}
	if _, err := t.f.Seek(lastEnd, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s: %w", t.path, err)
	}
	t.off, t.line = lastEnd, lines
	return nil
}

// resume finds the file a saved position belongs to: the file at the path if
// it is the same one, else the file it was rotated to while portcullis was
// stopped, whose rest is read before the file now at the path.
func (s *FileSource) resume(t *tailer, saved Position) {
	candidates := []string{t.path}
	if saved.Path != "" && saved.Path != t.path {
		candidates = append(candidates, saved.Path)
	}
	if rotated, ok := findRotated(t.path, fileID{dev: saved.Dev, ino: saved.Inode}); ok {
		candidates = append(candidates, rotated)
	}
	for _, name := range candidates {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		same := err == nil
		if same {
			same, err = matches(saved, f, fi)
		}
		f.Close()
		if err != nil {
			s.log.Warn("check saved position", "path", name, "err", err)
			continue
		}
		if !same {
			continue
		}
		if err := t.open(name, saved.Offset, saved.Line); err != nil {
			s.log.Warn("open log", "path", name, "err", err)
			continue
		}
		if name != t.path {
			s.log.Info("finishing rotated log", "path", t.path, "rotated", name, "offset", saved.Offset)
		}
		return
	}
	if saved.Dev != 0 && saved.Offset > 0 {
		s.log.Warn("log read before the restart is gone; reading the file now there from its start",
			"path", t.path, "offset", saved.Offset)
	}
	if err := t.open(t.path, 0, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("open log", "path", t.path, "err", err)
	}
}

// stepAll steps the tailers in dirs, or all of them when dirs is nil, in a
// fixed order.
func (s *FileSource) stepAll(ctx context.Context, dirs map[string]bool) error {
	paths := make([]string, 0, len(s.tailers))
	for p := range s.tailers {
		if dirs == nil || dirs[filepath.Dir(p)] {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := s.step(ctx, s.tailers[p]); err != nil {
			return err
		}
	}
	return nil
}

// step reads what is new for t: the rest of its file, and the file that
// replaced it once the writer has moved there. Only the consumer's errors are
// returned; read errors are logged, and the next step tries again.
func (s *FileSource) step(ctx context.Context, t *tailer) error {
	err := s.follow(ctx, t)
	var ce errConsumer
	if errors.As(err, &ce) || ctx.Err() != nil {
		return err
	}
	// A file that cannot be read is retried on every step; say so once per
	// kind of failure, not once per second.
	if err != nil && err.Error() != t.lastErr {
		s.log.Warn("follow log", "path", t.path, "err", err)
	}
	t.lastErr = ""
	if err != nil {
		t.lastErr = err.Error()
	}
	return nil
}

func (s *FileSource) follow(ctx context.Context, t *tailer) error {
	if t.f == nil {
		if err := t.open(t.path, 0, 0); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		s.log.Info("following log", "path", t.path)
	}
	if err := s.checkTruncated(t); err != nil {
		return err
	}
	if err := s.readToEnd(ctx, t); err != nil {
		return err
	}
	fi, err := os.Stat(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		// Moved or deleted: keep reading it until a successor appears.
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", t.path, err)
	}
	if idOf(fi) == t.id || fi.Size() == 0 {
		// The same file, or a successor the writer has not written to yet
		// and so may still be writing to the old one.
		return nil
	}
	// The writer has moved on to the new file, so everything it wrote to
	// the old one is there now: read it to the end, including a last line
	// that will never get its newline, then take up the new one.
	if err := s.readToEnd(ctx, t); err != nil {
		return err
	}
	if line, raw := t.lb.rest(); raw > 0 {
		s.noteCut(t)
		t.off += raw
		t.line++
		s.lines = append(s.lines[:0], Line{Text: line, Origin: Origin{File: t.name, Line: t.line}})
		if err := s.emit(Batch{Lines: s.lines, Positions: []Position{t.position()}}); err != nil {
			return err
		}
	}
	old := t.name
	if err := t.open(t.path, 0, 0); err != nil {
		return err
	}
	s.rotations.Add(1)
	s.log.Info("log rotated", "path", t.path, "previous", old)
	return s.readToEnd(ctx, t)
}

// checkTruncated starts t over when its file was truncated (copytruncate) or
// rewritten in place: shorter than what was read, or a different first line.
func (s *FileSource) checkTruncated(t *tailer) error {
	fi, err := t.f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", t.name, err)
	}
	truncated := fi.Size() < t.off
	if !truncated && t.fp != "" {
		fp, err := fingerprint(t.f)
		if err != nil {
			return err
		}
		truncated = fp != t.fp
	}
	if !truncated {
		return nil
	}
	s.truncations.Add(1)
	s.log.Info("log truncated", "path", t.name, "size", fi.Size(), "offset", t.off)
	return t.rewind()
}

// readToEnd hands over every complete line up to the end of t's file, one
// batch per read.
func (s *FileSource) readToEnd(ctx context.Context, t *tailer) error {
	for {
		n, err := t.lb.fill(t.f)
		if n > 0 {
			s.lines = s.lines[:0]
			for {
				text, raw, ok := t.lb.next()
				if !ok {
					break
				}
				t.off += raw
				t.line++
				s.lines = append(s.lines, Line{Text: text, Origin: Origin{File: t.name, Line: t.line}})
			}
			s.noteCut(t)
			if len(s.lines) > 0 {
				if t.fp == "" {
					fp, ferr := fingerprint(t.f)
					if ferr != nil {
						return ferr
					}
					t.fp = fp
				}
				if err := s.emit(Batch{Lines: s.lines, Positions: []Position{t.position()}}); err != nil {
					return err
				}
			}
		}
		if errors.Is(err, io.EOF) || n == 0 {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", t.name, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func (s *FileSource) noteCut(t *tailer) {
	if t.lb.cut != 0 {
		s.cut.Add(t.lb.cut)
		t.lb.cut = 0
	}
}

func (s *FileSource) emit(b Batch) error {
	if err := s.handle(b); err != nil {
		return errConsumer{err}
	}
	return nil
}
