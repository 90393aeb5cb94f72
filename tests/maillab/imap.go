package maillab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// IMAPPort is the lab Dovecot's IMAP port (no TLS).
const IMAPPort = 143

// IMAPSession is an open IMAP connection from a client namespace.
type IMAPSession struct {
	*session
	tag int
}

// IMAP connects to addr and reads the greeting. Close it when done.
func (c *Client) IMAP(ctx context.Context, addr netip.AddrPort) (*IMAPSession, error) {
	s, err := c.openLineSession(ctx, addr, "imap", "* OK")
	if err != nil {
		return nil, err
	}
	return &IMAPSession{session: s}, nil
}

// command sends a tagged command and returns the tagged reply's status
// (OK, NO or BAD) and text, skipping untagged lines.
func (s *IMAPSession) command(format string, args ...any) (string, string, error) {
	s.tag++
	tag := fmt.Sprintf("a%d", s.tag)
	if err := s.text.PrintfLine(tag+" "+format, args...); err != nil {
		return "", "", fmt.Errorf("imap send: %w", err)
	}
	for {
		line, err := s.text.ReadLine()
		if err != nil {
			return "", "", fmt.Errorf("imap reply: %w", err)
		}
		rest, ok := strings.CutPrefix(line, tag+" ")
		if !ok {
			continue
		}
		status, text, _ := strings.Cut(rest, " ")
		return status, text, nil
	}
}

// Login sends LOGIN and reports whether the server accepted it. Failed
// logins leave the connection open for another attempt.
func (s *IMAPSession) Login(user, pass string) (bool, error) {
	status, text, err := s.command("LOGIN %s %s", imapQuote(user), imapQuote(pass))
	if err != nil {
		return false, err
	}
	switch status {
	case "OK":
		return true, nil
	case "NO":
		return false, nil
	default:
		return false, fmt.Errorf("imap LOGIN: %s %s", status, text)
	}
}

// Logout says goodbye and closes the connection.
func (s *IMAPSession) Logout() error {
	_, _, err := s.command("LOGOUT")
	return s.closeAfter(err)
}

// imapQuote makes an IMAP quoted string.
func imapQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// IMAPLogin makes one complete IMAP login on port 143 (LOGIN, LOGOUT) and
// reports whether the server accepted the credentials.
func (c *Client) IMAPLogin(ctx context.Context, server netip.Addr, user, pass string) (bool, error) {
	s, err := c.IMAP(ctx, netip.AddrPortFrom(server, IMAPPort))
	if err != nil {
		return false, err
	}
	defer s.Close()
	ok, err := s.Login(user, pass)
	if err != nil {
		return false, err
	}
	return ok, s.Logout()
}
