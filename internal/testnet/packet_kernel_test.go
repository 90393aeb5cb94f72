package testnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// The kernel is the final judge of lengths and checksums: these tests send
// built frames from the client's veth and check that the server's stack
// accepts them.

func TestKernelDeliversBuiltUDP(t *testing.T) {
	p := NewPair(t)
	var conn4, conn6 *net.UDPConn
	err := p.Server.Do(func() error {
		var err error
		if conn4, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ServerAddr4, 0))); err != nil {
			return err
		}
		conn6, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ServerAddr6, 0)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn4.Close(); conn6.Close() })
	raw := p.ClientLink.OpenRaw(t)

	tests := []struct {
		name string
		p    Packet
	}{
		{"IPv4", Packet{Src: p.ClientAddr4, Dst: p.ServerAddr4}},
		{"IPv4 with options", Packet{Src: p.ClientAddr4, Dst: p.ServerAddr4, IPv4Options: []byte{1, 1, 1}}},
		{"IPv6", Packet{Src: p.ClientAddr6, Dst: p.ServerAddr6}},
		{"IPv6 hop-by-hop", Packet{Src: p.ClientAddr6, Dst: p.ServerAddr6, IPv6Ext: []ExtHeader{{Type: ExtHopByHop}}}},
		{"IPv6 long hop-by-hop", Packet{Src: p.ClientAddr6, Dst: p.ServerAddr6, IPv6Ext: []ExtHeader{{Type: ExtHopByHop, Len: 1400}}}}, // within the 1500-byte MTU
		{"IPv6 destination options", Packet{Src: p.ClientAddr6, Dst: p.ServerAddr6, IPv6Ext: []ExtHeader{{Type: ExtDestOptions, Len: 100}}}},
		{"IPv6 routing", Packet{Src: p.ClientAddr6, Dst: p.ServerAddr6, IPv6Ext: []ExtHeader{{Type: ExtRouting, Len: 38}}}},
		{"IPv6 atomic fragment", Packet{Src: p.ClientAddr6, Dst: p.ServerAddr6, IPv6Ext: []ExtHeader{{Type: ExtFragment, Frag: &Frag{ID: 9}}}}},
		{"IPv6 chain", Packet{Src: p.ClientAddr6, Dst: p.ServerAddr6, IPv6Ext: []ExtHeader{
			{Type: ExtHopByHop, Len: 20}, {Type: ExtDestOptions}, {Type: ExtRouting}, {Type: ExtFragment}, {Type: ExtDestOptions, Len: 9},
		}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := conn4
			if tt.p.Src.Is6() {
				conn = conn6
			}
			pk := tt.p
			pk.SrcMAC, pk.DstMAC = p.ClientLink.HardwareAddr, p.ServerLink.HardwareAddr
			pk.Proto, pk.SrcPort = ProtoUDP, uint16(41000+i)
			pk.DstPort = uint16(conn.LocalAddr().(*net.UDPAddr).Port)

			// A copy with a broken checksum goes first: the kernel must drop
			// it, or this test could not tell a right checksum from none.
			bad := pk
			bad.Payload = []byte(fmt.Sprintf("bad %d", i))
			frame := bad.Bytes()
			frame[len(frame)-len(bad.Payload)-2] ^= 0x5a
			pk.Payload = []byte(fmt.Sprintf("good %d, odd", i))
			for _, f := range [][]byte{frame, pk.Bytes()} {
				if err := raw.Send(f); err != nil {
					t.Fatal(err)
				}
			}

			buf := make([]byte, 128)
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("server received nothing: %v", err)
			}
			if got := string(buf[:n]); got != string(pk.Payload) {
				t.Errorf("server received %q first, want %q (the corrupted copy must be dropped)", got, pk.Payload)
			}
			if want := netip.AddrPortFrom(pk.Src, pk.SrcPort); from != want {
				t.Errorf("datagram from %s, want %s", from, want)
			}
		})
	}
}

func TestKernelAnswersBuiltSYN(t *testing.T) {
	p := NewPair(t)
	l, err := p.Server.Listen("tcp", netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	raw := p.ClientLink.OpenRaw(t)
	mss := []byte{2, 4, 0x05, 0xb4}

	tests := []struct {
		name     string
		src, dst netip.Addr
		opts     []byte
		ext      []ExtHeader
	}{
		{"IPv4", p.ClientAddr4, p.ServerAddr4, nil, nil},
		{"IPv4 with MSS", p.ClientAddr4, p.ServerAddr4, mss, nil},
		{"IPv6", p.ClientAddr6, p.ServerAddr6, nil, nil},
		{"IPv6 with MSS after destination options", p.ClientAddr6, p.ServerAddr6, mss, []ExtHeader{{Type: ExtDestOptions, Len: 30}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			syn := SYN(tt.src, tt.dst, port)
			syn.SrcPort = uint16(42000 + i)
			syn.SrcMAC, syn.DstMAC = p.ClientLink.HardwareAddr, p.ServerLink.HardwareAddr
			syn.TCPOptions, syn.IPv6Ext = tt.opts, tt.ext
			if err := raw.Send(syn.Bytes()); err != nil {
				t.Fatal(err)
			}
			// The client has no socket for it and answers the SYN-ACK with a
			// reset; only the SYN-ACK matters here.
			_, err := raw.Receive(5*time.Second, func(frame []byte) bool {
				pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
				tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
				return ok && tcp.SYN && tcp.ACK && uint16(tcp.SrcPort) == port &&
					uint16(tcp.DstPort) == syn.SrcPort && tcp.Ack == 2
			})
			if err != nil {
				t.Fatalf("no SYN-ACK for the built SYN: %v", err)
			}
		})
	}
}

func TestRawReceiveTimesOut(t *testing.T) {
	p := NewPair(t)
	raw := p.ServerLink.OpenRaw(t)
	start := time.Now()
	_, err := raw.Receive(50*time.Millisecond, func([]byte) bool { return false })
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Receive with nothing matching returned %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Receive took %s for a 50ms timeout", d)
	}
}
