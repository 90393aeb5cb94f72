package alert

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"strings"
	"time"
)

// mailBytes is m as an RFC 5322 message in UTF-8, lines ending in CRLF
// (sendmail -t accepts them; SMTP needs them).
func mailBytes(from string, to []string, m Message) []byte {
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", from)
	h("To", strings.Join(to, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", m.title()))
	h("Date", m.At.Format(time.RFC1123Z))
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	h("Message-ID", fmt.Sprintf("<%s.portcullis@%s>", hex.EncodeToString(id), m.Host))
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "8bit")
	h("Auto-Submitted", "auto-generated") // RFC 3834: no vacation replies to an alert
	h("X-Portcullis-Alert", m.Key)
	b.WriteString("\r\n")
	for _, line := range strings.Split(strings.TrimRight(m.Text(), "\n"), "\n") {
		// A lone dot is the end of DATA; net/smtp's DotWriter escapes
		// it, sendmail -i ignores it. Long lines stay under the 998
		// limit by folding.
		for len(line) > 900 {
			b.WriteString(line[:900])
			b.WriteString("\r\n")
			line = line[900:]
		}
		b.WriteString(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// Sendmail hands messages to the local MTA's sendmail program (Postfix,
// Exim and OpenSMTPD all have one): no network, no password.
type Sendmail struct {
	ChannelName string
	// Command is the program and its arguments; the message goes to its
	// standard input. -t takes the recipients from the To header.
	Command []string
	From    string
	To      []string
}

// DefaultSendmail is the command when none is configured.
var DefaultSendmail = []string{"/usr/sbin/sendmail", "-t", "-i"}

// Name is the channel's name.
func (s *Sendmail) Name() string { return s.ChannelName }

// Type is "sendmail".
func (s *Sendmail) Type() string { return "sendmail" }

// Send runs the command with the message on its standard input.
func (s *Sendmail) Send(ctx context.Context, m Message) error {
	argv := s.Command
	if len(argv) == 0 {
		argv = DefaultSendmail
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(mailBytes(s.From, s.To, m))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("run %s: %w: %s", argv[0], err, msg)
		}
		return fmt.Errorf("run %s: %w", argv[0], err)
	}
	return nil
}

// SMTP delivers to an MTA over SMTP without authentication: the local one
// by default, which relays for localhost.
type SMTP struct {
	ChannelName string
	// Address is host:port; empty means localhost:25.
	Address string
	// StartTLS upgrades the connection when the server offers it; the
	// server's certificate is then verified, against CAFile's CAs when
	// set, else the system's.
	StartTLS bool
	CAFile   string
	From     string
	To       []string
	// Dial opens the connection; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Name is the channel's name.
func (s *SMTP) Name() string { return s.ChannelName }

// Type is "smtp".
func (s *SMTP) Type() string { return "smtp" }

// Send delivers one message in one SMTP session.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	addr := s.Address
	if addr == "" {
		addr = "localhost:25"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("smtp address %q: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dial := s.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	dl, _ := ctx.Deadline()
	_ = conn.SetDeadline(dl)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp greeting from %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Hello(hostname()); err != nil {
		return fmt.Errorf("smtp hello to %s: %w", addr, err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok && s.StartTLS {
		cfg := &tls.Config{ServerName: host}
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile)
			if err != nil {
				return fmt.Errorf("read ca_file: %w", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("ca_file %s holds no PEM certificate", s.CAFile)
			}
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("starttls with %s: %w", addr, err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("smtp MAIL FROM %s at %s: %w", s.From, addr, err)
	}
	if len(s.To) == 0 {
		return errors.New("no recipients ([alerts] to is empty)")
	}
	for _, to := range s.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("smtp RCPT TO %s at %s: %w", to, addr, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA at %s: %w", addr, err)
	}
	if _, err := w.Write(mailBytes(s.From, s.To, m)); err != nil {
		return fmt.Errorf("send message to %s: %w", addr, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of message at %s: %w", addr, err)
	}
	return c.Quit()
}
