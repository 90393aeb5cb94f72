package logs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const journalRemote = "/lib/systemd/systemd-journal-remote"

// needJournalTools skips when journalctl or systemd-journal-remote (Debian
// package systemd-journal-remote) is missing; CI installs both.
func needJournalTools(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("journalctl not installed: the journal source needs it")
	}
	if _, err := os.Stat(journalRemote); err != nil {
		t.Skip("systemd-journal-remote not installed (apt-get install systemd-journal-remote): it writes the test journals")
	}
}

// journalEntryIn is one entry to write in journal export format.
type journalEntryIn struct {
	ident   string
	message []byte
	unit    string
}

// exportTime is when the first test entry was logged; each next one a
// second later.
var exportTime = time.Date(2026, 12, 4, 21, 52, 46, 0, time.UTC)

// appendJournal writes entries, numbered from seq on for their timestamps,
// to the journal file at path through systemd-journal-remote, the journal's
// own writer; an existing file is appended to.
func appendJournal(t *testing.T, path string, seq int, entries []journalEntryIn) {
	t.Helper()
	var in bytes.Buffer
	for i, e := range entries {
		n := seq + i
		fmt.Fprintf(&in, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n", exportTime.Add(time.Duration(n)*time.Second).UnixMicro(), 1000000+n)
		fmt.Fprintf(&in, "_BOOT_ID=6c1f3a5e0b9d4c2a8e7f1d3b5a9c0e2f\n_HOSTNAME=mx1\n")
		if e.ident != "" {
			fmt.Fprintf(&in, "SYSLOG_IDENTIFIER=%s\n", e.ident)
		}
		if e.unit != "" {
			fmt.Fprintf(&in, "_SYSTEMD_UNIT=%s\n", e.unit)
		}
		// The binary form of a field carries any bytes, newlines and
		// invalid UTF-8 included.
		in.WriteString("MESSAGE\n")
		binary.Write(&in, binary.LittleEndian, uint64(len(e.message)))
		in.Write(e.message)
		in.WriteString("\n\n")
	}
	cmd := exec.Command(journalRemote, "--output="+path, "-")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v: %s", err, out)
	}
}

// numberedEntries are n dovecot entries numbered from..from+n-1.
func numberedEntries(from, n int) []journalEntryIn {
	var out []journalEntryIn
	for i := from; i < from+n; i++ {
		out = append(out, journalEntryIn{
			ident:   "dovecot",
			message: fmt.Appendf(nil, "line %d imap-login: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<u>, method=PLAIN, rip=198.18.0.%d", i, i%250+1),
		})
	}
	return out
}

func newJournalSource(t *testing.T, cfg JournalConfig) *JournalSource {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	cfg.Logger = testLogger(t)
	src, err := NewJournalSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestJournalKeepsMailEntriesWithTimeIdentAndCursor(t *testing.T) {
	needJournalTools(t)
	dir := t.TempDir()
	entries := []journalEntryIn{
		{ident: "postfix/smtpd", unit: "postfix@-.service", message: []byte("connect from unknown[198.18.0.1]")},
		{ident: "cron", message: []byte("not mail")},
		{ident: "postfix/submission/smtpd", unit: "postfix@-.service", message: []byte("warning: unknown[198.18.0.2]: SASL LOGIN authentication failed: \xff\xfe not UTF-8")},
		{ident: "dovecot", message: []byte("imap-login: Disconnected")},
		{ident: "sshd", message: []byte("Failed password for root from 198.18.0.3 port 22 ssh2")},
		{message: []byte("no identifier")},
		{ident: "postfixadmin", message: []byte("not postfix: the pattern is postfix/*")},
		{ident: "exim4", message: []byte("multi\nline")},
		{ident: "exim", message: []byte("plain exim")},
	}
	appendJournal(t, filepath.Join(dir, "remote.journal"), 0, entries)

	c := &collector{}
	start(t, newJournalSource(t, JournalConfig{Directory: dir, FromStart: true}), c)
	c.waitLines(t, 6)
	got := c.got()
	wantIdx := []int{0, 2, 3, 4, 7, 8}
	if len(got) != len(wantIdx) {
		t.Fatalf("got %d lines, want %d: %q", len(got), len(wantIdx), c.texts())
	}
	for i, l := range got {
		e, n := entries[wantIdx[i]], wantIdx[i]
		if !bytes.Equal(l.Text, e.message) || l.Ident != e.ident {
			t.Errorf("line %d = %q from %q, want %q from %q", i, l.Text, l.Ident, e.message, e.ident)
		}
		if want := exportTime.Add(time.Duration(n) * time.Second); !l.Time.Equal(want) {
			t.Errorf("line %d time = %v, want %v", i, l.Time, want)
		}
		if !strings.HasPrefix(l.Origin.Cursor, "s=") || l.Origin.File != "" {
			t.Errorf("line %d origin = %+v, want a journal cursor", i, l.Origin)
		}
	}
}

func TestJournalExactIdentifiersAreJournalctlMatches(t *testing.T) {
	needJournalTools(t)
	dir := t.TempDir()
	appendJournal(t, filepath.Join(dir, "remote.journal"), 0, []journalEntryIn{
		{ident: "postfix/smtpd", message: []byte("p")},
		{ident: "sshd", message: []byte("s")},
		{ident: "dovecot", message: []byte("d")},
	})
	src := newJournalSource(t, JournalConfig{Directory: dir, FromStart: true, Identifiers: []string{"sshd", "dovecot"}})
	if args := src.args("", true); !slices.Contains(args, "SYSLOG_IDENTIFIER=sshd") {
		t.Errorf("journalctl args %q lack the identifier match", args)
	}
	c := &collector{}
	start(t, src, c)
	c.waitLines(t, 2)
	if got := c.texts(); !slices.Equal(got, []string{"s", "d"}) {
		t.Fatalf("lines = %q, want [s d]", got)
	}
}

func TestJournalFollowsAppendsAndResumesAfterRestart(t *testing.T) {
	needJournalTools(t)
	dir := t.TempDir()
	journal := filepath.Join(dir, "remote.journal")
	appendJournal(t, journal, 0, numberedEntries(0, 100))
	store := openStore(t, dir)

	// First start: what is there is old; what comes while following is read.
	c := &collector{store: store}
	r := start(t, newJournalSource(t, JournalConfig{Directory: dir, Store: store}), c)
	c.waitStarted(t)
	appendJournal(t, journal, 100, numberedEntries(100, 50))
	c.waitLines(t, 50)
	appendJournal(t, journal, 150, numberedEntries(150, 50))
	c.waitLines(t, 100)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// Written while stopped: the restart resumes after the saved cursor.
	appendJournal(t, journal, 200, numberedEntries(200, 50))
	c2 := &collector{store: openStore(t, dir)}
	start(t, newJournalSource(t, JournalConfig{Directory: dir, Store: c2.store}), c2)
	c2.waitLines(t, 50)
	appendJournal(t, journal, 250, numberedEntries(250, 50))
	c2.waitLines(t, 100)
	checkSequence(t, numbered(t, append(c.got(), c2.got()...)), 100, 300)
}

func TestJournalRedeliversWhatTheConsumerDidNotAccept(t *testing.T) {
	needJournalTools(t)
	dir := t.TempDir()
	journal := filepath.Join(dir, "remote.journal")
	store := openStore(t, dir)
	// Batch 1 records the start; batch 2 carries the first entries and
	// fails, as a consumer that crashed before committing.
	c := &collector{store: store, failAt: 2}
	r := start(t, newJournalSource(t, JournalConfig{Directory: dir, Store: store, FromStart: true}), c)
	appendJournal(t, journal, 0, numberedEntries(0, 20))
	if err := r.wait(t); !errors.Is(err, errConsumerCrashed) {
		t.Fatalf("Run returned %v, want the consumer's error", err)
	}
	c2 := &collector{store: openStore(t, dir)}
	start(t, newJournalSource(t, JournalConfig{Directory: dir, Store: c2.store}), c2)
	c2.waitLines(t, 20)
	checkSequence(t, numbered(t, append(c.got(), c2.got()...)), 0, 20)
}

func TestJournalFollowsAFileGivenByRelativeName(t *testing.T) {
	needJournalTools(t)
	dir := t.TempDir()
	journal := filepath.Join(dir, "remote.journal")
	appendJournal(t, journal, 0, numberedEntries(0, 10))
	// A bare file name, as journalctl 252 cannot follow it.
	t.Chdir(dir)
	c := &collector{}
	src := newJournalSource(t, JournalConfig{Files: []string{"remote.journal"}, FromStart: true})
	start(t, src, c)
	c.waitLines(t, 10)
	appendJournal(t, journal, 10, numberedEntries(10, 10))
	c.waitLines(t, 20)
	checkSequence(t, numbered(t, c.got()), 0, 20)
	// Run again from the cursor, journalctl would also get the appended
	// entries; following means it never had to be.
	if n := src.Stats().Restarts; n != 0 {
		t.Errorf("journalctl was run again %d times: it did not follow", n)
	}
}

func TestJournalCutsLongMessages(t *testing.T) {
	needJournalTools(t)
	dir := t.TempDir()
	appendJournal(t, filepath.Join(dir, "remote.journal"), 0, []journalEntryIn{
		{ident: "dovecot", message: bytes.Repeat([]byte("x"), 300)},
		{ident: "dovecot", message: []byte("short")},
	})
	c := &collector{}
	src := newJournalSource(t, JournalConfig{Directory: dir, FromStart: true, MaxLineLen: 100})
	start(t, src, c)
	c.waitLines(t, 2)
	if got := c.got(); len(got[0].Text) != 100 || string(got[1].Text) != "short" {
		t.Fatalf("lines = %q", c.texts())
	}
	if n := src.Stats().LinesCut; n != 1 {
		t.Errorf("lines cut = %d, want 1", n)
	}
}

func TestJournalFieldBytes(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"string", `"hello"`, "hello"},
		{"escaped string", `"a\u0000b\n"`, "a\x00b\n"},
		{"bytes, not UTF-8", `[104,105,255]`, "hi\xff"},
		{"null, too large", `null`, ""},
		{"absent", ``, ""},
		{"field twice", `["first","second"]`, "first"},
		{"field twice, first in bytes", `[[104,255],"x"]`, "h\xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fieldBytes([]byte(tt.raw))
			if err != nil || string(got) != tt.want {
				t.Fatalf("fieldBytes(%s) = %q, %v; want %q", tt.raw, got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{`{}`, `[300]`, `[-1]`, `"unterminated`, `"`} {
		if _, err := fieldBytes([]byte(bad)); err == nil {
			t.Errorf("fieldBytes(%s) accepted it", bad)
		}
	}
}

// BenchmarkJournal reads 100,000 entries of a real journal file through
// journalctl, for the journal source's throughput (journalctl's own JSON
// output is most of the cost).
func BenchmarkJournal(b *testing.B) {
	if _, err := exec.LookPath("journalctl"); err != nil {
		b.Skip("journalctl not installed")
	}
	if _, err := os.Stat(journalRemote); err != nil {
		b.Skip("systemd-journal-remote not installed")
	}
	const total = 100_000
	dir := b.TempDir()
	var in bytes.Buffer
	for i, e := range numberedEntries(0, total) {
		fmt.Fprintf(&in, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=6c1f3a5e0b9d4c2a8e7f1d3b5a9c0e2f\nSYSLOG_IDENTIFIER=%s\nMESSAGE=%s\n\n",
			exportTime.Add(time.Duration(i)*time.Millisecond).UnixMicro(), 1000000+i, e.ident, e.message)
	}
	cmd := exec.Command(journalRemote, "--output="+filepath.Join(dir, "remote.journal"), "-")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("systemd-journal-remote: %v: %s", err, out)
	}
	b.ResetTimer()
	for range b.N {
		src, err := NewJournalSource(JournalConfig{Directory: dir, FromStart: true})
		if err != nil {
			b.Fatal(err)
		}
		readAll(b, src, total)
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "lines/s")
}
