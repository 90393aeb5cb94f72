package alert_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/alert"
	"github.com/portcullis-mail/portcullis/tests/maillab"
)

// With starttls the SMTP channel upgrades the session and verifies the MTA's
// certificate: against ca_file it delivers (and Postfix logs the TLS
// session); against the system's roots, which do not know the lab's CA, it
// refuses to send rather than send in the clear.
func TestSMTPChannelUpgradesWithSTARTTLS(t *testing.T) {
	lab := maillab.Start(t, maillab.Options{TLS: true})
	to := []string{"postmaster@" + maillab.MailboxDomain}
	from := "portcullis@mx1.lab.example"
	send := func(ch *alert.SMTP, subject string) alert.Result {
		t.Helper()
		s := alert.NewSender(alert.Options{Channels: []alert.Channel{ch}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Host: "mx1.lab.example"})
		var res alert.Result
		if err := lab.ServerNS().Do(func() error {
			res = s.Alert(context.Background(), alert.Message{Key: subject, Severity: alert.Warning, Subject: subject, Body: "test\n", At: time.Now()})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return res
	}

	res := send(&alert.SMTP{ChannelName: "relay", Address: "198.18.0.1:25", StartTLS: true, CAFile: lab.TLSCA(), From: from, To: to}, "over TLS")
	if res.Delivered != "relay" {
		log, _ := os.ReadFile(lab.PostfixLog())
		t.Fatalf("not delivered over STARTTLS: %+v\n%s", res.Failed, log)
	}
	msgs := waitMail(t, lab.Mailbox(), 1)
	if len(msgs) != 1 {
		t.Fatalf("%d messages delivered, want 1", len(msgs))
	}
	log, err := os.ReadFile(lab.PostfixLog())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "TLS connection established from") {
		t.Errorf("Postfix logged no TLS session:\n%s", log)
	}

	res = send(&alert.SMTP{ChannelName: "relay", Address: "198.18.0.1:25", StartTLS: true, From: from, To: to}, "unverified")
	if res.Delivered != "" || len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Err.Error(), "certificate") {
		t.Fatalf("sent to an MTA whose certificate cannot be verified: %+v", res)
	}
}
