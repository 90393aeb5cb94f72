// Package alert tells a person what needs their attention: attack spikes
// and portcullis's own failures, through the mail server's own local
// services (sendmail, SMTP to the local MTA), webhooks and the log.
//
// Detectors are pure functions of what the daemon and the store know at one
// moment; a Sender delivers what they find through channels in order of
// preference, holds back repeats of one alert key for a cool-down, says when
// a failure clears, and retries failed sends with backoff.
package alert

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Severity says how urgent a message is.
type Severity string

// The severities.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

// Message is one alert. Key identifies what it is about (for example
// "stall:file:/var/log/mail.log"): repeats of one key are held back for the
// cool-down, and a recovery names the key it clears.
type Message struct {
	Key      string    `json:"key"`
	Severity Severity  `json:"severity"`
	Subject  string    `json:"subject"`
	Body     string    `json:"body"`
	Since    time.Time `json:"since,omitzero"`
	At       time.Time `json:"at"`
	// Once marks an event rather than a condition (an unclean restart):
	// it is held back like any other, but never listed as active and
	// never followed by a recovery.
	Once bool `json:"-"`
	// Recovery is set on the message that says a failure cleared.
	Recovery bool `json:"recovery,omitempty"`
	// Host is the machine the alert is about.
	Host string `json:"host"`
}

// Text is the message as a person reads it in mail or chat: the subject
// line, then the body.
func (m Message) Text() string {
	var b strings.Builder
	b.WriteString(m.Subject)
	b.WriteString("\n\n")
	b.WriteString(m.Body)
	if !strings.HasSuffix(m.Body, "\n") {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n-- portcullis on %s, %s (alert key %s)\n", m.Host, m.At.UTC().Format(time.RFC3339), m.Key)
	return b.String()
}

// title is the subject with the severity and host in front, as mail
// subjects and chat lines show it.
func (m Message) title() string {
	tag := strings.ToUpper(string(m.Severity))
	if m.Recovery {
		tag = "RESOLVED"
	}
	return fmt.Sprintf("[portcullis %s] %s: %s", tag, m.Host, m.Subject)
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// ago writes a duration as a person reads it: "3m20s", "2h5m".
func ago(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	if d < time.Hour {
		d = d.Round(time.Second)
		if s := d % time.Minute; s != 0 {
			return fmt.Sprintf("%dm%ds", d/time.Minute, s/time.Second)
		}
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	d = d.Round(time.Minute)
	if m := d % time.Hour; m != 0 {
		return fmt.Sprintf("%dh%dm", d/time.Hour, m/time.Minute)
	}
	return fmt.Sprintf("%dh", d/time.Hour)
}
