package logs

import (
	"bufio"
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestParser(t testing.TB, opts ParserOptions) *Parser {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return corpusNow }
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	p, err := NewParser(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func parseAll(p *Parser, line Line) []Event {
	var out []Event
	p.Parse(line, func(e Event) { out = append(out, e) })
	return out
}

// TestInjectionCannotFrame feeds lines whose client-controlled parts (user
// names, HELO, recipients, pipelined input, auth info) carry other
// addresses in every shape the rules look for, including those behind
// CVE-2013-7176 (fail2ban postfix-sasl: an address in the text after the
// client field) and CVE-2013-7177 (fail2ban cyrus-imap and dovecot: an
// address inside the user name). The shapes around the injected text are
// those the real software writes (see the corpus). No event may name an
// address from 198.18.99.0/24, and the real client must be the one reported
// where the line is an event.
func TestInjectionCannotFrame(t *testing.T) {
	framed := netip.MustParsePrefix("198.18.99.0/24")
	real := netip.MustParseAddr("198.18.7.2")
	payloads := []string{
		"rip=198.18.99.1",
		"x, rip=198.18.99.1, lip=198.18.99.2",
		"x>, method=PLAIN, rip=198.18.99.1, lip=198.18.7.1, session=<AAAAAAAAAAAAAAAA>",
		" from 198.18.99.1 port 22",
		"from 198.18.99.1 port 22 ssh2",
		"[198.18.99.1]",
		"unknown[198.18.99.1]: SASL LOGIN authentication failed",
		"x,198.18.99.1,<AAAAAAAAAAAAAAAA>): Password mismatch",
		"(auth failed, 99 attempts in 2 secs): user=<x>, rip=198.18.99.1, lip=1.1.1.1",
		"H=[198.18.99.1]:25 I=[198.18.7.1]:25",
		"(x) [198.18.99.1]: 535 Incorrect authentication data",
		"::ffff:198.18.99.1",
		"IPv6:::ffff:198.18.99.1",
	}
	type shape struct {
		name    string
		ident   string
		line    string // with %s where the client's text goes
		isEvent bool   // the line is an event whatever the payload (when parsed at all)
	}
	shapes := []shape{
		{"postfix sasl_username", "", "Dec 04 21:58:42 mx postfix/submission/smtpd[12917]: warning: unknown[198.18.7.2]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=%s", true},
		{"postfix cyrus reason", "", "Dec  2 22:24:22 hel postfix/smtpd[7676]: warning: unknown[198.18.7.2]: SASL LOGIN authentication failed: %s", true},
		{"postfix relay rcpt", "", "Dec 04 21:57:47 mx postfix/smtpd[12807]: NOQUEUE: reject: RCPT from unknown[198.18.7.2]: 554 5.7.1 <%s@elsewhere.example>: Relay access denied; from=<a@example.org> to=<%s@elsewhere.example> proto=ESMTP helo=<%s>", true},
		{"postfix pipelined input", "", "Dec 04 21:57:47 mx postfix/submission/smtpd[12815]: improper command pipelining after HELO from unknown[198.18.7.2]: %s", true},
		{"postfix sasl login user", "", "Dec 04 22:00:27 mx postfix/submission/smtpd[20354]: DA57D984034: client=unknown[198.18.7.2], sasl_method=PLAIN, sasl_username=%s", true},
		{"postfix pregreet input", "", "Dec 04 21:57:36 mx postfix/postscreen[12438]: PREGREET 23 after 0 from [198.18.7.2]:55376: %s", true},
		{"postfix helo in other reject", "", "Dec 04 21:57:47 mx postfix/smtpd[12807]: NOQUEUE: reject: RCPT from unknown[198.18.7.2]: 450 4.7.1 <%s>: Helo command rejected: Host not found; from=<> to=<> proto=ESMTP helo=<%s>", false},
		{"dovecot login user", "", "Dec 04 21:59:30 imap-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 6 secs): user=<%s>, method=PLAIN, rip=198.18.7.2, lip=198.18.7.1, session=<xKEx/dVhXKPGEgcC>", true},
		{"dovecot journal login user", "dovecot", "imap-login: Login: user=<%s>, method=PLAIN, rip=198.18.7.2, lip=198.18.7.1, mpid=18952, session=<0SEp/tVh3rbGEgcC>", true},
		{"dovecot auth user", "", "Dec 04 21:58:56 auth: Info: passwd-file(%s,198.18.7.2,<sSUQ+9VhoKjGEgcC>): Password mismatch", true},
		{"dovecot auth mta user", "", "Dec 04 21:56:53 auth: Info: passwd-file(%s,198.18.7.2): Password mismatch", false},
		{"dovecot pam", "", "Jan 29 05:32:50 mail dovecot: auth-worker(304): pam(%s,198.18.7.2,<sSUQ+9VhoKjGEgcC>): pam_authenticate() failed: Authentication failure (password mismatch?)", true},
		{"dovecot 2.3 auth-worker conn prefix", "", "Dec 04 22:14:11 auth-worker(25009): Info: conn unix:auth-worker (pid=25008,uid=104): auth-worker<1>: pam(%s,198.18.7.2,<D3rsMdZhYq7GEgcC>): pam_authenticate() failed: Authentication failure (Password mismatch?)", true},
		{"sshd failed user", "sshd", "Failed password for invalid user %s from 198.18.7.2 port 48974 ssh2", true},
		{"sshd invalid user", "sshd", "Invalid user %s from 198.18.7.2 port 48974", true},
		{"sshd syslog failed user", "", "Nov 11 08:04:52 redbamboo sshd[2737]: Failed password for %s from 198.18.7.2 port 58946 ssh2", true},
		{"sshd auth info", "", "Nov 11 08:04:52 redbamboo sshd[2737]: Failed password for test from 198.18.7.2 port 58946 ssh2: %s", true},
		{"exim set_id", "", "2013-01-04 17:03:46 login authenticator failed for (helo) [198.18.7.2]: 535 Incorrect authentication data (set_id=%s)", true},
		{"exim sender", "", "2013-06-10 18:33:32 [10099] H=(helo.example) [198.18.7.2]:3755 I=[198.18.7.1]:25 F=<%s> rejected RCPT <%s>: relay not permitted", true},
		{"exim sync input", "", "2013-06-02 06:54:20 [13314] SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[198.18.7.2]:25936 I=[198.18.7.1]:25 input=\"%s\"", true},
		{"exim sync command", "", "2013-06-02 09:05:48 [18505] SMTP protocol synchronization error (next input sent too soon: pipelining was not advertised): rejected \"%s\" H=ba77.mx83.fr [198.18.7.2]:58302 I=[198.18.7.1]:25 next input=\"%s\"", false},
	}
	p := newTestParser(t, ParserOptions{})
	for _, s := range shapes {
		for _, payload := range payloads {
			text := strings.ReplaceAll(s.line, "%s", payload)
			for _, e := range parseAll(p, Line{Text: []byte(text), Ident: s.ident}) {
				if framed.Contains(e.Addr) {
					t.Errorf("%s: framed %s\n  line: %s", s.name, e.Addr, text)
				} else if e.Addr != real {
					t.Errorf("%s: reported %s, want %s\n  line: %s", s.name, e.Addr, real, text)
				}
			}
		}
		// The shape with a harmless user is an event (so the loop above
		// tested a live rule, not a dead one).
		if s.isEvent {
			text := strings.ReplaceAll(s.line, "%s", "alice")
			// A fresh parser: the payload loop closed the Dovecot session.
			if got := parseAll(newTestParser(t, ParserOptions{}), Line{Text: []byte(text), Ident: s.ident}); len(got) == 0 || got[0].Addr != real {
				t.Errorf("%s: plain line gave %+v, want an event for %s\n  line: %s", s.name, got, real, text)
			}
		}
	}
}

// TestEmbeddedLineBreaksYieldNothing: a journal message (or a forged file
// line) carrying a line break, NUL or CR holds what looks like a whole
// second log line; no mail software writes those bytes, so the line yields
// no event at all.
func TestEmbeddedLineBreaksYieldNothing(t *testing.T) {
	p := newTestParser(t, ParserOptions{})
	fake := "Dec 04 21:58:42 mx postfix/submission/smtpd[1]: warning: unknown[198.18.99.1]: SASL PLAIN authentication failed: x"
	for _, sep := range []string{"\n", "\r", "\x00", "\r\n"} {
		lines := []Line{
			{Text: []byte("Dec 04 21:59:30 imap-login: Info: Login: user=<x" + sep + fake + ">, method=PLAIN, rip=198.18.7.2, lip=198.18.7.1")},
			{Text: []byte("Failed password for x" + sep + fake + " from 198.18.7.2 port 1 ssh2"), Ident: "sshd"},
			{Text: []byte(fake + sep)},
		}
		for _, l := range lines {
			if got := parseAll(p, l); len(got) != 0 {
				t.Errorf("separator %q: got %+v from %q", sep, got, l.Text)
			}
		}
	}
}

// TestHostileInput: huge lines, invalid UTF-8 and NUL bytes yield nothing
// and return promptly; a user name with invalid UTF-8 is made valid.
func TestHostileInput(t *testing.T) {
	p := newTestParser(t, ParserOptions{})
	real := "Dec 04 21:58:42 mx postfix/submission/smtpd[1]: warning: unknown[198.18.7.2]: SASL PLAIN authentication failed: (reason unavailable), sasl_username="
	huge := []byte(real + strings.Repeat("[198.18.99.1] ", (1<<20)/14))
	cases := map[string][]byte{
		"1 MiB of brackets":         huge,
		"1 MiB of one byte":         bytes.Repeat([]byte{'['}, 1<<20),
		"1 MiB of rip=":             bytes.Repeat([]byte("rip="), 1<<18),
		"invalid utf-8 around":      []byte("\xff\xfe" + real + "x"),
		"NUL":                       []byte(real + "x\x00"),
		"only a timestamp":          []byte("Dec 04 21:58:42"),
		"timestamp and host":        []byte("Dec 04 21:58:42 mx"),
		"tai64n garbage":            []byte("@4000000zzzzzzzzzzzzzzzzz imap-login: x"),
		"empty":                     nil,
		"bracket without close":     []byte("Dec 04 21:58:42 mx postfix/smtpd[1]: warning: unknown[198.18.7.2"),
		"sshd without address":      []byte("Dec 04 21:58:42 mx sshd[1]: Failed password for root from  port 1 ssh2"),
		"dovecot auth no parens":    []byte("Dec 04 21:58:56 auth: Info: passwd-file: Password mismatch"),
		"dovecot zone in rip":       []byte("Dec 04 21:59:30 imap-login: Info: Login: user=<a>, method=PLAIN, rip=fe80::1%eth0, lip=198.18.7.1"),
		"postfix zone in brackets":  []byte("Dec 04 21:58:42 mx postfix/smtpd[1]: warning: unknown[fe80::1%eth0]: SASL PLAIN authentication failed: x"),
		"ipv4 with leading zeros":   []byte("Dec 04 21:58:42 mx postfix/smtpd[1]: warning: unknown[198.018.7.2]: SASL PLAIN authentication failed: x"),
		"postfix attempts overflow": []byte("Dec 04 21:59:30 imap-login: Info: Disconnected (auth failed, 99999999999999999999 attempts in 6 secs): user=<a>, method=PLAIN, rip=198.18.7.2, lip=198.18.7.1"),
	}
	for name, text := range cases {
		start := time.Now()
		got := parseAll(p, Line{Text: text})
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: took %v", name, d)
		}
		if len(got) != 0 {
			t.Errorf("%s: got %+v", name, got)
		}
	}
	got := parseAll(p, Line{Text: []byte(real + "al\xffice")})
	if len(got) != 1 || got[0].User != "al\uFFFDice" {
		t.Errorf("invalid utf-8 user: got %+v", got)
	}
}

// TestCutLinesNeverNameAnotherAddress cuts every corpus line at every byte:
// a cut line may lose its event, but any event it yields names an address
// written whole in the line (a cut inside "fd00:7::2" must not yield
// "fd00:7::", nor "198.18.7.2" yield "198.18.7.2" from "198.18.7.25").
func TestCutLinesNeverNameAnotherAddress(t *testing.T) {
	for _, cl := range corpusLines(t) {
		whole := addressesIn(cl.text)
		for i := 0; i < len(cl.text); i++ {
			p := newTestParser(t, ParserOptions{Sessions: 4})
			for _, e := range parseAll(p, Line{Text: []byte(cl.text[:i]), Ident: cl.ident}) {
				if !whole[e.Addr] {
					t.Errorf("%s: cut at %d named %s: %q", cl.file, i, e.Addr, cl.text[:i])
				}
			}
		}
	}
}

// corpusLine is one log line of the corpus with the ident it is read with.
type corpusLine struct {
	file, text, ident string
}

// corpusLines reads every log line of testdata/corpus.
func corpusLines(tb testing.TB) []corpusLine {
	tb.Helper()
	files, err := filepath.Glob("testdata/corpus/*.txt")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no corpus files: %v", err)
	}
	var out []corpusLine
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		ident := ""
		for sc.Scan() {
			text := sc.Text()
			if strings.HasPrefix(text, "# ident: ") {
				ident = strings.TrimPrefix(text, "# ident: ")
				continue
			}
			if strings.HasPrefix(text, "#") || text == "" {
				continue
			}
			out = append(out, corpusLine{file, text, ident})
			ident = ""
		}
		f.Close()
	}
	return out
}

// addressesIn returns every address written whole in text: each maximal
// run of address characters that parses.
func addressesIn(text string) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	isAddrByte := func(c byte) bool {
		return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == ':' || c == '.'
	}
	for i := 0; i < len(text); {
		if !isAddrByte(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isAddrByte(text[j]) {
			j++
		}
		// Runs may carry a trailing ":port" or ":" of the text around.
		for k := j; k > i; k-- {
			if a, ok := parseAddr([]byte(text[i:k])); ok {
				out[a] = true
				break
			}
		}
		i = j
	}
	return out
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" when refused
	}{
		{"198.18.7.2", "198.18.7.2"},
		{"::ffff:198.18.7.2", "198.18.7.2"},
		{"IPv6:::ffff:198.18.7.2", "198.18.7.2"},
		{"fd00:7::2", "fd00:7::2"},
		{"IPv6:fd00:7::2", "fd00:7::2"},
		{"FD00:7::2", "fd00:7::2"},
		{"fe80::1%eth0", ""},
		{"198.18.7", ""},
		{"198.18.7.2.1", ""},
		{"198.18.7.256", ""},
		{"198.018.7.2", ""},
		{"1.2.3.4 ", ""},
		{"", ""},
		{"unknown", ""},
		{"::", "::"},
	}
	for _, tt := range tests {
		a, ok := parseAddr([]byte(tt.in))
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("parseAddr(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestPostfixServiceNames maps master.cf service names (the syslog_name
// between "postfix" and the daemon) to services.
func TestPostfixServiceNames(t *testing.T) {
	tests := map[string]string{
		"postfix/smtpd":                ServiceSMTP,
		"postfix/submission/smtpd":     ServiceSubmission,
		"postfix/smtps/smtpd":          ServiceSubmissions,
		"postfix/submissions/smtpd":    ServiceSubmissions,
		"postfix/587/smtpd":            ServiceSubmission,
		"postfix/465/smtpd":            ServiceSubmissions,
		"postfix-out/smtpd/smtpd":      ServiceSMTP,
		"postfix-in/submission/smtpd":  ServiceSubmission,
		"postfix/internal-relay/smtpd": ServiceSMTP,
		"postfix-incoming/smtpd":       ServiceSMTP,
		"postfix/submission-mua/smtpd": ServiceSubmission,
		"postfix/smtps-internal/smtpd": ServiceSubmissions,
	}
	p := newTestParser(t, ParserOptions{})
	for tag, want := range tests {
		line := "Dec 04 21:58:42 mx " + tag + "[1]: warning: unknown[198.18.7.2]: SASL PLAIN authentication failed: x"
		got := parseAll(p, Line{Text: []byte(line)})
		if len(got) != 1 || got[0].Service != want {
			t.Errorf("%s: got %+v, want service %s", tag, got, want)
		}
	}
}

// TestJournalShape: with Ident set the text is the bare message, and
// Line.Time is used as is.
func TestJournalShape(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	p := newTestParser(t, ParserOptions{})
	lines := []Line{
		{Ident: "postfix/submission/smtpd", Time: at, Text: []byte("warning: unknown[198.18.7.2]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=alice")},
		{Ident: "dovecot", Time: at, Text: []byte("imap-login: Disconnected: Aborted login by logging out (auth failed, 2 attempts in 22 secs): user=<alice>, method=PLAIN, rip=198.18.7.2, lip=198.18.7.1, session=<sSUQ+9VhoKjGEgcC>")},
		{Ident: "sshd", Time: at, Text: []byte("Failed password for root from 198.18.7.2 port 48954 ssh2")},
		{Ident: "sshd-session", Time: at, Text: []byte("Failed password for root from 198.18.7.2 port 48954 ssh2")},
		{Ident: "exim", Time: at, Text: []byte("login authenticator failed for (helo) [198.18.7.2]: 535 Incorrect authentication data (set_id=alice)")},
	}
	for _, l := range lines {
		got := parseAll(p, l)
		if len(got) != 1 || !got[0].Time.Equal(at) || got[0].Addr != netip.MustParseAddr("198.18.7.2") {
			t.Errorf("%s: got %+v", l.Ident, got)
		}
	}
	// The same message in a file is not read as that program's: the tag
	// is what says who wrote it.
	if got := parseAll(p, Line{Text: lines[2].Text}); len(got) != 0 {
		t.Errorf("bare sshd message without ident: got %+v", got)
	}
}

// TestRuleSetsAndRules: disabled sets yield nothing and are not listed.
func TestRuleSetsAndRules(t *testing.T) {
	p := newTestParser(t, ParserOptions{RuleSets: []string{RuleSetSSHD}})
	if got := parseAll(p, Line{Text: []byte("Dec 04 21:58:42 mx postfix/smtpd[1]: warning: unknown[198.18.7.2]: SASL PLAIN authentication failed: x")}); len(got) != 0 {
		t.Errorf("postfix disabled: got %+v", got)
	}
	for _, r := range p.Rules() {
		if r.Set != RuleSetSSHD {
			t.Errorf("listed %+v with only sshd enabled", r)
		}
	}
	if n := len(newTestParser(t, ParserOptions{}).Rules()); n != len(builtinRules) {
		t.Errorf("all sets: %d rules, want %d", n, len(builtinRules))
	}
	if _, err := NewParser(ParserOptions{RuleSets: []string{"postfix", "qmail"}, Sessions: -1}); err == nil ||
		!strings.Contains(err.Error(), `"qmail"`) || !strings.Contains(err.Error(), "sessions -1") {
		t.Errorf("bad options: err = %v, want both problems", err)
	}
}
