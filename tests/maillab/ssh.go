package maillab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHPassword makes one SSH connection to port 22 that tries one password
// and reports whether the server accepted it. An error means the exchange
// failed (refused, dropped, timed out), not that the password was wrong.
func (c *Client) SSHPassword(ctx context.Context, server netip.Addr, user, pass string) (bool, error) {
	return c.sshLogin(ctx, server, user, ssh.Password(pass))
}

// SSHPublicKey makes one SSH connection to port 22 that offers signer's
// key (see Lab.AuthorizeKey) and reports whether the server accepted it.
func (c *Client) SSHPublicKey(ctx context.Context, server netip.Addr, user string, signer ssh.Signer) (bool, error) {
	return c.sshLogin(ctx, server, user, ssh.PublicKeys(signer))
}

func (c *Client) sshLogin(ctx context.Context, server netip.Addr, user string, auth ssh.AuthMethod) (bool, error) {
	addr := netip.AddrPortFrom(server, SSHPort)
	conn, err := c.Dial(ctx, addr)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	deadline := time.Now().Add(exchangeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return false, fmt.Errorf("set deadline: %w", err)
	}
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{auth},
		// The lab generates a fresh host key per run and the connection
		// never leaves the lab's own namespaces.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	}
	sconn, chans, reqs, err := ssh.NewClientConn(conn, addr.String(), cfg)
	if err != nil {
		// x/crypto/ssh has no typed error for a refused login.
		var netErr interface{ Timeout() bool }
		if !errors.As(err, &netErr) && strings.Contains(err.Error(), "unable to authenticate") {
			return false, nil
		}
		return false, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	go ssh.DiscardRequests(reqs) // ends when the connection closes below
	go func() {
		for ch := range chans {
			_ = ch.Reject(ssh.Prohibited, "lab client opens no channels")
		}
	}()
	if err := sconn.Close(); err != nil {
		return true, fmt.Errorf("close ssh connection: %w", err)
	}
	return true, nil
}
