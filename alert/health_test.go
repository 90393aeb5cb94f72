package alert

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// files is a fake filesystem and process table for CheckHealth.
func files(sizes map[string]int64, state string) Files {
	return Files{
		Size: func(p string) (int64, error) {
			n, ok := sizes[p]
			if !ok {
				return 0, &os.PathError{Op: "open", Path: p, Err: os.ErrNotExist}
			}
			return n, nil
		},
		ProcState: func(int) string { return state },
	}
}

func TestCheckHealth(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	lim := HealthLimits{Stale: 30 * time.Second, Stall: 30 * time.Second}
	log := "/var/log/mail.log"
	pos := func(offset int64, behindSince time.Time) []Position {
		return []Position{{Source: "files", Key: "file:" + log, Path: log, Offset: offset, Advanced: t0.Add(-time.Hour), BehindSince: behindSince}}
	}
	tests := []struct {
		name    string
		hb      Heartbeat
		found   bool
		now     time.Time
		sizes   map[string]int64
		state   string
		code    int
		summary []string
		keys    []string
	}{
		{name: "fresh heartbeat and logs read to the end is OK", hb: Heartbeat{PID: 7, At: t0, Positions: pos(100, time.Time{})}, found: true,
			now: t0.Add(5 * time.Second), sizes: map[string]int64{log: 100}, state: "S (sleeping)", code: OK,
			summary: []string{"PORTCULLIS OK - daemon pid 7 up, heartbeat 5s old, 1 log stream current"}},
		{name: "a line not yet read by a live daemon is not a stall", hb: Heartbeat{PID: 7, At: t0, Positions: pos(100, t0.Add(-10*time.Second))}, found: true,
			now: t0.Add(5 * time.Second), sizes: map[string]int64{log: 180}, state: "R (running)", code: OK},
		{name: "a live daemon behind and not moving past the stall limit is critical", hb: Heartbeat{PID: 7, At: t0, Positions: pos(100, t0.Add(-40*time.Second))}, found: true,
			now: t0.Add(2 * time.Second), sizes: map[string]int64{log: 180}, state: "S (sleeping)", code: CRITICAL,
			summary: []string{"CRITICAL", log + ": 80 bytes unread since 42s"}, keys: []string{"health:stall:" + log}},
		{name: "a stopped daemon with a growing log is critical twice over", hb: Heartbeat{PID: 7, At: t0, Positions: pos(100, time.Time{})}, found: true,
			now: t0.Add(31 * time.Second), sizes: map[string]int64{log: 300}, state: "T (stopped)", code: CRITICAL,
			summary: []string{"heartbeat 31s old (process T (stopped))", "200 bytes unread"}, keys: []string{"health:daemon", "health:stall:" + log}},
		{name: "a heartbeat just inside the limit is OK", hb: Heartbeat{PID: 7, At: t0}, found: true,
			now: t0.Add(30 * time.Second), state: "S (sleeping)", code: OK},
		{name: "a fresh heartbeat from a process that is gone is a crash", hb: Heartbeat{PID: 7, At: t0}, found: true,
			now: t0.Add(time.Second), code: CRITICAL, summary: []string{"heartbeat 1s old (process gone)"}, keys: []string{"health:daemon"}},
		{name: "a dead daemon is critical", hb: Heartbeat{PID: 7, At: t0}, found: true,
			now: t0.Add(time.Hour), code: CRITICAL, summary: []string{"heartbeat 1h old (process gone)"}, keys: []string{"health:daemon"}},
		{name: "a cleanly stopped daemon is critical", hb: Heartbeat{PID: 7, At: t0, Clean: true}, found: true,
			now: t0.Add(time.Minute), code: CRITICAL, summary: []string{"daemon stopped 1m ago"}, keys: []string{"health:daemon"}},
		{name: "no heartbeat at all is critical", now: t0, code: CRITICAL, summary: []string{"never run"}, keys: []string{"health:daemon"}},
		{name: "a missing log is critical", hb: Heartbeat{PID: 7, At: t0, Positions: pos(100, time.Time{})}, found: true,
			now: t0.Add(time.Second), sizes: map[string]int64{}, state: "S (sleeping)", code: CRITICAL, summary: []string{log + " unreadable"}, keys: []string{"health:source:" + log}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := CheckHealth(tt.hb, tt.found, tt.now, lim, files(tt.sizes, tt.state))
			if r.Code != tt.code {
				t.Errorf("code %d, want %d (%s)", r.Code, tt.code, r.Summary)
			}
			if strings.Contains(r.Summary, "\n") {
				t.Errorf("summary %q is more than one line", r.Summary)
			}
			for _, s := range tt.summary {
				if !strings.Contains(r.Summary, s) {
					t.Errorf("summary %q lacks %q", r.Summary, s)
				}
			}
			var keys []string
			for _, f := range r.Findings {
				keys = append(keys, f.Key)
			}
			if strings.Join(keys, ",") != strings.Join(tt.keys, ",") {
				t.Errorf("findings %v, want %v", keys, tt.keys)
			}
		})
	}
}

// TestDeadDaemonIsReportedWithinTwoMinutes is the argument for the 2-minute
// target, run with a fake clock: the daemon writes a heartbeat every 5s,
// the timer runs the check every 60s, and the stale limit is 30s. Whenever
// the daemon dies, and whatever the timer's phase, some check reports it
// within heartbeat period + stale limit + timer period = 95s, leaving 25s
// for the check and the send.
func TestDeadDaemonIsReportedWithinTwoMinutes(t *testing.T) {
	const (
		beat   = 5 * time.Second
		period = 60 * time.Second
	)
	lim := HealthLimits{Stale: 30 * time.Second, Stall: 30 * time.Second}
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	worst := time.Duration(0)
	for death := time.Duration(0); death < beat; death += 500 * time.Millisecond {
		for phase := time.Duration(0); phase < period; phase += time.Second {
			last := t0 // the last heartbeat before dying at t0+death
			died := t0.Add(death)
			var reported time.Duration
			for run := t0.Add(phase); run.Sub(died) < 10*time.Minute; run = run.Add(period) {
				if run.Before(died) {
					continue
				}
				// Hung, not gone: only the heartbeat's age can tell.
				if CheckHealth(Heartbeat{PID: 7, At: last}, true, run, lim, files(nil, "S (sleeping)")).Code == CRITICAL {
					reported = run.Sub(died)
					break
				}
			}
			if reported == 0 {
				t.Fatalf("death at +%s, timer phase %s: never reported", death, phase)
			}
			worst = max(worst, reported)
		}
	}
	if worst > 95*time.Second {
		t.Errorf("worst time from death to report %s, want at most 95s (2 minutes less time to send)", worst)
	}
	t.Logf("worst time from the daemon dying to the check reporting it: %s", worst)
}

func TestAttackMessageCountsMachines(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var events []logs.Event
	a, b := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8:1:2::99")
	for i := range 150 {
		addr := a
		if i%3 == 0 {
			addr = b
		}
		events = append(events, logs.Event{Time: t0, Kind: logs.KindAuthFailure, Addr: addr, Attempts: 1, Service: "submission"})
	}
	events = append(events, logs.Event{Time: t0, Kind: logs.KindAuthSuccess, Addr: netip.MustParseAddr("192.0.2.1"), Attempts: 1})
	th := Thresholds{FailuresPerMinute: 120, BaselineFactor: 10, MinFailures: 30}
	at, ok := FailureSpike(events, 0.5, th)
	if !ok {
		t.Fatal("150 failures a minute over a threshold of 120 is no spike")
	}
	at.Since, at.Banned, at.Dropped = t0, 2, 4711
	m := at.Message()
	for _, want := range []string{
		"150 failed logins in the last minute from 2 sources",
		"Since: 2026-12-04T10:00:00Z",
		"Attempts: 150 from 2 distinct sources",
		"198.51.100.7 100 country unknown not banned",
		"2001:db8:1:2::/64 50 country unknown",
		"banned 2 sources", "dropped 4711 packets",
		"portcullis history --since 1h --ip 198.51.100.7",
	} {
		if !strings.Contains(strings.Join(strings.Fields(m.Subject+"\n"+m.Body), " "), want) {
			t.Errorf("attack message lacks %q:\n%s", want, m.Body)
		}
	}
	if _, ok := FailureSpike(events[:20], 0.5, th); ok {
		t.Error("20 failures a minute are a spike (below min_failures)")
	}
	if at, ok := FailureSpike(events[:40], 0.5, th); !ok || !strings.Contains(at.What, "10 times the usual 0.5") {
		t.Errorf("40 failures against a baseline of 0.5 a minute: %v %q, want a baseline spike", ok, at.What)
	}
}

func TestPrefixSquadsAndSYNSpikes(t *testing.T) {
	var events []logs.Event
	for i := range 20 {
		events = append(events, logs.Event{Kind: logs.KindAuthFailure, Addr: netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), Attempts: 2})
	}
	events = append(events, logs.Event{Kind: logs.KindAuthFailure, Addr: netip.MustParseAddr("192.0.2.9"), Attempts: 9})
	sq := PrefixSquads(events, Thresholds{PrefixSources: 16})
	if len(sq) != 1 || sq[0].Key != "attack:prefix:203.0.113.0/24" || sq[0].Sources != 20 || sq[0].Attempts != 40 {
		t.Fatalf("squads %+v, want 203.0.113.0/24 with 20 sources and 40 attempts", sq)
	}
	syn := SYNSpike(30000, []SYNRate{{netip.MustParsePrefix("192.0.2.9/32"), 2000}, {netip.MustParsePrefix("192.0.2.10/32"), 100}}, Thresholds{SYNsPerMinute: 20000, SourceSYNsPerMinute: 1200})
	if len(syn) != 2 || syn[0].Key != "attack:syn" || syn[1].Key != "attack:syn:192.0.2.9/32" {
		t.Fatalf("syn spikes %+v, want overall and from 192.0.2.9", syn)
	}
}
