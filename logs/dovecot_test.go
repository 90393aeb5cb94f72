package logs

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestDovecotCountsEachAttemptOnce checks the counting scheme of
// COUNTING.md on the lab logs of real Dovecot: with auth_verbose=yes the
// auth process reports attempts one by one and the login process sums them
// up at disconnect; the parser's total must equal the sum of the summaries
// (the number of attempts the clients made), not both added together.
func TestDovecotCountsEachAttemptOnce(t *testing.T) {
	summary := regexp.MustCompile(`-login: .*\(auth failed, (\d+) attempts`)
	for _, file := range []string{"testdata/corpus/dovecot-lab-verbose.txt", "testdata/corpus/dovecot-lab-quiet.txt", "testdata/corpus/dovecot-lab-static.txt", "testdata/corpus/dovecot-lab-pam.txt"} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		p := newTestParser(t, ParserOptions{RuleSets: []string{RuleSetDovecot}})
		want, got, auth := 0, 0, 0
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' {
				continue
			}
			if m := summary.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[1])
				want += n
			}
			for _, e := range parseAll(p, Line{Text: []byte(line)}) {
				if e.Kind == KindAuthFailure && e.Rule != RuleDovecotPlaintext {
					got += e.Attempts
					if e.Rule == RuleDovecotPassdb {
						auth++
					}
				}
			}
		}
		f.Close()
		if want == 0 || got != want {
			t.Errorf("%s: counted %d attempts, the summaries say %d", file, got, want)
		}
		t.Logf("%s: %d attempts, %d of them counted early from auth-process lines", file, got, auth)
	}
}

func TestDovecotSessionOrder(t *testing.T) {
	auth := func(sess string) string {
		return "Dec 04 21:58:56 auth: Info: passwd-file(alice,198.18.7.2,<" + sess + ">): Password mismatch"
	}
	sum := func(sess string, n int) string {
		return fmt.Sprintf("Dec 04 21:59:10 imap-login: Info: Disconnected: Aborted login by logging out (auth failed, %d attempts in 22 secs): user=<alice>, method=PLAIN, rip=198.18.7.2, lip=198.18.7.1, session=<%s>", n, sess)
	}
	tests := []struct {
		name     string
		sessions int
		lines    []string
		want     int
	}{
		{"auth lines then summary", 0, []string{auth("AAAAAAAAAAAAAAAA"), auth("AAAAAAAAAAAAAAAA"), sum("AAAAAAAAAAAAAAAA", 3)}, 3},
		{"summary before its auth line", 0, []string{auth("AAAAAAAAAAAAAAAA"), sum("AAAAAAAAAAAAAAAA", 2), auth("AAAAAAAAAAAAAAAA")}, 2},
		{"summary repeated", 0, []string{sum("AAAAAAAAAAAAAAAA", 2), sum("AAAAAAAAAAAAAAAA", 2)}, 2},
		{"more auth lines than the summary says", 0, []string{auth("AAAAAAAAAAAAAAAA"), auth("AAAAAAAAAAAAAAAA"), sum("AAAAAAAAAAAAAAAA", 1)}, 2},
		{"sessions kept apart", 0, []string{auth("AAAAAAAAAAAAAAAA"), auth("BBBBBBBBBBBBBBBB"), sum("AAAAAAAAAAAAAAAA", 1), sum("BBBBBBBBBBBBBBBB", 3)}, 4},
		// Past the bound the oldest session is forgotten and its summary
		// counts in full: the price of bounded memory, one session's
		// early attempts counted twice.
		{"evicted session counts in full", 2, []string{auth("AAAAAAAAAAAAAAAA"), auth("BBBBBBBBBBBBBBBB"), auth("CCCCCCCCCCCCCCCC"), sum("AAAAAAAAAAAAAAAA", 1)}, 4},
		{"not evicted within the bound", 3, []string{auth("AAAAAAAAAAAAAAAA"), auth("BBBBBBBBBBBBBBBB"), auth("CCCCCCCCCCCCCCCC"), sum("AAAAAAAAAAAAAAAA", 1)}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestParser(t, ParserOptions{Sessions: tt.sessions})
			got := 0
			for _, l := range tt.lines {
				for _, e := range parseAll(p, Line{Text: []byte(l)}) {
					got += e.Attempts
				}
			}
			if got != tt.want {
				t.Errorf("counted %d, want %d", got, tt.want)
			}
		})
	}
}

// TestSessionMemoryIsBounded: a flood of distinct sessions keeps at most
// the configured number.
func TestSessionMemoryIsBounded(t *testing.T) {
	p := newTestParser(t, ParserOptions{Sessions: 100})
	for i := range 10000 {
		line := fmt.Sprintf("Dec 04 21:58:56 auth: Info: passwd-file(alice,198.18.7.2,<S%015d>): Password mismatch", i)
		if len(parseAll(p, Line{Text: []byte(line)})) != 1 {
			t.Fatalf("line %d: no event", i)
		}
	}
	if n := len(p.sessions.index); n != 100 || len(p.sessions.slots) != 100 {
		t.Errorf("%d sessions kept (%d slots), want 100", n, len(p.sessions.slots))
	}
}

// TestPostfixOverDovecotSocketCountsOnce: a Postfix SASL failure checked by
// Dovecot's auth socket appears in both logs; only Postfix's line counts.
func TestPostfixOverDovecotSocketCountsOnce(t *testing.T) {
	p := newTestParser(t, ParserOptions{})
	lines := []string{
		"Dec 04 21:57:50 mx postfix/submission/smtpd[12815]: warning: unknown[198.18.7.2]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=alice",
		"Dec 04 21:57:48 auth: Info: passwd-file(alice,198.18.7.2): Password mismatch",
	}
	got := 0
	for _, l := range lines {
		for _, e := range parseAll(p, Line{Text: []byte(l)}) {
			got += e.Attempts
		}
	}
	if got != 1 {
		t.Errorf("counted %d, want 1", got)
	}
}
