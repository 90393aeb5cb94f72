package maillab

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

// SASLMech is an SMTP AUTH mechanism the lab's Postfix offers through
// Dovecot SASL.
type SASLMech string

// The mechanisms Dovecot is configured with.
const (
	AuthPlain SASLMech = "PLAIN"
	AuthLogin SASLMech = "LOGIN"
)

// SMTP ports of the lab's Postfix.
const (
	SMTPPort       = 25
	SubmissionPort = 587
)

// SMTPSession is an open SMTP connection from a client namespace.
type SMTPSession struct {
	*session
	ehlo []string // EHLO keywords of the last EHLO reply
}

// SMTP connects to addr and reads the greeting. Close it when done.
func (c *Client) SMTP(ctx context.Context, addr netip.AddrPort) (*SMTPSession, error) {
	s, err := c.openSession(ctx, addr)
	if err != nil {
		return nil, err
	}
	code, msg, err := s.text.ReadResponse(0)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("smtp greeting from %s: %w", addr, err)
	}
	if code != 220 {
		s.Close()
		return nil, fmt.Errorf("smtp greeting from %s: %d %s", addr, code, msg)
	}
	return &SMTPSession{session: s}, nil
}

// cmd sends one command line and reads the (possibly multi-line) reply.
func (s *SMTPSession) cmd(format string, args ...any) (int, string, error) {
	if err := s.text.PrintfLine(format, args...); err != nil {
		return 0, "", fmt.Errorf("smtp send: %w", err)
	}
	code, msg, err := s.text.ReadResponse(0)
	if err != nil {
		return code, msg, fmt.Errorf("smtp reply: %w", err)
	}
	return code, msg, nil
}

// Hello sends EHLO name and remembers the extensions offered.
func (s *SMTPSession) Hello(name string) error {
	code, msg, err := s.cmd("EHLO %s", name)
	if err != nil {
		return err
	}
	if code != 250 {
		return fmt.Errorf("smtp EHLO: %d %s", code, msg)
	}
	s.ehlo = strings.Split(msg, "\n")
	return nil
}

// Auth tries one SMTP AUTH exchange. It returns true for 235 (accepted),
// false for a 5xx or 4xx refusal, and an error when the exchange could not
// be completed.
func (s *SMTPSession) Auth(mech SASLMech, user, pass string) (bool, error) {
	var code int
	var msg string
	var err error
	switch mech {
	case AuthPlain:
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		code, msg, err = s.cmd("AUTH PLAIN %s", resp)
	case AuthLogin:
		if code, msg, err = s.cmd("AUTH LOGIN"); err != nil || code != 334 {
			break
		}
		if code, msg, err = s.cmd("%s", base64.StdEncoding.EncodeToString([]byte(user))); err != nil || code != 334 {
			break
		}
		code, msg, err = s.cmd("%s", base64.StdEncoding.EncodeToString([]byte(pass)))
	default:
		return false, fmt.Errorf("unknown SASL mechanism %q", mech)
	}
	if err != nil {
		return false, fmt.Errorf("smtp AUTH %s: %w", mech, err)
	}
	switch {
	case code == 235:
		return true, nil
	case code >= 400:
		return false, nil
	default:
		return false, fmt.Errorf("smtp AUTH %s: unexpected %d %s", mech, code, msg)
	}
}

// Relay sends MAIL FROM and RCPT TO and reports whether the recipient was
// accepted; it ends the transaction with RSET.
func (s *SMTPSession) Relay(from, to string) (bool, error) {
	code, msg, err := s.cmd("MAIL FROM:<%s>", from)
	if err != nil {
		return false, err
	}
	if code != 250 {
		return false, fmt.Errorf("smtp MAIL FROM: %d %s", code, msg)
	}
	code, _, err = s.cmd("RCPT TO:<%s>", to)
	if err != nil {
		return false, err
	}
	if _, _, err := s.cmd("RSET"); err != nil {
		return false, err
	}
	return code == 250, nil
}

// Quit says goodbye and closes the connection.
func (s *SMTPSession) Quit() error {
	_, _, err := s.cmd("QUIT")
	return s.closeAfter(err)
}

// SMTPAuth makes one complete submission login on port 587 (EHLO, AUTH,
// QUIT) and reports whether the server accepted the credentials. An error
// means the exchange failed, for instance because the connection was
// dropped.
func (c *Client) SMTPAuth(ctx context.Context, server netip.Addr, mech SASLMech, user, pass string) (bool, error) {
	s, err := c.SMTP(ctx, netip.AddrPortFrom(server, SubmissionPort))
	if err != nil {
		return false, err
	}
	defer s.Close()
	if err := s.Hello("client.lab.example"); err != nil {
		return false, err
	}
	ok, err := s.Auth(mech, user, pass)
	if err != nil {
		return false, err
	}
	return ok, s.Quit()
}

// SMTPPipelining connects to port 25 and sends EHLO and QUIT in one write
// before reading the greeting, which Postfix logs as improper command
// pipelining. It returns once the server has closed the connection.
func (c *Client) SMTPPipelining(ctx context.Context, server netip.Addr) error {
	s, err := c.openSession(ctx, netip.AddrPortFrom(server, SMTPPort))
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.conn.Write([]byte("EHLO client.lab.example\r\nQUIT\r\n")); err != nil {
		return fmt.Errorf("smtp pipelined write: %w", err)
	}
	for {
		_, err := s.text.ReadLine()
		if errors.Is(err, io.EOF) {
			return nil // the server closed the connection after QUIT
		}
		if err != nil {
			return fmt.Errorf("smtp after pipelined QUIT: %w", err)
		}
	}
}
