package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Reaches opens a TCP connection from ns (from local when valid) to dst and
// says whether it was accepted. A connect that times out or finds no route
// counts as dropped: with IPv6, a ban of scope all also drops the client's
// neighbour solicitations, and after a few unanswered ones the client's
// kernel gives up on the server's address. Any other outcome, such as a
// reset, is an error: the packet was not dropped.
func (ns *NS) Reaches(ctx context.Context, local netip.Addr, dst netip.AddrPort) (bool, error) {
	c, err := ns.DialFrom(ctx, "tcp", netip.AddrPortFrom(local, 0), dst)
	if err == nil {
		c.Close()
		return true, nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EHOSTUNREACH) {
		return false, nil
	}
	return false, fmt.Errorf("connect to %s: %w", dst, err)
}
