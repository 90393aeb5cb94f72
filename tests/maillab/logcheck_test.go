package maillab_test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// logCount is one loose expectation on a log file: how many lines contain
// a marker, or (with sumGroup) the sum of a number captured by pattern.
type logCount struct {
	file    string // "postfix", "dovecot" or "sshd"
	pattern *regexp.Regexp
	sum     bool // add up the first capture group instead of counting lines
	want    int
}

func (c logCount) String() string {
	kind := "lines matching"
	if c.sum {
		kind = "sum of"
	}
	return fmt.Sprintf("%s: %s %q", c.file, kind, c.pattern)
}

// count applies the expectation to a log's text.
func (c logCount) count(text string) int {
	n := 0
	for _, line := range strings.Split(text, "\n") {
		m := c.pattern.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if !c.sum {
			n++
			continue
		}
		v, err := strconv.Atoi(m[1])
		if err == nil {
			n += v
		}
	}
	return n
}

// expectations derives the log counts the scenario must produce.
func expectations(steps []step, verbose bool) []logCount {
	sum := func(keep func(step) bool, per func(step) int) int {
		n := 0
		for _, s := range steps {
			if keep(s) {
				n += per(s)
			}
		}
		return n
	}
	attempts := func(s step) int { return s.attempts() }
	conns := func(s step) int { return s.Conns }
	failed := func(service, what string) func(step) bool {
		return func(s step) bool {
			return s.Service == service && !s.Accepted && strings.Contains(s.What, what)
		}
	}
	ok := func(service string) func(step) bool {
		return func(s step) bool { return s.Service == service && s.Accepted }
	}
	smtpConns := sum(func(s step) bool { return strings.HasPrefix(s.Service, "smtp") }, conns)
	dovecotFailed := func(what string) int {
		n := 0
		for _, service := range []string{"smtp-submission", "imap", "pop3"} {
			n += sum(failed(service, what), attempts)
		}
		return n
	}
	re := regexp.MustCompile
	counts := []logCount{
		{file: "postfix", pattern: re(`SASL LOGIN authentication failed`), want: sum(failed("smtp-submission", "AUTH LOGIN"), attempts)},
		{file: "postfix", pattern: re(`SASL PLAIN authentication failed`), want: sum(failed("smtp-submission", "AUTH PLAIN"), attempts)},
		{file: "postfix", pattern: re(`NOQUEUE: reject: RCPT from .* Relay access denied`), want: sum(failed("smtp", "relay"), attempts)},
		{file: "postfix", pattern: re(`improper command pipelining`), want: sum(failed("smtp", "pipelining"), conns)},
		{file: "postfix", pattern: re(`smtpd\[\d+\]: connect from unknown\[`), want: smtpConns},
		{file: "postfix", pattern: re(`smtpd\[\d+\]: disconnect from unknown\[`), want: smtpConns},
		{file: "dovecot", pattern: re(`imap-login: Info: .*auth failed, \d+ attempts`), want: sum(failed("imap", ""), conns)},
		{file: "dovecot", pattern: re(`imap-login: Info: .*auth failed, (\d+) attempts`), sum: true, want: sum(failed("imap", ""), attempts)},
		{file: "dovecot", pattern: re(`pop3-login: Info: .*auth failed, (\d+) attempts`), sum: true, want: sum(failed("pop3", ""), attempts)},
		{file: "dovecot", pattern: re(`imap-login: Info: Login: user=<`), want: sum(ok("imap"), attempts)},
		{file: "dovecot", pattern: re(`pop3-login: Info: Login: user=<`), want: sum(ok("pop3"), attempts)},
	}
	mismatches, unknown := 0, 0
	if verbose {
		mismatches, unknown = dovecotFailed("wrong password"), dovecotFailed("unknown user")
	}
	counts = append(counts,
		logCount{file: "dovecot", pattern: re(`auth: Info: passwd-file\(.*\): Password mismatch`), want: mismatches},
		logCount{file: "dovecot", pattern: re(`auth: Info: passwd-file\(.*\): unknown user`), want: unknown},
	)
	if sum(func(s step) bool { return s.Service == "ssh" }, conns) > 0 {
		counts = append(counts,
			logCount{file: "sshd", pattern: re(`Failed password for [a-z]+ from`), want: sum(failed("ssh", "wrong password"), attempts)},
			logCount{file: "sshd", pattern: re(`Failed password for invalid user`), want: sum(failed("ssh", "invalid user"), attempts)},
			logCount{file: "sshd", pattern: re(`Accepted publickey for`), want: sum(ok("ssh"), attempts)},
		)
	}
	return counts
}

// waitForCounts polls the logs until every expectation holds or the
// timeout passes: postlogd and Dovecot write asynchronously, so the last
// lines may land shortly after the client is done. It returns the
// mismatches of the last look.
func waitForCounts(files map[string]string, counts []logCount, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		var bad []string
		texts := map[string]string{}
		for name, path := range files {
			b, err := os.ReadFile(path)
			if err != nil {
				bad = append(bad, fmt.Sprintf("read %s log: %v", name, err))
			}
			texts[name] = string(b)
		}
		for _, c := range counts {
			if got := c.count(texts[c.file]); got != c.want {
				bad = append(bad, fmt.Sprintf("%s: got %d, want %d", c, got, c.want))
			}
		}
		if len(bad) == 0 || time.Now().After(deadline) {
			return bad
		}
		time.Sleep(50 * time.Millisecond)
	}
}
