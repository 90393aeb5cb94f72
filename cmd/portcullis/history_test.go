package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
	"github.com/portcullis-mail/portcullis/store"
)

// historyStore is a real database in a fresh state directory, filled through
// store.Commit as the daemon fills it, and left open: the daemon is running
// while people read its history.
func historyStore(t *testing.T, b store.Batch) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	st, err := store.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Commit(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runHistory(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errw strings.Builder
	err = run(append([]string{"portcullis", "history"}, args...), &out, &errw)
	return out.String(), errw.String(), err
}

func failure(addr string, at time.Time, user string) logs.Event {
	return logs.Event{
		Time: at, Service: "submission", Kind: logs.KindAuthFailure, Addr: netip.MustParseAddr(addr),
		User: user, Attempts: 1, Rule: "postfix-sasl", Origin: logs.Origin{File: "/var/log/mail.log", Line: 7},
	}
}

// incident is an attack from two sources an hour ago, a subnet ban, an
// unrelated old source from last week, and a lifted manual ban.
func incident(now time.Time) store.Batch {
	hourAgo := now.Add(-time.Hour).Truncate(time.Second)
	week := now.Add(-7 * 24 * time.Hour).Truncate(time.Second)
	var b store.Batch
	// Committed out of order: history sorts by time, not by insertion.
	for i := 4; i >= 0; i-- {
		b.Events = append(b.Events, failure("198.18.5.7", hourAgo.Add(time.Duration(i)*time.Second), "alice"))
	}
	b.Events = append(b.Events,
		failure("198.18.5.9", hourAgo.Add(10*time.Second), ""),
		failure("fd00::42", hourAgo.Add(20*time.Second), "bob"),
		failure("198.19.0.1", week, "carol"),
	)
	b.Bans = []store.Ban{
		{Prefix: netip.MustParsePrefix("198.18.5.7/32"), Scope: store.ScopeAll, Origin: store.OriginLog,
			Reason: "5 auth failures in 4s", Start: hourAgo.Add(5 * time.Second), Expires: hourAgo.Add(time.Hour + 5*time.Second), Evidence: 5},
		{Prefix: netip.MustParsePrefix("198.18.5.0/24"), Scope: store.ScopeMail, Origin: store.OriginSubnet,
			Reason: "4 sources banned in 198.18.5.0/24", Start: hourAgo.Add(30 * time.Second), Evidence: 4},
		{Prefix: netip.MustParsePrefix("198.19.0.1/32"), Scope: store.ScopeAll, Origin: store.OriginManual,
			Reason: "manual", Start: week, Expires: week.Add(24 * time.Hour),
			LiftedAt: week.Add(time.Hour), LiftReason: "unban by root"},
	}
	return b
}

func TestHistoryPrintsEventsAndBansInTimeOrder(t *testing.T) {
	now := time.Now()
	dir := historyStore(t, incident(now))
	out, _, err := runHistory(t, "--state-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	hourAgo := now.Add(-time.Hour).Truncate(time.Second).UTC()
	week := now.Add(-7 * 24 * time.Hour).Truncate(time.Second).UTC()
	const layout = "2006-01-02 15:04:05"
	// Every line as its fields, in order; the columns are tabwriter's.
	want := [][]string{
		{"TIME", "(UTC)", "SERVICE", "KIND", "ADDRESS", "USER", "ATTEMPTS", "RULE"},
		append(strings.Fields(week.Format(layout)), "submission", "auth_failure", "198.19.0.1", "carol", "1", "postfix-sasl"),
	}
	for i := range 5 {
		want = append(want, append(strings.Fields(hourAgo.Add(time.Duration(i)*time.Second).Format(layout)),
			"submission", "auth_failure", "198.18.5.7", "alice", "1", "postfix-sasl"))
	}
	want = append(want,
		append(strings.Fields(hourAgo.Add(10*time.Second).Format(layout)), "submission", "auth_failure", "198.18.5.9", "-", "1", "postfix-sasl"),
		append(strings.Fields(hourAgo.Add(20*time.Second).Format(layout)), "submission", "auth_failure", "fd00::42", "bob", "1", "postfix-sasl"),
		nil,
		[]string{"TIME", "(UTC)", "PREFIX", "SCOPE", "EXPIRES", "ORIGIN", "EVIDENCE", "REASON", "LIFTED"},
		slices.Concat(strings.Fields(week.Format(layout)), []string{"198.19.0.1/32", "all"}, strings.Fields(week.Add(24*time.Hour).Format(layout)),
			[]string{"manual", "0", "manual"}, strings.Fields(week.Add(time.Hour).Format(layout)), []string{"(unban", "by", "root)"}),
		slices.Concat(strings.Fields(hourAgo.Add(5*time.Second).Format(layout)), []string{"198.18.5.7/32", "all"},
			strings.Fields(hourAgo.Add(time.Hour+5*time.Second).Format(layout)), strings.Fields("log 5 5 auth failures in 4s -")),
		slices.Concat(strings.Fields(hourAgo.Add(30*time.Second).Format(layout)), strings.Fields("198.18.5.0/24 mail never subnet 4 4 sources banned in 198.18.5.0/24 -")),
	)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, line := range lines {
		if got := strings.Fields(line); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d = %q\nwant fields %q", i+1, line, want[i])
		}
	}
}

func TestHistoryJSON(t *testing.T) {
	now := time.Now()
	dir := historyStore(t, incident(now))
	out, _, err := runHistory(t, "--state-dir", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Events []map[string]any `json:"events"`
		Bans   []map[string]any `json:"bans"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(got.Events) != 8 || len(got.Bans) != 3 {
		t.Fatalf("%d events and %d bans, want 8 and 3:\n%s", len(got.Events), len(got.Bans), out)
	}
	hourAgo := now.Add(-time.Hour).Truncate(time.Second).UTC()
	first := got.Events[1]
	wantEvent := map[string]any{
		"time": hourAgo.Format(time.RFC3339), "service": "submission", "kind": "auth_failure",
		"address": "198.18.5.7", "user": "alice", "attempts": 1.0, "rule": "postfix-sasl",
		"file": "/var/log/mail.log", "line": 7.0,
	}
	for k, v := range wantEvent {
		if first[k] != v {
			t.Errorf("events[1].%s = %#v, want %#v", k, first[k], v)
		}
	}
	subnet := got.Bans[2]
	if subnet["prefix"] != "198.18.5.0/24" || subnet["expires"] != nil || subnet["lifted_at"] != nil || subnet["origin"] != "subnet" {
		t.Errorf("the permanent subnet ban = %v, want prefix 198.18.5.0/24, origin subnet, expires and lifted_at null", subnet)
	}
	lifted := got.Bans[0]
	if s, _ := lifted["lifted_at"].(string); !strings.HasSuffix(s, "Z") || lifted["lift_reason"] != "unban by root" {
		t.Errorf("the lifted ban = %v, want lifted_at in UTC and its reason", lifted)
	}
	for _, b := range got.Bans {
		if _, err := time.Parse(time.RFC3339, b["start"].(string)); err != nil || !strings.HasSuffix(b["start"].(string), "Z") {
			t.Errorf("start %q is not RFC 3339 UTC", b["start"])
		}
	}
}

func TestHistoryJSONOfAnEmptyDatabaseHasEmptyLists(t *testing.T) {
	dir := historyStore(t, store.Batch{})
	out, _, err := runHistory(t, "--json", "--state-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(strings.Fields(out), "") != `{"events":[],"bans":[]}` {
		t.Errorf("output %q, want empty lists", out)
	}
	out, _, err = runHistory(t, "--state-dir", dir)
	if err != nil || out != "no events\n\nno bans\n" {
		t.Errorf("human output = %q, %v", out, err)
	}
}

func TestHistoryFilters(t *testing.T) {
	dir := historyStore(t, incident(time.Now()))
	tests := []struct {
		name       string
		args       []string
		wantEvents []string // addresses, in order
		wantBans   []string // prefixes, in order
	}{
		{"an address: its events, its own ban and the subnet ban covering it",
			[]string{"--ip", "198.18.5.7"},
			[]string{"198.18.5.7", "198.18.5.7", "198.18.5.7", "198.18.5.7", "198.18.5.7"},
			[]string{"198.18.5.7/32", "198.18.5.0/24"}},
		{"a prefix: the events in it and the bans that overlap it",
			[]string{"--ip", "198.18.0.0/15"},
			[]string{"198.19.0.1", "198.18.5.7", "198.18.5.7", "198.18.5.7", "198.18.5.7", "198.18.5.7", "198.18.5.9"},
			[]string{"198.19.0.1/32", "198.18.5.7/32", "198.18.5.0/24"}},
		{"a prefix inside a subnet ban",
			[]string{"--ip", "198.18.5.8/30"},
			[]string{"198.18.5.9"},
			[]string{"198.18.5.0/24"}},
		{"an IPv6 address", []string{"--ip", "fd00::42"}, []string{"fd00::42"}, nil},
		{"the last day leaves out last week",
			[]string{"--since", "1d"},
			[]string{"198.18.5.7", "198.18.5.7", "198.18.5.7", "198.18.5.7", "198.18.5.7", "198.18.5.9", "fd00::42"},
			[]string{"198.18.5.7/32", "198.18.5.0/24"}},
		{"the newest of each", []string{"--limit", "2"}, []string{"198.18.5.9", "fd00::42"}, []string{"198.18.5.7/32", "198.18.5.0/24"}},
		{"the newest within a prefix", []string{"--limit", "1", "--ip", "198.18.0.0/15"}, []string{"198.18.5.9"}, []string{"198.18.5.0/24"}},
		{"nothing that recent", []string{"--since", "10m"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runHistory(t, append([]string{"--json", "--state-dir", dir}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Events []struct{ Address string } `json:"events"`
				Bans   []struct{ Prefix string }  `json:"bans"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			var evs, bans []string
			for _, e := range got.Events {
				evs = append(evs, e.Address)
			}
			for _, b := range got.Bans {
				bans = append(bans, b.Prefix)
			}
			if strings.Join(evs, " ") != strings.Join(tt.wantEvents, " ") {
				t.Errorf("events %v, want %v", evs, tt.wantEvents)
			}
			if strings.Join(bans, " ") != strings.Join(tt.wantBans, " ") {
				t.Errorf("bans %v, want %v", bans, tt.wantBans)
			}
		})
	}
}

func TestHistorySaysWhenTheLimitCutsItShort(t *testing.T) {
	dir := historyStore(t, incident(time.Now()))
	_, errOut, err := runHistory(t, "--state-dir", dir, "--limit", "3")
	if err != nil || !strings.Contains(errOut, "--limit 0 shows all") {
		t.Errorf("with a limit reached: error %v, stderr %q; want a note saying how to see all", err, errOut)
	}
	_, errOut, err = runHistory(t, "--state-dir", dir, "--limit", "0")
	if err != nil || errOut != "" {
		t.Errorf("with no limit: error %v, stderr %q; want no note", err, errOut)
	}
}

func TestHistoryBeforeTheDaemonEverRan(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "never-ran")
	_, _, err := runHistory(t, "--state-dir", dir)
	want := "no history yet in " + dir + ": the daemon has not run"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("history created %s (stat: %v); it must only read", dir, err)
	}
	// A state directory without a database says the same.
	empty := t.TempDir()
	if _, _, err := runHistory(t, "--state-dir", empty); err == nil || !strings.Contains(err.Error(), "no history yet in "+empty) {
		t.Errorf("empty state directory: error %v", err)
	}
}

func TestHistoryFindsTheStateDirectory(t *testing.T) {
	dir := historyStore(t, incident(time.Now()))
	configFile := filepath.Join(t.TempDir(), "portcullis.toml")
	if err := os.WriteFile(configFile, []byte("[daemon]\nstate_dir = \""+dir+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantDir string // the directory the command read; "" for dir
	}{
		{"the flag after the command", nil, []string{"history", "--state-dir", dir}, ""},
		{"the flag before the command", nil, []string{"--state-dir", dir, "history"}, ""},
		{"the environment", map[string]string{"PORTCULLIS_STATE_DIR": dir}, []string{"history"}, ""},
		{"the config file's daemon.state_dir", map[string]string{"PORTCULLIS_CONFIG": configFile}, []string{"history"}, ""},
		{"the flag before the command over the environment", map[string]string{"PORTCULLIS_STATE_DIR": elsewhere},
			[]string{"--state-dir", dir, "history"}, ""},
		{"the flag after the command over the environment", map[string]string{"PORTCULLIS_STATE_DIR": elsewhere},
			[]string{"history", "--state-dir", dir}, ""},
		{"the environment over the config file", map[string]string{"PORTCULLIS_CONFIG": configFile, "PORTCULLIS_STATE_DIR": elsewhere},
			[]string{"history"}, elsewhere},
		{"the flag over the config file", map[string]string{"PORTCULLIS_CONFIG": configFile},
			[]string{"history", "--state-dir", elsewhere}, elsewhere},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PORTCULLIS_STATE_DIR", "")
			t.Setenv("PORTCULLIS_CONFIG", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out, errw strings.Builder
			err := run(append([]string{"portcullis"}, tt.args...), &out, &errw)
			if tt.wantDir == "" {
				if err != nil || !strings.Contains(out.String(), "198.18.5.0/24") {
					t.Errorf("error %v, output:\n%s", err, out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantDir) {
				t.Errorf("error %v, want one naming %s", err, tt.wantDir)
			}
		})
	}
}

func TestHistoryRefusesBadFlags(t *testing.T) {
	dir := historyStore(t, store.Batch{})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--since", "yesterday"}, "--since: invalid duration"},
		{[]string{"--ip", "mail.example.org"}, "--ip: \"mail.example.org\" is not an IP address"},
		{[]string{"--ip", "198.18.5.7/24"}, "host bits set"},
		{[]string{"--limit", "-1"}, "--limit -1"},
		{[]string{"stray"}, "takes no arguments"},
	}
	for _, tt := range tests {
		_, _, err := runHistory(t, append([]string{"--state-dir", dir}, tt.args...)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("history %v: error %v, want one saying %q", tt.args, err, tt.want)
		}
	}
}
