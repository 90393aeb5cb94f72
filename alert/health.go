package alert

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// HeartbeatKey is the store's meta key under which the daemon publishes
// its Heartbeat.
const HeartbeatKey = "heartbeat"

// Heartbeat is what the daemon publishes every few seconds, so that
// something outside it (`portcullis health`) can tell a dead or hung
// daemon from a live one, and a live one that has stopped reading.
type Heartbeat struct {
	PID   int       `json:"pid"`
	At    time.Time `json:"at"`
	Clean bool      `json:"clean"` // written on a clean stop
	// Positions are how far each log stream has been read.
	Positions []Position `json:"positions,omitempty"`
}

// Position is one log stream's read position as the daemon publishes it.
type Position struct {
	Source string `json:"source"`
	Key    string `json:"key"`
	Path   string `json:"path,omitempty"`
	Offset int64  `json:"offset"`
	// Advanced is when the offset last moved.
	Advanced time.Time `json:"advanced,omitzero"`
	// BehindSince is when the daemon first saw the file longer than
	// Offset with the offset not moving; zero while it keeps up.
	BehindSince time.Time `json:"behind_since,omitzero"`
}

// HealthLimits are when `portcullis health` complains.
type HealthLimits struct {
	// Stale: a heartbeat older than this means the daemon is dead or hung.
	Stale time.Duration
	// Stall: unread log data for longer than this means the daemon is not
	// catching up.
	Stall time.Duration
}

// Nagios exit codes.
const (
	OK       = 0
	WARNING  = 1
	CRITICAL = 2
	UNKNOWN  = 3 // the check itself could not run (a broken configuration)
)

// HealthReport is the outcome of one health check.
type HealthReport struct {
	Code     int
	Summary  string    // one line, Nagios style
	Findings []Message // one per problem, keyed for cool-down and recovery
}

// Files is how CheckHealth sees the filesystem and processes; tests and
// the CLI pass the real ones.
type Files struct {
	Size      func(path string) (int64, error)
	ProcState func(pid int) string // "", or e.g. "T (stopped)"
}

// RealFiles looks at the real filesystem and /proc.
func RealFiles() Files {
	return Files{
		Size: func(p string) (int64, error) {
			f, err := os.Open(p) // opened, not only stat'ed: unreadable is a failure too
			if err != nil {
				return 0, err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return 0, err
			}
			return fi.Size(), nil
		},
		ProcState: procState,
	}
}

// procState is the state field of /proc/PID/status ("T (stopped)"), or ""
// when there is no such process.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "State:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// CheckHealth judges the daemon from its last heartbeat (found is false
// when it never wrote one) and the logs themselves at now.
func CheckHealth(hb Heartbeat, found bool, now time.Time, lim HealthLimits, fs Files) HealthReport {
	var r HealthReport
	var problems []string
	add := func(code int, m Message, short string) {
		r.Code = max(r.Code, code)
		m.Severity = Warning
		if code == CRITICAL {
			m.Severity = Critical
		}
		r.Findings = append(r.Findings, m)
		problems = append(problems, short)
	}
	if !found {
		add(CRITICAL, Message{Key: "health:daemon", Subject: "the portcullis daemon has never run here",
			Body: "No heartbeat in the store: no daemon has run with this state directory, so no log is read and nothing is banned from logs.\nStart it: systemctl enable --now portcullis\n"},
			"no heartbeat: the daemon has never run")
		r.Summary = "PORTCULLIS CRITICAL - " + strings.Join(problems, "; ")
		return r
	}
	age := now.Sub(hb.At)
	alive := true
	switch {
	case hb.Clean:
		alive = false
		add(CRITICAL, Message{Key: "health:daemon", Since: hb.At, Subject: "the portcullis daemon is not running",
			Body: fmt.Sprintf("The daemon (pid %d) stopped at %s (%s ago). Bans already in the kernel still apply and expire on time, but no log is read and no new attacker is banned.\nStart it: systemctl start portcullis\nLook closer: journalctl -u portcullis --since -1h\n",
				hb.PID, hb.At.UTC().Format(time.RFC3339), ago(age))},
			fmt.Sprintf("daemon stopped %s ago", ago(age)))
	case age > lim.Stale || fs.ProcState(hb.PID) == "":
		// A fresh heartbeat from a process that is gone is a crash seen
		// early (systemd's OnFailure= runs this check at once).
		alive = false
		state := fs.ProcState(hb.PID)
		what := fmt.Sprintf("pid %d is gone: the daemon died without stopping cleanly", hb.PID)
		if state != "" {
			what = fmt.Sprintf("pid %d is in state %s but has not written a heartbeat: it is hung or stopped", hb.PID, state)
		}
		add(CRITICAL, Message{Key: "health:daemon", Since: hb.At, Subject: fmt.Sprintf("the portcullis daemon is dead or hung (heartbeat %s old)", ago(age)),
			Body: fmt.Sprintf("The last heartbeat was written at %s (%s ago; at most %s is expected); %s.\nBans already in the kernel still apply, but no log is read and no new attacker is banned.\nLook closer: systemctl status portcullis; journalctl -u portcullis --since -1h\nRestart it: systemctl restart portcullis\n",
				hb.At.UTC().Format(time.RFC3339), ago(age), lim.Stale, what)},
			fmt.Sprintf("heartbeat %s old (%s)", ago(age), shortState(state)))
	}
	current := 0
	for _, p := range hb.Positions {
		if p.Path == "" {
			current++ // the journal: followed by cursor, judged by the heartbeat
			continue
		}
		size, err := fs.Size(p.Path)
		if err != nil {
			add(CRITICAL, Message{Key: "health:source:" + p.Path, Subject: fmt.Sprintf("log %s is missing or unreadable", p.Path),
				Body: fmt.Sprintf("The daemon reads %s (source %s), which cannot be opened: %v\nLogins logged elsewhere are not seen and not banned.\nLook closer: ls -l %s; portcullis status\n", p.Path, p.Source, err, p.Path)},
				fmt.Sprintf("%s unreadable", p.Path))
			continue
		}
		unread := size - p.Offset
		if unread <= 0 {
			current++
			continue
		}
		// A dead daemon reads nothing: any unread data is stalled. A
		// live one is stalled once it has been behind, not moving, for
		// longer than Stall.
		since := p.BehindSince
		stalled := !alive || (!since.IsZero() && now.Sub(since) > lim.Stall)
		if !stalled {
			current++
			continue
		}
		if since.IsZero() {
			since = hb.At
		}
		add(CRITICAL, Message{Key: "health:stall:" + p.Path, Since: since,
			Subject: fmt.Sprintf("log %s is not being read: %d bytes unread", p.Path, unread),
			Body: fmt.Sprintf("%s has grown to %d bytes but the daemon has read only %d, and has not advanced since %s (%s ago).\nLogins in those %d bytes are not counted and their sources are not banned: this is how a ban daemon fails silently.\nLook closer: portcullis status; journalctl -u portcullis --since -1h\nRestart it: systemctl restart portcullis\n",
				p.Path, size, p.Offset, since.UTC().Format(time.RFC3339), ago(now.Sub(since)), unread)},
			fmt.Sprintf("%s: %d bytes unread since %s", p.Path, unread, ago(now.Sub(since))))
	}
	switch r.Code {
	case OK:
		r.Summary = fmt.Sprintf("PORTCULLIS OK - daemon pid %d up, heartbeat %s old, %d log %s current", hb.PID, ago(age), current, plural(current, "stream", "streams"))
	case WARNING:
		r.Summary = "PORTCULLIS WARNING - " + strings.Join(problems, "; ")
	default:
		r.Summary = "PORTCULLIS CRITICAL - " + strings.Join(problems, "; ")
	}
	return r
}

func shortState(s string) string {
	if s == "" {
		return "process gone"
	}
	return "process " + s
}
