package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// base is a fixed moment so tests do not depend on the clock.
var base = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func commit(t *testing.T, s *Store, b Batch) {
	t.Helper()
	if err := s.Commit(t.Context(), b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func event(addr string, at time.Time, rule string) logs.Event {
	return logs.Event{
		Time:     at,
		Service:  "submission",
		Kind:     logs.KindAuthFailure,
		Addr:     netip.MustParseAddr(addr),
		User:     "alice@example.org",
		Attempts: 1,
		Rule:     rule,
		Origin:   logs.Origin{File: "/var/log/mail.log", Line: 42},
	}
}

func ban(prefix string, start time.Time, d time.Duration) Ban {
	b := Ban{
		Prefix:   netip.MustParsePrefix(prefix),
		Scope:    ScopeAll,
		Origin:   OriginLog,
		Reason:   "5 auth failures in 2m",
		Start:    start,
		Evidence: 5,
	}
	if d > 0 {
		b.Expires = start.Add(d)
	}
	return b
}

// count runs a COUNT(*) query on the database.
func count(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.r.QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestOpenCreatesPrivateWALDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := openTest(t, dir)
	commit(t, s, Batch{Events: []logs.Event{event("198.18.0.1", base, "r")}})

	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v, want 0700", st.Mode().Perm())
	}
	for _, name := range []string{FileName, FileName + "-wal", FileName + "-shm"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	var mode string
	if err := s.r.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode %q, want wal", mode)
	}
	var syncMode, fk int
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA synchronous`).Scan(&syncMode); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if syncMode != 2 || fk != 1 {
		t.Errorf("synchronous %d foreign_keys %d, want 2 (FULL) and 1", syncMode, fk)
	}
}

func TestCommitRoundTrips(t *testing.T) {
	s := openTest(t, t.TempDir())
	events := []logs.Event{
		event("198.18.0.1", base, "postfix-sasl"),
		{
			Time: base.Add(time.Microsecond), Service: "imap", Kind: logs.KindAuthFailure,
			Addr: netip.MustParseAddr("fd00::1"), User: "", Attempts: 3, Rule: "dovecot-auth",
			Origin: logs.Origin{Cursor: "s=abc;i=1f"}, Country: "NZ",
		},
		{
			Time: base.Add(2 * time.Second), Service: "smtp", Kind: logs.KindProtocolAbuse,
			Addr: netip.MustParseAddr("198.19.255.255"), Attempts: 1, Rule: "postscreen-pregreet",
		},
	}
	permanent := ban("198.18.7.0/24", base, 0)
	permanent.Origin, permanent.Scope, permanent.Key = OriginManual, ScopeMail, "ctl-7"
	// In the order they come back: by start, then as recorded.
	bans := []Ban{ban("198.18.0.1/32", base, time.Hour), permanent, ban("fd00::/64", base.Add(time.Second), 4*time.Hour)}
	positions := []Position{
		{Key: "file:/var/log/mail.log", Path: "/var/log/mail.log", Dev: 1<<63 + 5, Inode: 1<<64 - 1, Fingerprint: "ab12", Offset: 123456, Line: 789},
		{Key: "journal:mail", Cursor: "s=abc;i=1f"},
	}
	commit(t, s, Batch{Events: events, Bans: bans, Positions: positions})

	gotEvents, err := s.Events(t.Context(), EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotEvents, events) {
		t.Errorf("events:\n got %+v\nwant %+v", gotEvents, events)
	}
	// No country known is NULL, so that reports can tell it from a code.
	if n := count(t, s, `SELECT COUNT(*) FROM events WHERE country IS NULL`); n != 2 {
		t.Errorf("%d events with a NULL country, want 2", n)
	}
	gotBans, err := s.Bans(t.Context(), BanFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range gotBans {
		if gotBans[i].ID == 0 {
			t.Errorf("ban %d has no id", i)
		}
		gotBans[i].ID = 0
	}
	if !reflect.DeepEqual(gotBans, bans) {
		t.Errorf("bans:\n got %+v\nwant %+v", gotBans, bans)
	}
	for _, want := range positions {
		got, ok, err := s.Position(t.Context(), want.Key)
		if err != nil || !ok || got != want {
			t.Errorf("Position(%s) = %+v, %v, %v; want %+v", want.Key, got, ok, err, want)
		}
	}
	if _, ok, err := s.Position(t.Context(), "file:/nowhere"); ok || err != nil {
		t.Errorf("Position of an unknown key: ok %v, err %v", ok, err)
	}

	// A later position replaces the earlier one under its key.
	moved := positions[0]
	moved.Offset, moved.Line = 999999, 1000
	commit(t, s, Batch{Positions: []Position{moved}})
	all, err := s.Positions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := []Position{moved, positions[1]}; !reflect.DeepEqual(all, want) {
		t.Errorf("Positions after an update = %+v, want %+v", all, want)
	}
}

func TestIPv4MappedAddressesAreStoredAsIPv4(t *testing.T) {
	s := openTest(t, t.TempDir())
	ev := event("::ffff:198.18.0.9", base, "r")
	commit(t, s, Batch{Events: []logs.Event{ev}})
	got, err := s.Events(t.Context(), EventFilter{Within: netip.MustParsePrefix("198.18.0.9/32")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Addr != netip.MustParseAddr("198.18.0.9") {
		t.Fatalf("events of 198.18.0.9 = %+v, want the one event with the IPv4 address", got)
	}
}

func TestCommitRejectsBadItemsAndWritesNothing(t *testing.T) {
	good := Batch{
		Events:    []logs.Event{event("198.18.0.1", base, "r")},
		Bans:      []Ban{ban("198.18.0.1/32", base, time.Hour)},
		Positions: []Position{{Key: "file:/a", Offset: 10}},
	}
	tests := []struct {
		name  string
		spoil func(*Batch)
		want  string
	}{
		{"event without address", func(b *Batch) { b.Events = append(b.Events, logs.Event{Time: base, Kind: logs.KindAuthFailure}) }, "no client address"},
		{"event without time", func(b *Batch) { e := b.Events[0]; e.Time = time.Time{}; b.Events = append(b.Events, e) }, "no time"},
		{"ban with host bits", func(b *Batch) { b.Bans = append(b.Bans, ban("198.18.0.1/24", base, time.Hour)) }, "host bits"},
		{"ban of a mapped prefix", func(b *Batch) { b.Bans = append(b.Bans, ban("::ffff:198.18.0.1/128", base, time.Hour)) }, "IPv4 prefix"},
		{"ban without start", func(b *Batch) { b.Bans = append(b.Bans, ban("198.18.0.2/32", time.Time{}, 0)) }, "no start"},
		{"ban expiring before it starts", func(b *Batch) {
			x := ban("198.18.0.2/32", base, time.Hour)
			x.Expires = base.Add(-time.Second)
			b.Bans = append(b.Bans, x)
		}, "not after its start"},
		{"ban with unknown origin", func(b *Batch) { x := ban("198.18.0.2/32", base, 0); x.Origin = "cron"; b.Bans = append(b.Bans, x) }, "unknown origin"},
		{"ban with unknown scope", func(b *Batch) { x := ban("198.18.0.2/32", base, 0); x.Scope = "some"; b.Bans = append(b.Bans, x) }, "unknown scope"},
		{"lift naming nothing", func(b *Batch) { b.Lifts = append(b.Lifts, Lift{At: base}) }, "neither a key nor a prefix"},
		{"position without key", func(b *Batch) { b.Positions = append(b.Positions, Position{Offset: 5}) }, "without a key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			b := good
			b.Events = append([]logs.Event(nil), good.Events...)
			b.Bans = append([]Ban(nil), good.Bans...)
			b.Positions = append([]Position(nil), good.Positions...)
			tt.spoil(&b)
			err := s.Commit(t.Context(), b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Commit = %v, want an error saying %q", err, tt.want)
			}
			assertEmpty(t, s)
		})
	}
}

func assertEmpty(t *testing.T, s *Store) {
	t.Helper()
	for _, table := range []string{"events", "bans", "positions"} {
		if n := count(t, s, `SELECT COUNT(*) FROM `+table); n != 0 {
			t.Errorf("%s holds %d rows after a failed commit, want 0", table, n)
		}
	}
}

// TestFailedBatchLeavesNothing makes SQLite itself fail part-way through a
// batch (a trigger raises on one table after the others were written) and
// checks that nothing of the batch remains.
func TestFailedBatchLeavesNothing(t *testing.T) {
	tests := []struct {
		name, table string
	}{
		{"failing ban after events were written", "bans"},
		{"failing position after events and bans were written", "positions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, t.TempDir())
			if _, err := s.w.ExecContext(t.Context(), `CREATE TRIGGER fail BEFORE INSERT ON `+tt.table+
				` BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`); err != nil {
				t.Fatal(err)
			}
			events := make([]logs.Event, 450) // more than one multi-row insert
			for i := range events {
				events[i] = event("198.18.0.1", base.Add(time.Duration(i)*time.Second), "r")
			}
			err := s.Commit(t.Context(), Batch{
				Events:    events,
				Bans:      []Ban{ban("198.18.0.1/32", base, time.Hour)},
				Positions: []Position{{Key: "file:/a", Offset: 10}},
			})
			if err == nil || !strings.Contains(err.Error(), "disk on fire") {
				t.Fatalf("Commit = %v, want the trigger's error", err)
			}
			assertEmpty(t, s)
		})
	}
}

func TestBansAreRecordedOnce(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	b := ban("198.18.0.1/32", base, time.Hour)
	keyed := ban("198.18.0.2/32", base, time.Hour)
	keyed.Key = "ctl-1"
	commit(t, s, Batch{Bans: []Ban{b, b, keyed}})
	// Again, as after a crash that lost the acknowledgement.
	commit(t, s, Batch{Bans: []Ban{b}})
	// The same key with another start is the same ban.
	again := keyed
	again.Start = base.Add(time.Minute)
	again.Expires = again.Start.Add(time.Hour)
	commit(t, s, Batch{Bans: []Ban{again}})
	s.Close()

	s = openTest(t, dir)
	commit(t, s, Batch{Bans: []Ban{b, keyed}})
	if n := count(t, s, `SELECT COUNT(*) FROM bans`); n != 2 {
		t.Errorf("%d bans recorded, want 2", n)
	}

	// A new ban of the same prefix (a later start) is a new row: that is the
	// history escalation reads.
	later := ban("198.18.0.1/32", base.Add(2*time.Hour), 4*time.Hour)
	commit(t, s, Batch{Bans: []Ban{later}})
	hist, err := s.Bans(t.Context(), BanFilter{Prefix: b.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || !hist[0].Start.Equal(b.Start) || !hist[1].Start.Equal(later.Start) {
		t.Errorf("history of %s = %+v, want its two bans oldest first", b.Prefix, hist)
	}
}

func TestLiftEndsBansInForceOnly(t *testing.T) {
	s := openTest(t, t.TempDir())
	p := "198.18.0.1/32"
	expired := ban(p, base, time.Hour)
	current := ban(p, base.Add(2*time.Hour), 4*time.Hour)
	other := ban("198.18.0.2/32", base.Add(2*time.Hour), 4*time.Hour)
	keyed := ban("198.18.0.3/32", base.Add(2*time.Hour), 0)
	keyed.Key = "ctl-3"
	commit(t, s, Batch{Bans: []Ban{expired, current, other, keyed}})

	at := base.Add(3 * time.Hour)
	lift := Lift{Prefix: netip.MustParsePrefix(p), At: at, Reason: "unban by root"}
	commit(t, s, Batch{Lifts: []Lift{lift, {Key: "ctl-3", At: at, Reason: "unban by key"}}})
	// A lift committed again later changes nothing.
	commit(t, s, Batch{Lifts: []Lift{{Prefix: lift.Prefix, At: at.Add(time.Minute), Reason: "again"}}})

	bans, err := s.Bans(t.Context(), BanFilter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Ban{}
	for _, b := range bans {
		got[fmt.Sprintf("%s@%d", b.Prefix, b.Start.Unix())] = b
	}
	check := func(b Ban, wantLifted bool, wantReason string) {
		t.Helper()
		g := got[fmt.Sprintf("%s@%d", b.Prefix, b.Start.Unix())]
		if lifted := !g.LiftedAt.IsZero(); lifted != wantLifted || g.LiftReason != wantReason {
			t.Errorf("ban %s from %s: lifted %v (%q), want %v (%q)", b.Prefix, b.Start, lifted, g.LiftReason, wantLifted, wantReason)
		}
		if wantLifted && !g.LiftedAt.Equal(at) {
			t.Errorf("ban %s lifted at %s, want %s", b.Prefix, g.LiftedAt, at)
		}
	}
	check(expired, false, "")
	check(current, true, "unban by root")
	check(other, false, "")
	check(keyed, true, "unban by key")

	inForce, err := s.BansInForce(t.Context(), at)
	if err != nil {
		t.Fatal(err)
	}
	if len(inForce) != 1 || inForce[0].Prefix != other.Prefix {
		t.Errorf("bans in force after the lifts = %+v, want only %s", inForce, other.Prefix)
	}
}

func TestBansInForce(t *testing.T) {
	s := openTest(t, t.TempDir())
	now := base.Add(10 * time.Hour)
	bans := []Ban{
		ban("198.18.0.1/32", now.Add(-2*time.Hour), time.Hour),     // expired
		ban("198.18.0.2/32", now.Add(-time.Hour), time.Hour),       // expires exactly now
		ban("198.18.0.3/32", now.Add(-time.Hour), 2*time.Hour),     // in force
		ban("198.18.0.0/24", now.Add(-365*24*time.Hour), 0),        // permanent
		ban("fd00:1::/64", now.Add(time.Hour), time.Hour),          // starts later
		ban("fd00:2::/48", now.Add(-time.Minute), 30*24*time.Hour), // in force
	}
	liftedLater := ban("198.18.0.4/32", now.Add(-time.Hour), 2*time.Hour)
	liftedLater.LiftedAt, liftedLater.LiftReason = now.Add(time.Minute), "scheduled"
	bans = append(bans, liftedLater)
	commit(t, s, Batch{Bans: bans})

	got, err := s.BansInForce(t.Context(), now)
	if err != nil {
		t.Fatal(err)
	}
	var gotPrefixes []string
	for _, b := range got {
		gotPrefixes = append(gotPrefixes, b.Prefix.String())
		if !b.InForceAt(now) {
			t.Errorf("BansInForce returned %s, which InForceAt says is not in force", b.Prefix)
		}
	}
	want := []string{"198.18.0.0/24", "198.18.0.3/32", "198.18.0.4/32", "fd00:2::/48", "fd00:1::/64"}
	if !reflect.DeepEqual(gotPrefixes, want) {
		t.Errorf("bans in force = %v, want %v (by start)", gotPrefixes, want)
	}
}

func TestBanAndEventFilters(t *testing.T) {
	s := openTest(t, t.TempDir())
	commit(t, s, Batch{
		Events: []logs.Event{
			event("198.18.1.1", base, "a"),
			event("198.18.1.2", base.Add(time.Minute), "b"),
			event("198.18.2.1", base.Add(2*time.Minute), "c"),
			event("fd00::1", base.Add(3*time.Minute), "d"),
			event("fd00:0:0:1::1", base.Add(4*time.Minute), "e"),
			event("198.18.1.1", base.Add(5*time.Minute), "f"),
		},
		Bans: []Ban{
			ban("198.18.1.1/32", base, time.Hour),
			ban("198.18.1.0/24", base.Add(time.Minute), time.Hour),
			ban("198.18.0.0/15", base.Add(2*time.Minute), time.Hour),
			ban("fd00::/64", base.Add(3*time.Minute), time.Hour),
			ban("::/0", base.Add(4*time.Minute), time.Hour),
		},
	})
	rules := func(evs []logs.Event) string {
		var out []string
		for _, e := range evs {
			out = append(out, e.Rule)
		}
		return strings.Join(out, ",")
	}
	eventTests := []struct {
		name string
		f    EventFilter
		want string
	}{
		{"all", EventFilter{}, "a,b,c,d,e,f"},
		{"one address", EventFilter{Within: netip.MustParsePrefix("198.18.1.1/32")}, "a,f"},
		{"an IPv4 prefix", EventFilter{Within: netip.MustParsePrefix("198.18.1.0/24")}, "a,b,f"},
		{"an IPv6 prefix", EventFilter{Within: netip.MustParsePrefix("fd00::/64")}, "d"},
		{"every IPv6 address", EventFilter{Within: netip.MustParsePrefix("::/0")}, "d,e"},
		{"every IPv4 address", EventFilter{Within: netip.MustParsePrefix("0.0.0.0/0")}, "a,b,c,f"},
		{"since", EventFilter{Since: base.Add(2 * time.Minute)}, "c,d,e,f"},
		{"until", EventFilter{Until: base.Add(2 * time.Minute)}, "a,b"},
		{"newest two", EventFilter{Limit: 2}, "e,f"},
		{"newest of one address", EventFilter{Within: netip.MustParsePrefix("198.18.1.1/32"), Limit: 1}, "f"},
	}
	for _, tt := range eventTests {
		t.Run("events "+tt.name, func(t *testing.T) {
			got, err := s.Events(t.Context(), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if g := rules(got); g != tt.want {
				t.Errorf("got %s, want %s", g, tt.want)
			}
		})
	}
	prefixes := func(bans []Ban) string {
		var out []string
		for _, b := range bans {
			out = append(out, b.Prefix.String())
		}
		return strings.Join(out, ",")
	}
	banTests := []struct {
		name string
		f    BanFilter
		want string
	}{
		{"all", BanFilter{}, "198.18.1.1/32,198.18.1.0/24,198.18.0.0/15,fd00::/64,::/0"},
		{"covering an IPv4 address", BanFilter{Covering: netip.MustParseAddr("198.18.1.1")}, "198.18.1.1/32,198.18.1.0/24,198.18.0.0/15"},
		{"covering another", BanFilter{Covering: netip.MustParseAddr("198.19.0.1")}, "198.18.0.0/15"},
		{"covering an IPv6 address", BanFilter{Covering: netip.MustParseAddr("fd00::5")}, "fd00::/64,::/0"},
		{"exact prefix", BanFilter{Prefix: netip.MustParsePrefix("198.18.1.0/24")}, "198.18.1.0/24"},
		{"since", BanFilter{Since: base.Add(3 * time.Minute)}, "fd00::/64,::/0"},
		{"newest", BanFilter{Limit: 1}, "::/0"},
	}
	for _, tt := range banTests {
		t.Run("bans "+tt.name, func(t *testing.T) {
			got, err := s.Bans(t.Context(), tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if g := prefixes(got); g != tt.want {
				t.Errorf("got %s, want %s", g, tt.want)
			}
		})
	}
}

func TestCountsAndLastEvent(t *testing.T) {
	s := openTest(t, t.TempDir())
	hour := base.Truncate(time.Hour)
	if last, err := s.LastEvent(t.Context()); err != nil || !last.IsZero() {
		t.Errorf("LastEvent of an empty store = %v, %v; want zero", last, err)
	}
	ev := func(at time.Time, attempts int) logs.Event {
		e := event("198.18.0.1", at, "r")
		e.Attempts = attempts
		return e
	}
	commit(t, s, Batch{
		Events: []logs.Event{ev(hour.Add(time.Minute), 1), ev(hour.Add(59*time.Minute), 3), ev(hour.Add(2*time.Hour+time.Second), 2)},
		Bans:   []Ban{ban("198.18.0.1/32", hour.Add(59*time.Minute), time.Hour), ban("198.18.0.2/32", hour.Add(3*time.Hour), time.Hour)},
	})
	c, err := s.CountSince(t.Context(), hour.Add(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Events: 2, Attempts: 5, Bans: 2}); c != want {
		t.Errorf("CountSince = %+v, want %+v", c, want)
	}
	hours, err := s.Hourly(t.Context(), hour, hour.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []HourCount{
		{Hour: hour, Counts: Counts{Events: 2, Attempts: 4, Bans: 1}},
		{Hour: hour.Add(2 * time.Hour), Counts: Counts{Events: 1, Attempts: 2}},
	}
	if !reflect.DeepEqual(hours, want) {
		t.Errorf("Hourly = %+v, want %+v", hours, want)
	}
	if last, err := s.LastEvent(t.Context()); err != nil || !last.Equal(hour.Add(2*time.Hour+time.Second)) {
		t.Errorf("LastEvent = %v, %v", last, err)
	}
}

func TestMeta(t *testing.T) {
	s := openTest(t, t.TempDir())
	if _, _, ok, err := s.Meta(t.Context(), "heartbeat"); ok || err != nil {
		t.Fatalf("Meta of an unset key: ok %v err %v", ok, err)
	}
	before := time.Now()
	for _, v := range []string{"1", "2"} {
		if err := s.SetMeta(t.Context(), "heartbeat", v); err != nil {
			t.Fatal(err)
		}
	}
	v, at, ok, err := s.Meta(t.Context(), "heartbeat")
	if err != nil || !ok || v != "2" || at.Before(before.Add(-time.Second)) {
		t.Errorf("Meta = %q, %v, %v, %v; want the last value, set just now", v, at, ok, err)
	}
}

func TestSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	if v, err := s.Version(t.Context()); err != nil || v != SchemaVersion() {
		t.Fatalf("Version = %d, %v; want %d", v, err, SchemaVersion())
	}
	commit(t, s, Batch{Events: []logs.Event{event("198.18.0.1", base, "r")}})
	s.Close()

	// Opening again migrates nothing and keeps the data.
	s = openTest(t, dir)
	if n := count(t, s, `SELECT COUNT(*) FROM schema_version`); n != SchemaVersion() {
		t.Errorf("%d version rows after reopening, want %d", n, SchemaVersion())
	}
	if n := count(t, s, `SELECT COUNT(*) FROM events`); n != 1 {
		t.Errorf("%d events after reopening, want 1", n)
	}
}

func TestFailedMigrationLeavesThePreviousVersion(t *testing.T) {
	s := openTest(t, t.TempDir())
	next := append(migrations[:len(migrations):len(migrations)],
		`CREATE TABLE half (a INTEGER); THIS IS NOT SQL`)
	err := s.migrate(t.Context(), next)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("schema version %d", len(next))) {
		t.Fatalf("migrate with a broken migration = %v, want an error naming version %d", err, len(next))
	}
	if v, err := s.Version(t.Context()); err != nil || v != SchemaVersion() {
		t.Errorf("Version = %d, %v; want %d", v, err, SchemaVersion())
	}
	if n := count(t, s, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'`); n != 0 {
		t.Errorf("the broken migration's first statement was kept")
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	newer := SchemaVersion() + 1
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO schema_version (version, applied_at) VALUES (?, 0)`, newer); err != nil {
		t.Fatal(err)
	}
	s.Close()

	_, err := Open(t.Context(), dir)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open of a newer database = %v, want ErrNewerSchema", err)
	}
	if want := fmt.Sprintf("schema version %d", newer); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	// Refused, and left as it was.
	raw, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v int
	if err := raw.QueryRowContext(t.Context(), `SELECT MAX(version) FROM schema_version`).Scan(&v); err != nil || v != newer {
		t.Errorf("version after the refusal = %d, %v; want %d", v, err, newer)
	}
}

func TestPruneDeletesOnlyWhatEnded(t *testing.T) {
	s := openTest(t, t.TempDir())
	cut := base.Add(400 * 24 * time.Hour)
	// More old events than one chunk deletes, to go through the chunking.
	var events []logs.Event
	for i := range 2*pruneChunk + 7 {
		events = append(events, event("198.18.0.1", cut.Add(-time.Duration(i+1)*time.Second), "old"))
	}
	events = append(events, event("198.18.0.1", cut, "at the cut"), event("198.18.0.1", cut.Add(time.Hour), "new"))
	old := cut.Add(-48 * time.Hour)
	liftedOld := ban("198.18.0.2/32", old, 24*time.Hour)
	liftedOld.LiftedAt, liftedOld.LiftReason = old.Add(time.Hour), "unban"
	liftedRecently := ban("198.18.0.3/32", old, 0)
	liftedRecently.LiftedAt, liftedRecently.LiftReason = cut.Add(time.Minute), "unban"
	bans := map[string]struct {
		ban  Ban
		kept bool
	}{
		"expired long ago":       {ban("198.18.0.1/32", old, time.Hour), false},
		"lifted long ago":        {liftedOld, false},
		"permanent":              {ban("198.18.0.0/24", old.Add(-365*24*time.Hour), 0), true},
		"lifted after the cut":   {liftedRecently, true},
		"expiring after the cut": {ban("198.18.0.4/32", old, 49*time.Hour), true},
		"started after the cut":  {ban("198.18.0.5/32", cut.Add(time.Hour), time.Hour), true},
		"expired exactly at cut": {ban("198.18.0.6/32", cut.Add(-time.Hour), time.Hour), true},
	}
	b := Batch{Events: events}
	for _, x := range bans {
		b.Bans = append(b.Bans, x.ban)
	}
	commit(t, s, b)

	p, err := s.Prune(t.Context(), cut)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Pruned{Events: 2*pruneChunk + 7, Bans: 2}); p != want {
		t.Errorf("Prune = %+v, want %+v", p, want)
	}
	left, err := s.Events(t.Context(), EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0].Rule != "at the cut" || left[1].Rule != "new" {
		t.Errorf("events left: %+v", left)
	}
	for name, x := range bans {
		got, err := s.Bans(t.Context(), BanFilter{Prefix: x.ban.Prefix})
		if err != nil {
			t.Fatal(err)
		}
		if kept := len(got) == 1; kept != x.kept {
			t.Errorf("ban %s: kept %v, want %v", name, kept, x.kept)
		}
	}
	// Nothing more to do the second time.
	if p, err := s.Prune(t.Context(), cut); err != nil || p != (Pruned{}) {
		t.Errorf("second Prune = %+v, %v; want nothing", p, err)
	}
}

// TestReadersSeeCommittedStateWhileWriting holds a read transaction open
// across a commit (WAL: the writer does not wait for it, and the reader
// keeps its snapshot), then reads and writes from several goroutines at once.
func TestReadersSeeCommittedStateWhileWriting(t *testing.T) {
	s := openTest(t, t.TempDir())
	commit(t, s, Batch{Events: []logs.Event{event("198.18.0.1", base, "first")}})

	rtx, err := s.r.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rtx.Rollback()
	var n int
	if err := rtx.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM events`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("reader sees %d events, %v", n, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := s.Commit(ctx, Batch{Events: []logs.Event{event("198.18.0.1", base.Add(time.Second), "second")}}); err != nil {
		t.Fatalf("Commit while a reader is open: %v", err)
	}
	if err := rtx.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM events`).Scan(&n); err != nil || n != 1 {
		t.Errorf("open reader sees %d events after the commit, want its snapshot of 1 (%v)", n, err)
	}
	rtx.Rollback()
	if n := count(t, s, `SELECT COUNT(*) FROM events`); n != 2 {
		t.Errorf("a new reader sees %d events, want 2", n)
	}

	// Writers and readers at once: no reader fails or sees a batch half
	// written.
	const writers, batches, perBatch = 2, 50, 10
	errs := make(chan error, writers+1)
	done := make(chan struct{})
	for w := range writers {
		go func() {
			for i := range batches {
				var evs []logs.Event
				for j := range perBatch {
					evs = append(evs, event("198.18.1.1", base.Add(time.Duration(w*batches*perBatch+i*perBatch+j)), "load"))
				}
				if err := s.Commit(t.Context(), Batch{Events: evs}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	go func() {
		for {
			select {
			case <-done:
				errs <- nil
				return
			default:
			}
			var n int
			if err := s.r.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM events WHERE rule = 'load'`).Scan(&n); err != nil {
				errs <- fmt.Errorf("reader: %w", err)
				return
			}
			if n%perBatch != 0 {
				errs <- fmt.Errorf("reader saw %d events, not whole batches", n)
				return
			}
		}
	}()
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM events WHERE rule = 'load'`); n != writers*batches*perBatch {
		t.Errorf("%d events written, want %d", n, writers*batches*perBatch)
	}
}

// TestTwoProcessesShareTheDatabase opens the database twice, as the daemon
// and the CLI do, and commits from both at once: busy_timeout makes one wait
// for the other instead of failing.
func TestTwoProcessesShareTheDatabase(t *testing.T) {
	dir := t.TempDir()
	stores := []*Store{openTest(t, dir), openTest(t, dir)}
	const batches = 100
	errs := make(chan error, len(stores))
	for k, s := range stores {
		go func() {
			for i := range batches {
				b := ban(netip.AddrFrom4([4]byte{198, 18, byte(k), byte(i)}).String()+"/32", base, time.Hour)
				if err := s.Commit(t.Context(), Batch{Bans: []Ban{b}}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range stores {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, stores[0], `SELECT COUNT(*) FROM bans`); n != len(stores)*batches {
		t.Errorf("%d bans, want %d", n, len(stores)*batches)
	}
}
