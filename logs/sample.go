package logs

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// WriteSampleLog writes a synthetic mail-server syslog of the given number
// of lines, the same for the same seed. It is a test and benchmark aid: about
// 96% of the lines are ordinary traffic (Postfix connections, queue ids,
// deliveries, SASL and Dovecot logins, sshd key logins), the rest failures
// (SASL and Dovecot login failures, sshd password guesses, relay attempts,
// postscreen pregreets) from a few thousand addresses in 198.18.0.0/15 and
// fd00::/8. Line shapes are those of Postfix 3.7, Dovecot 2.3 and OpenSSH
// 9.2 (see testdata/corpus).
func WriteSampleLog(w io.Writer, lines int, seed int64) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	g := sampleGen{
		rnd: rand.New(rand.NewPCG(uint64(seed), 0x706f7274)),
		t:   time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC),
	}
	for i := 0; i < lines; i++ {
		g.t = g.t.Add(time.Duration(g.rnd.IntN(200)) * time.Millisecond)
		if _, err := fmt.Fprintf(bw, "%s mx %s\n", g.t.Format(time.Stamp), g.line()); err != nil {
			return fmt.Errorf("write sample log: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write sample log: %w", err)
	}
	return nil
}

type sampleGen struct {
	rnd *rand.Rand
	t   time.Time
}

var sampleUsers = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}

func (g *sampleGen) good() string {
	return fmt.Sprintf("198.19.%d.%d", g.rnd.IntN(4), 1+g.rnd.IntN(250))
}

func (g *sampleGen) bad() string {
	if g.rnd.IntN(8) == 0 {
		return fmt.Sprintf("fd00:bad::%x", 1+g.rnd.IntN(500))
	}
	return fmt.Sprintf("198.18.%d.%d", g.rnd.IntN(16), 1+g.rnd.IntN(250))
}

func (g *sampleGen) qid() string { return fmt.Sprintf("%X", 0x100000000+g.rnd.Int64N(0xFFFFFFFFF)) }
func (g *sampleGen) pid() int    { return 1000 + g.rnd.IntN(30000) }
func (g *sampleGen) user() string {
	return sampleUsers[g.rnd.IntN(len(sampleUsers))]
}
func (g *sampleGen) session() string {
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var s [16]byte
	for i := range s {
		s[i] = b64[g.rnd.IntN(64)]
	}
	return string(s[:])
}

func (g *sampleGen) line() string {
	r := g.rnd.IntN(1000)
	switch {
	// Ordinary traffic: 96%.
	case r < 120:
		return fmt.Sprintf("postfix/smtpd[%d]: connect from mail.example.net[%s]", g.pid(), g.good())
	case r < 240:
		return fmt.Sprintf("postfix/smtpd[%d]: %s: client=mail.example.net[%s]", g.pid(), g.qid(), g.good())
	case r < 350:
		return fmt.Sprintf("postfix/cleanup[%d]: %s: message-id=<%d@example.net>", g.pid(), g.qid(), g.rnd.Int64())
	case r < 460:
		return fmt.Sprintf("postfix/qmgr[%d]: %s: from=<%s@example.net>, size=%d, nrcpt=1 (queue active)", g.pid(), g.qid(), g.user(), 500+g.rnd.IntN(90000))
	case r < 580:
		return fmt.Sprintf("postfix/smtp[%d]: %s: to=<%s@example.org>, relay=mx.example.org[%s]:25, delay=0.41, delays=0.08/0.01/0.12/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as %s)", g.pid(), g.qid(), g.user(), g.good(), g.qid())
	case r < 680:
		return fmt.Sprintf("postfix/qmgr[%d]: %s: removed", g.pid(), g.qid())
	case r < 790:
		return fmt.Sprintf("postfix/smtpd[%d]: disconnect from mail.example.net[%s] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5", g.pid(), g.good())
	case r < 830:
		return fmt.Sprintf("postfix/submission/smtpd[%d]: %s: client=unknown[%s], sasl_method=PLAIN, sasl_username=%s", g.pid(), g.qid(), g.good(), g.user())
	case r < 880:
		return fmt.Sprintf("dovecot: imap-login: Login: user=<%s>, method=PLAIN, rip=%s, lip=198.19.255.1, mpid=%d, TLS, session=<%s>", g.user(), g.good(), g.pid(), g.session())
	case r < 920:
		return fmt.Sprintf("dovecot: imap(%s)<%d><%s>: Logged out in=%d out=%d deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0", g.user(), g.pid(), g.session(), g.rnd.IntN(5000), g.rnd.IntN(90000))
	case r < 945:
		return fmt.Sprintf("sshd[%d]: Accepted publickey for %s from %s port %d ssh2: ED25519 SHA256:7nSFjHOQyR3wIOZ0Wn2Fwr1PCUXbwDPJQZNMuOvdjK8", g.pid(), g.user(), g.good(), 1024+g.rnd.IntN(60000))
	case r < 960:
		return fmt.Sprintf("postfix/postscreen[%d]: CONNECT from [%s]:%d to [198.19.255.1]:25", g.pid(), g.good(), 1024+g.rnd.IntN(60000))
	// Failures: 4%.
	case r < 972:
		return fmt.Sprintf("postfix/submission/smtpd[%d]: warning: unknown[%s]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=%s", g.pid(), g.bad(), g.user())
	case r < 980:
		return fmt.Sprintf("dovecot: imap-login: Disconnected: Aborted login by logging out (auth failed, %d attempts in 6 secs): user=<%s>, method=PLAIN, rip=%s, lip=198.19.255.1, session=<%s>", 1+g.rnd.IntN(3), g.user(), g.bad(), g.session())
	case r < 988:
		return fmt.Sprintf("sshd[%d]: Failed password for invalid user %s from %s port %d ssh2", g.pid(), g.user(), g.bad(), 1024+g.rnd.IntN(60000))
	case r < 994:
		return fmt.Sprintf("postfix/smtpd[%d]: NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 <x@elsewhere.example>: Relay access denied; from=<a@example.org> to=<x@elsewhere.example> proto=ESMTP helo=<client.example>", g.pid(), g.bad())
	default:
		return fmt.Sprintf("postfix/postscreen[%d]: PREGREET 23 after 0.1 from [%s]:%d: EHLO client.example\\r\\n", g.pid(), g.bad(), 1024+g.rnd.IntN(60000))
	}
}
