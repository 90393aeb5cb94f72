package maillab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testnet"
)

// exchangeTimeout bounds every dial and protocol exchange whose context
// has no earlier deadline.
const exchangeTimeout = 10 * time.Second

// Client is one client namespace of a lab, with its own addresses.
type Client struct {
	index int
	ns    *testnet.NS
	addr4 netip.Addr
	addr6 netip.Addr
}

// Addr4 is the client's IPv4 address, as the servers log it.
func (c *Client) Addr4() netip.Addr { return c.addr4 }

// Addr6 is the client's IPv6 address, as the servers log it.
func (c *Client) Addr6() netip.Addr { return c.addr6 }

// Netns is the name of the client's namespace.
func (c *Client) Netns() string { return c.ns.Name }

// NetnsPath is the client namespace's bind mount under /run/netns.
func (c *Client) NetnsPath() string { return c.ns.Path }

// NS is the client namespace itself, for internal/testnet helpers.
func (c *Client) NS() *testnet.NS { return c.ns }

// Dial opens a TCP connection from inside the client namespace. The
// connection can be used from any goroutine afterwards. An error here
// means the server could not be reached (refused, dropped, timed out), not
// that it rejected a login.
func (c *Client) Dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	defer cancel()
	return c.ns.Dial(ctx, "tcp", addr)
}

// session is a line-based protocol connection with a bounded deadline.
type session struct {
	conn net.Conn
	text *textproto.Conn
}

// openSession dials addr and sets the connection deadline from ctx.
func (c *Client) openSession(ctx context.Context, addr netip.AddrPort) (*session, error) {
	conn, err := c.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(exchangeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, fmt.Errorf("set deadline: %w", err)
	}
	return &session{conn: conn, text: textproto.NewConn(conn)}, nil
}

// openLineSession dials addr and checks that the first line the server
// sends starts with prefix ("* OK" for IMAP, "+OK" for POP3).
func (c *Client) openLineSession(ctx context.Context, addr netip.AddrPort, proto, prefix string) (*session, error) {
	s, err := c.openSession(ctx, addr)
	if err != nil {
		return nil, err
	}
	line, err := s.text.ReadLine()
	if err == nil && !strings.HasPrefix(line, prefix) {
		err = fmt.Errorf("%q", line)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s greeting from %s: %w", proto, addr, err)
	}
	return s, nil
}

// closeAfter closes the connection after a goodbye command and returns
// the goodbye's error, or else the close's.
func (s *session) closeAfter(goodbyeErr error) error {
	closeErr := s.Close()
	if goodbyeErr != nil {
		return goodbyeErr
	}
	return closeErr
}

// Close closes the connection without a protocol goodbye.
func (s *session) Close() error { return s.text.Close() }
