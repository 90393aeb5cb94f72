package testnet

import (
	"net"
	"net/netip"
	"sync"
	"testing"
)

// Serve accepts and closes TCP connections on port (0: any free one) in ns
// until the test ends, so that the backlog never fills, and returns the
// port.
func (ns *NS) Serve(t testing.TB, port uint16) uint16 {
	t.Helper()
	ln, err := ns.Listen("tcp", netip.AddrPortFrom(netip.Addr{}, port))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by the cleanup below
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).AddrPort().Port()
}
