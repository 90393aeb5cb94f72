package alert_test

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/alert"
	"github.com/portcullis-mail/portcullis/logs"
	"github.com/portcullis-mail/portcullis/tests/maillab"
)

// TestMailChannelsDeliverToARealMTA sends an attack alert through the
// sendmail and SMTP channels into a real Postfix (the mail lab's, in its
// own network namespace) and reads what it delivered to the mailbox.
func TestMailChannelsDeliverToARealMTA(t *testing.T) {
	lab := maillab.Start(t, maillab.Options{})
	to := []string{"postmaster@" + maillab.MailboxDomain}
	from := "portcullis@mx1.lab.example"
	channels := map[string]alert.Channel{
		"sendmail": &alert.Sendmail{ChannelName: "local", Command: lab.SendmailCommand(), From: from, To: to},
		// The default address: the MTA on this host, here the lab's.
		"smtp": &alert.SMTP{ChannelName: "relay", From: from, To: to},
	}

	t0 := time.Now().UTC().Truncate(time.Second)
	var events []logs.Event
	for i := range 150 {
		addr := netip.MustParseAddr("198.51.100.7")
		if i%3 == 0 {
			addr = netip.MustParseAddr("2001:db8:1:2::99")
		}
		events = append(events, logs.Event{Time: t0, Kind: logs.KindAuthFailure, Addr: addr, Attempts: 1})
	}
	attack, ok := alert.FailureSpike(events, 0, alert.Thresholds{FailuresPerMinute: 120})
	if !ok {
		t.Fatal("no spike")
	}
	attack.Since, attack.Banned, attack.Dropped = t0.Add(-time.Minute), 1, 812
	attack.Top[0].Banned = true

	for kind, ch := range channels {
		m := attack.Message()
		m.Subject += " via " + kind
		s := alert.NewSender(alert.Options{Channels: []alert.Channel{ch}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Host: "mx1.lab.example"})
		var res alert.Result
		err := lab.ServerNS().Do(func() error {
			res = s.Alert(context.Background(), m)
			return nil
		})
		if err != nil || res.Delivered == "" {
			t.Fatalf("%s: %v %+v", kind, err, res.Failed)
		}
	}

	msgs := waitMail(t, lab.Mailbox(), len(channels))
	for kind := range channels {
		var msg *mail.Message
		var subject string
		for _, mm := range msgs {
			s, _ := new(mime.WordDecoder).DecodeHeader(mm.Header.Get("Subject"))
			if strings.HasSuffix(s, " via "+kind) {
				msg, subject = mm, s
			}
		}
		if msg == nil {
			t.Errorf("%s: no message delivered", kind)
			continue
		}
		if want := "[portcullis WARNING] mx1.lab.example: failed-login spike: 150 failed logins in the last minute from 2 sources"; !strings.HasPrefix(subject, want) {
			t.Errorf("%s: subject %q, want it to start %q", kind, subject, want)
		}
		if got := msg.Header.Get("Auto-Submitted"); got != "auto-generated" {
			t.Errorf("%s: Auto-Submitted %q", kind, got)
		}
		if got := msg.Header.Get("From"); got != from {
			t.Errorf("%s: From %q", kind, got)
		}
		b, _ := io.ReadAll(msg.Body)
		body := strings.Join(strings.Fields(string(b)), " ")
		for _, want := range []string{
			"Since: " + t0.Add(-time.Minute).Format(time.RFC3339),
			"Attempts: 150 from 2 distinct sources",
			"198.51.100.7 100 country unknown banned",
			"2001:db8:1:2::/64 50 country unknown not banned",
			"What portcullis did: banned 1 source; the datapath dropped 812 packets",
			"Look closer: portcullis history --since 1h portcullis bans portcullis top portcullis history --since 1h --ip 198.51.100.7",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: delivered body lacks %q:\n%s", kind, want, b)
			}
		}
	}
}

// waitMail waits for n messages in the Maildir and parses them.
func waitMail(t *testing.T, maildir string, n int) []*mail.Message {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		entries, _ := os.ReadDir(filepath.Join(maildir, "new"))
		if len(entries) >= n {
			var out []*mail.Message
			for _, e := range entries {
				f, err := os.Open(filepath.Join(maildir, "new", e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				m, err := mail.ReadMessage(f)
				if err != nil {
					t.Fatalf("delivered message %s: %v", e.Name(), err)
				}
				out = append(out, m)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages delivered to %s within 60s", len(entries), n, maildir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
