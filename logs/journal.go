package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultJournalIdentifiers are the syslog identifiers of the mail software
// and sshd. "postfix/*" stands for every Postfix daemon (postfix/smtpd,
// postfix/postscreen, postfix/submission/smtpd, ...).
var DefaultJournalIdentifiers = []string{"postfix/*", "dovecot", "exim", "exim4", "sshd"}

// JournalConfig says which journal a JournalSource reads and which entries.
//
// journalctl matches a field only exactly: SYSLOG_IDENTIFIER=postfix/* matches
// nothing, and -t takes no patterns either (only -u does, and only against
// units already in the journal when journalctl starts). Postfix logs each
// daemon under its own identifier, and master.cf's syslog_name makes more
// (postfix/submission/smtpd), so a fixed list would miss some. When every
// identifier is exact, they are passed to journalctl as matches; when one is
// a pattern, journalctl sends every entry and the source keeps the matching
// ones. Matches narrows what journalctl sends with its own match syntax
// instead, e.g. "_SYSTEMD_UNIT=postfix@-.service", "+",
// "SYSLOG_IDENTIFIER=dovecot" (fields of one name are OR'ed, different names
// AND'ed, and "+" ORs groups).
type JournalConfig struct {
	// Name tells this source's position from others; the key is "journal:"
	// and Name. Empty means "journal".
	Name string
	// Journalctl is the program to run; empty means "journalctl" on PATH.
	Journalctl string
	// Directory reads the journal files in one directory instead of the
	// system journal (journalctl --directory); it is followed as it grows.
	Directory string
	// Files reads these journal files (journalctl --file; globs allowed),
	// followed as they grow. They are made absolute: journalctl 252 follows a
	// file by watching its directory and fails on a bare name ("Failed to
	// get journal fd: Destination address required", the error systemd's
	// path_extract_directory gives for a path without a directory).
	Files []string
	// Identifiers are the SYSLOG_IDENTIFIER values to keep; one ending in
	// "*" matches every identifier that starts with what precedes the "*".
	// Nil means DefaultJournalIdentifiers.
	Identifiers []string
	// Matches, when set, replace the matches made from Identifiers on
	// journalctl's command line; Identifiers still filter what it sends.
	Matches []string
	// Store has the cursor saved by an earlier run. Nil starts afresh.
	Store PositionStore
	// FromStart reads the whole journal when there is no saved cursor; by
	// default a first start begins after the journal's last entry.
	FromStart bool
	// MaxLineLen cuts longer messages; zero means DefaultMaxLineLen.
	MaxLineLen int
	// PollInterval is how long to wait before running journalctl again
	// after it ended. Zero means DefaultPollInterval.
	PollInterval time.Duration
	// Logger receives restarts and errors; nil means slog.Default().
	Logger *slog.Logger
}

// JournalSource follows the systemd journal through journalctl --output=json,
// resuming after the cursor of the last accepted entry.
type JournalSource struct {
	cfg    JournalConfig
	key    string
	exact  map[string]bool
	prefix []string
	log    *slog.Logger

	cut, restarts atomic.Int64
}

// JournalStats counts what a JournalSource met while following.
type JournalStats struct {
	LinesCut int64 // messages longer than MaxLineLen, cut
	Restarts int64 // times journalctl ended and was run again
}

// Stats returns the counts so far; it may be called while Run runs.
func (s *JournalSource) Stats() JournalStats {
	return JournalStats{LinesCut: s.cut.Load(), Restarts: s.restarts.Load()}
}

// NewJournalSource checks cfg and returns a source for it.
func NewJournalSource(cfg JournalConfig) (*JournalSource, error) {
	if cfg.Directory != "" && len(cfg.Files) > 0 {
		return nil, errors.New("journal source: both a directory and files")
	}
	files := make([]string, len(cfg.Files))
	for i, f := range cfg.Files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("journal source: file %s: %w", f, err)
		}
		files[i] = abs
	}
	cfg.Files = files
	if cfg.Name == "" {
		cfg.Name = "journal"
	}
	if cfg.Journalctl == "" {
		cfg.Journalctl = "journalctl"
	}
	if cfg.Identifiers == nil {
		cfg.Identifiers = DefaultJournalIdentifiers
	}
	if cfg.MaxLineLen <= 0 {
		cfg.MaxLineLen = DefaultMaxLineLen
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	s := &JournalSource{cfg: cfg, key: "journal:" + cfg.Name, exact: make(map[string]bool), log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	for _, id := range cfg.Identifiers {
		if p, ok := strings.CutSuffix(id, "*"); ok {
			s.prefix = append(s.prefix, p)
		} else {
			s.exact[id] = true
		}
	}
	return s, nil
}

// keeps reports whether entries with this identifier are handed over.
func (s *JournalSource) keeps(ident []byte) bool {
	if s.exact[string(ident)] {
		return true
	}
	for _, p := range s.prefix {
		if bytes.HasPrefix(ident, []byte(p)) {
			return true
		}
	}
	return false
}

// args is journalctl's command line after the program name.
func (s *JournalSource) args(cursor string, follow bool) []string {
	args := []string{"--no-pager", "--output=json", "--output-fields=MESSAGE,SYSLOG_IDENTIFIER"}
	if s.cfg.Directory != "" {
		args = append(args, "--directory="+s.cfg.Directory)
	}
	for _, f := range s.cfg.Files {
		args = append(args, "--file="+f)
	}
	if follow {
		args = append(args, "--follow")
	}
	if cursor != "" {
		args = append(args, "--after-cursor="+cursor)
	} else {
		args = append(args, "--lines=all")
	}
	switch {
	case s.cfg.Matches != nil:
		args = append(args, s.cfg.Matches...)
	case len(s.prefix) == 0:
		for _, id := range s.cfg.Identifiers {
			args = append(args, "SYSLOG_IDENTIFIER="+id)
		}
	}
	return args
}

// Run follows the journal and hands its matching entries to handle until ctx
// is done or handle fails. journalctl is restarted, from the last cursor,
// when it ends. It implements Source.
func (s *JournalSource) Run(ctx context.Context, handle func(Batch) error) error {
	cursor, err := s.startCursor(ctx, handle)
	if err != nil {
		return err
	}
	r := journalReader{src: s, handle: handle, cursor: cursor}
	for {
		err := r.run(ctx)
		var ce errConsumer
		if errors.As(err, &ce) {
			return ce.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.restarts.Add(1)
		if err != nil {
			s.log.Warn("journalctl", "err", err)
		} else {
			s.log.Warn("journalctl ended; running it again")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.cfg.PollInterval):
		}
	}
}

// startCursor returns the saved cursor; without one, it settles where a first
// start begins and has handle record it.
func (s *JournalSource) startCursor(ctx context.Context, handle func(Batch) error) (string, error) {
	if s.cfg.Store != nil {
		p, ok, err := s.cfg.Store.Load(ctx, s.key)
		if err != nil {
			return "", fmt.Errorf("load position %s: %w", s.key, err)
		}
		if ok {
			return p.Cursor, nil
		}
	}
	cursor := ""
	if !s.cfg.FromStart {
		// The last entry now; an empty journal has none, and all that
		// comes is new.
		args := append(s.args("", false), "--lines=1")
		out, err := s.command(ctx, args).Output()
		if err != nil {
			return "", fmt.Errorf("find the journal's end: %w", exitDetail(err))
		}
		var e struct {
			Cursor string `json:"__CURSOR"`
		}
		if line, _, _ := bytes.Cut(out, []byte("\n")); len(line) > 0 {
			if err := json.Unmarshal(line, &e); err != nil {
				return "", fmt.Errorf("read the journal's last entry: %w", err)
			}
		}
		cursor = e.Cursor
	}
	if err := handle(Batch{Positions: []Position{{Key: s.key, Cursor: cursor}}}); err != nil {
		return "", err
	}
	return cursor, nil
}

func (s *JournalSource) command(ctx context.Context, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.cfg.Journalctl, args...)
	// Cancel kills journalctl; its output pipe then ends and Wait returns.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// exitDetail adds what journalctl said on stderr to its exit error.
func exitDetail(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}

// journalReader turns journalctl's JSON lines into batches.
type journalReader struct {
	src    *JournalSource
	handle func(Batch) error
	cursor string // of the last entry handed over

	lines  []Line
	arena  []byte            // the batch's message texts
	idents map[string]string // interned identifiers: few, repeated often
}

// maxBatch bounds the entries in one batch; journalctl writes entry by entry,
// so a batch ends sooner when no more output is waiting.
const maxBatch = 4096

// run runs journalctl once, to its end or ctx's.
func (r *journalReader) run(ctx context.Context) error {
	s := r.src
	cmd := s.command(ctx, s.args(r.cursor, true))
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("journalctl stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start journalctl: %w", err)
	}
	readErr := r.read(bufio.NewReaderSize(out, 1<<20))
	if readErr != nil {
		// Stop journalctl before waiting for it: the consumer failed.
		cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	if readErr != nil {
		return readErr
	}
	if waitErr != nil && ctx.Err() == nil {
		return fmt.Errorf("journalctl %s: %w: %s", strings.Join(cmd.Args[1:], " "), waitErr, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

// journalEntry is the part of journalctl's JSON the source uses.
type journalEntry struct {
	Cursor   string          `json:"__CURSOR"`
	Realtime string          `json:"__REALTIME_TIMESTAMP"`
	Ident    json.RawMessage `json:"SYSLOG_IDENTIFIER"`
	Message  json.RawMessage `json:"MESSAGE"`
}

func (r *journalReader) read(br *bufio.Reader) error {
	var pending []byte // an entry longer than br's buffer, being assembled
	var lastCursor string
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			pending = append(pending, chunk...)
			continue
		}
		line := chunk
		if pending != nil {
			pending = append(pending, chunk...)
			line = pending
		}
		if len(bytes.TrimSpace(line)) > 0 {
			c, err := r.add(line)
			if err != nil {
				return err
			}
			lastCursor = c
		}
		pending = nil
		if err != nil {
			// journalctl ended; what it wrote before is all handed over.
			return r.flush(lastCursor)
		}
		if br.Buffered() == 0 || len(r.lines) >= maxBatch {
			if err := r.flush(lastCursor); err != nil {
				return err
			}
		}
	}
}

// add decodes one entry and keeps it when its identifier matches; it returns
// the entry's cursor.
func (r *journalReader) add(line []byte) (string, error) {
	var e journalEntry
	if err := json.Unmarshal(line, &e); err != nil {
		// A line that is not an entry cannot be skipped safely: it has no
		// cursor to resume after.
		return "", fmt.Errorf("decode journal entry %.80q: %w", line, err)
	}
	ident, err := fieldBytes(e.Ident)
	if err != nil {
		return "", fmt.Errorf("journal entry %s: SYSLOG_IDENTIFIER: %w", e.Cursor, err)
	}
	if !r.src.keeps(ident) {
		return e.Cursor, nil
	}
	msg, err := fieldBytes(e.Message)
	if err != nil {
		return "", fmt.Errorf("journal entry %s: MESSAGE: %w", e.Cursor, err)
	}
	if len(msg) > r.src.cfg.MaxLineLen {
		msg = msg[:r.src.cfg.MaxLineLen]
		r.src.cut.Add(1)
	}
	var t time.Time
	if us, err := strconv.ParseInt(e.Realtime, 10, 64); err == nil {
		t = time.UnixMicro(us).UTC()
	}
	if r.idents == nil {
		r.idents = make(map[string]string)
	}
	id, ok := r.idents[string(ident)]
	if !ok {
		id = string(ident)
		r.idents[id] = id
	}
	start := len(r.arena)
	r.arena = append(r.arena, msg...)
	r.lines = append(r.lines, Line{
		Text:   r.arena[start:len(r.arena):len(r.arena)],
		Time:   t,
		Ident:  id,
		Origin: Origin{Cursor: e.Cursor},
	})
	return e.Cursor, nil
}

// flush hands over the lines collected, with the cursor of the last entry
// read, kept or not.
func (r *journalReader) flush(cursor string) error {
	if len(r.lines) == 0 {
		return nil
	}
	// The arena may have moved as it grew: point the texts into its final
	// place.
	off := 0
	for i := range r.lines {
		n := len(r.lines[i].Text)
		r.lines[i].Text = r.arena[off : off+n : off+n]
		off += n
	}
	if err := r.handle(Batch{Lines: r.lines, Positions: []Position{{Key: r.src.key, Cursor: cursor}}}); err != nil {
		return errConsumer{err}
	}
	r.cursor = cursor
	r.lines, r.arena = r.lines[:0], r.arena[:0]
	return nil
}

// fieldBytes decodes a journal field as journalctl's JSON writes it: a
// string; an array of bytes when the value is not valid UTF-8; null when it
// is too large; an array of those when the entry has the field more than
// once, of which the first is taken.
func fieldBytes(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	switch raw[0] {
	case '"':
		// Most messages need no unescaping: take them as they are.
		if n := len(raw); n >= 2 && raw[n-1] == '"' && bytes.IndexByte(raw[1:n-1], '\\') < 0 {
			return raw[1 : n-1], nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return nil, nil
		}
		if c := bytes.TrimSpace(items[0]); len(c) > 0 && (c[0] == '"' || c[0] == '[' || c[0] == 'n') {
			return fieldBytes(items[0])
		}
		var b []byte
		for _, it := range items {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(it)), 10, 8)
			if err != nil {
				return nil, fmt.Errorf("byte array: %w", err)
			}
			b = append(b, byte(n))
		}
		return b, nil
	}
	return nil, fmt.Errorf("unexpected JSON %.20q", raw)
}

// limitedWriter keeps the first n bytes written and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
