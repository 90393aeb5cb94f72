package maillab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// POP3Port is the lab Dovecot's POP3 port (no TLS).
const POP3Port = 110

// POP3Session is an open POP3 connection from a client namespace.
type POP3Session struct {
	*session
}

// POP3 connects to addr and reads the greeting. Close it when done.
func (c *Client) POP3(ctx context.Context, addr netip.AddrPort) (*POP3Session, error) {
	s, err := c.openLineSession(ctx, addr, "pop3", "+OK")
	if err != nil {
		return nil, err
	}
	return &POP3Session{session: s}, nil
}

// command sends one line and reports whether the reply was +OK.
func (s *POP3Session) command(format string, args ...any) (bool, string, error) {
	if err := s.text.PrintfLine(format, args...); err != nil {
		return false, "", fmt.Errorf("pop3 send: %w", err)
	}
	line, err := s.text.ReadLine()
	if err != nil {
		return false, "", fmt.Errorf("pop3 reply: %w", err)
	}
	switch {
	case strings.HasPrefix(line, "+OK"):
		return true, line, nil
	case strings.HasPrefix(line, "-ERR"):
		return false, line, nil
	default:
		return false, line, fmt.Errorf("pop3 reply: %q", line)
	}
}

// Login sends USER and PASS and reports whether the server accepted them.
// After a refusal the connection stays open for another attempt.
func (s *POP3Session) Login(user, pass string) (bool, error) {
	ok, line, err := s.command("USER %s", user)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("pop3 USER: %s", line)
	}
	ok, _, err = s.command("PASS %s", pass)
	return ok, err
}

// Quit says goodbye and closes the connection.
func (s *POP3Session) Quit() error {
	_, _, err := s.command("QUIT")
	return s.closeAfter(err)
}

// POP3Login makes one complete POP3 login on port 110 (USER, PASS, QUIT)
// and reports whether the server accepted the credentials.
func (c *Client) POP3Login(ctx context.Context, server netip.Addr, user, pass string) (bool, error) {
	s, err := c.POP3(ctx, netip.AddrPortFrom(server, POP3Port))
	if err != nil {
		return false, err
	}
	defer s.Close()
	ok, err := s.Login(user, pass)
	if err != nil {
		return false, err
	}
	return ok, s.Quit()
}
