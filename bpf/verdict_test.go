package bpf_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/maps"
)

// readable says how much of a packet the program can read.
type readable int

const (
	nonIP      readable = iota // not IP at all
	noSource                   // malformed before the source address
	sourceOnly                 // malformed after the source: ports unknown
	noPorts                    // well formed, but no TCP header (UDP, later fragment, ...)
	ports                      // well formed TCP: the destination port is known
)

// Per family: a source nothing applies to, one under a mail-scope ban and one
// under an all-scope ban.
var (
	clean4, mailBanned4, allBanned4 = addr("198.18.1.1"), addr("198.18.1.2"), addr("198.18.1.3")
	clean6, mailBanned6, allBanned6 = addr("fd00:1::1"), addr("fd00:2::1"), addr("fd00:3::1")
)

func ext(types ...uint8) []testnet.ExtHeader {
	var hs []testnet.ExtHeader
	for _, t := range types {
		h := testnet.ExtHeader{Type: t, Len: 6}
		if t == testnet.ExtFragment {
			h = testnet.ExtHeader{Type: t, Frag: &testnet.Frag{ID: 7}} // first fragment: offset 0
		}
		hs = append(hs, h)
	}
	return hs
}

func TestVerdictDependsOnWhatThePacketLetsTheProgramRead(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	for _, a := range []netip.Addr{mailBanned4, mailBanned6} {
		d.ban(maps.Ban{Prefix: host(a), Scope: maps.ScopeMail})
	}
	for _, a := range []netip.Addr{allBanned4, allBanned6} {
		d.ban(maps.Ban{Prefix: host(a), Scope: maps.ScopeAll})
	}

	const (
		hop     = testnet.ExtHopByHop
		routing = testnet.ExtRouting
		frag    = testnet.ExtFragment
		dstopts = testnet.ExtDestOptions
		ah      = testnet.ExtAH
	)
	v4 := func(p testnet.Packet) testnet.Packet { p.Src, p.Dst = clean4, dst4; return p }
	v6 := func(p testnet.Packet) testnet.Packet { p.Src, p.Dst = clean6, dst6; return p }
	syn25 := testnet.Packet{SrcPort: 40000, DstPort: 25, Flags: testnet.FlagSYN}
	with := func(p testnet.Packet, f func(*testnet.Packet)) testnet.Packet { f(&p); return p }

	tests := []struct {
		name string
		pkt  testnet.Packet
		read readable
	}{
		{"ipv4", v4(syn25), ports},
		{"ipv6", v6(syn25), ports},
		{"ipv4 in vlan", v4(with(syn25, func(p *testnet.Packet) { p.VLANs = []uint16{10} })), ports},
		{"ipv6 in vlan", v6(with(syn25, func(p *testnet.Packet) { p.VLANs = []uint16{10} })), ports},
		{"ipv4 in qinq", v4(with(syn25, func(p *testnet.Packet) { p.VLANs = []uint16{10, 20} })), ports},
		{"ipv6 in qinq", v6(with(syn25, func(p *testnet.Packet) { p.VLANs = []uint16{10, 20} })), ports},
		{"three vlan tags are more than followed", v4(with(syn25, func(p *testnet.Packet) { p.VLANs = []uint16{10, 20, 30} })), noSource},
		{"ipv4 with 4 bytes of options", v4(with(syn25, func(p *testnet.Packet) { p.IPv4Options = []byte{1, 1, 1, 0} })), ports},
		{"ipv4 with 40 bytes of options", v4(with(syn25, func(p *testnet.Packet) { p.IPv4Options = make([]byte, 40) })), ports},
		{"ipv4 with tcp options", v4(with(syn25, func(p *testnet.Packet) { p.TCPOptions = []byte{2, 4, 5, 0xb4, 1, 1, 4, 2} })), ports},
		{"ipv6 hop-by-hop", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(hop) })), ports},
		{"ipv6 routing", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(routing) })), ports},
		{"ipv6 first fragment", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(frag) })), ports},
		{"ipv6 destination options", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(dstopts) })), ports},
		{"ipv6 authentication header", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(ah) })), ports},
		{"ipv6 long destination options", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = []testnet.ExtHeader{{Type: dstopts, Len: 2000}} })), ports},
		{"ipv6 chain of two", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(hop, dstopts) })), ports},
		{"ipv6 chain of three", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(hop, routing, frag) })), ports},
		{"ipv6 chain of four", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(hop, dstopts, routing, frag) })), ports},
		{"ipv6 chain of five", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(hop, dstopts, routing, frag, ah) })), ports},
		{"ipv6 chain of six", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(hop, dstopts, routing, frag, ah, dstopts) })), ports},
		{"ipv6 chain of seven is malformed", v6(with(syn25, func(p *testnet.Packet) { p.IPv6Ext = ext(hop, dstopts, routing, frag, ah, dstopts, dstopts) })), sourceOnly},
		{"ipv4 first fragment", v4(with(syn25, func(p *testnet.Packet) { p.IPv4Frag = &testnet.Frag{More: true, ID: 9} })), ports},
		{"ipv4 later fragment", v4(with(syn25, func(p *testnet.Packet) { p.IPv4Frag = &testnet.Frag{Offset: 3, ID: 9}; p.Payload = make([]byte, 16) })), noPorts},
		{"ipv4 later fragment with more", v4(with(syn25, func(p *testnet.Packet) {
			p.IPv4Frag = &testnet.Frag{Offset: 1, More: true, ID: 9}
			p.Payload = make([]byte, 16)
		})), noPorts},
		{"ipv6 later fragment", v6(with(syn25, func(p *testnet.Packet) {
			p.IPv6Ext = []testnet.ExtHeader{{Type: frag, Frag: &testnet.Frag{Offset: 3, ID: 9}}}
			p.Payload = make([]byte, 16)
		})), noPorts},
		{"ipv6 later fragment after hop-by-hop", v6(with(syn25, func(p *testnet.Packet) {
			p.IPv6Ext = []testnet.ExtHeader{{Type: hop, Len: 6}, {Type: frag, Frag: &testnet.Frag{Offset: 1, More: true, ID: 9}}}
			p.Payload = make([]byte, 16)
		})), noPorts},
		{"ipv4 udp to port 25", v4(with(syn25, func(p *testnet.Packet) { p.Proto = testnet.ProtoUDP })), noPorts},
		{"ipv6 udp to port 25", v6(with(syn25, func(p *testnet.Packet) { p.Proto = testnet.ProtoUDP })), noPorts},
		{"ipv4 icmp", v4(testnet.Packet{Proto: testnet.ProtoICMP, Payload: make([]byte, 8)}), noPorts},
		{"ipv6 icmpv6 after hop-by-hop", v6(testnet.Packet{Proto: testnet.ProtoICMPv6, IPv6Ext: ext(hop), Payload: make([]byte, 8)}), noPorts},
		{"ipv6 no next header", v6(testnet.Packet{Proto: 59 /* no next header */}), noPorts},
		{"arp", testnet.Packet{EtherType: testnet.EtherTypeARP, Payload: make([]byte, 28)}, nonIP},
		{"arp in vlan", testnet.Packet{EtherType: testnet.EtherTypeARP, VLANs: []uint16{10}, Payload: make([]byte, 28)}, nonIP},
		{"lldp", testnet.Packet{EtherType: 0x88cc, Payload: make([]byte, 46)}, nonIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.tb = t
			mail, all := mailBanned4, allBanned4
			if tt.pkt.Src.Is6() {
				mail, all = mailBanned6, allBanned6
			}
			for _, src := range []struct {
				name string
				addr netip.Addr
			}{{"clean source", tt.pkt.Src}, {"mail-scope banned source", mail}, {"all-scope banned source", all}} {
				p := tt.pkt
				if p.Src.IsValid() {
					p.Src = src.addr
				}
				action, moved := xdpPass, maps.Counters{Passed: 1}
				switch tt.read {
				case nonIP:
					moved.NonIP = 1
				case noSource:
					moved.Malformed = 1
				case sourceOnly:
					moved.Malformed = 1
					if src.addr == all {
						action, moved = xdpDrop, maps.Counters{DroppedBan: 1, Malformed: 1}
					}
				case noPorts:
					if src.addr == all {
						action, moved = xdpDrop, maps.Counters{DroppedBan: 1}
					}
				case ports:
					moved.SynMX = 1
					if src.addr != tt.pkt.Src {
						action, moved = xdpDrop, maps.Counters{DroppedBan: 1}
					}
				}
				d.expect(src.name, p.Bytes(), action, moved)
			}
		})
	}
}

// Every prefix of a SYN frame: the program must never drop a non-banned
// source for being short, must count every cut as malformed, and may drop an
// all-scope banned source once its address is in the frame.
func TestTruncatedSYNNeverDropsAnInnocentSource(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	d.ban(maps.Ban{Prefix: host(allBanned4), Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: host(allBanned6), Scope: maps.ScopeAll})
	d.ban(maps.Ban{Prefix: host(mailBanned4), Scope: maps.ScopeMail})
	d.ban(maps.Ban{Prefix: host(mailBanned6), Scope: maps.ScopeMail})

	tests := []struct {
		name     string
		vlans    []uint16
		v6       bool
		srcEnd   int // the source address is complete from this length on
		ipHdrEnd int // the network header is complete from this length on
	}{
		{name: "ipv4", srcEnd: 14 + 16, ipHdrEnd: 14 + 20},
		{name: "ipv4 in vlan", vlans: []uint16{7}, srcEnd: 18 + 16, ipHdrEnd: 18 + 20},
		{name: "ipv4 in qinq", vlans: []uint16{7, 8}, srcEnd: 22 + 16, ipHdrEnd: 22 + 20},
		{name: "ipv6", v6: true, srcEnd: 14 + 24, ipHdrEnd: 14 + 40},
		{name: "ipv6 in vlan", vlans: []uint16{7}, v6: true, srcEnd: 18 + 24, ipHdrEnd: 18 + 40},
		{name: "ipv6 in qinq", vlans: []uint16{7, 8}, v6: true, srcEnd: 22 + 24, ipHdrEnd: 22 + 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.tb = t
			clean, mail, all := clean4, mailBanned4, allBanned4
			if tt.v6 {
				clean, mail, all = clean6, mailBanned6, allBanned6
			}
			frame := func(src netip.Addr) []byte {
				p := testnet.SYN(src, dstFor(src), 25)
				p.VLANs = tt.vlans
				return p.Bytes()
			}
			full := len(frame(clean))
			for n := 0; n <= full; n++ {
				if n < 14 {
					// BPF_PROG_TEST_RUN refuses frames shorter than an
					// Ethernet header, and no driver hands XDP one.
					if _, err := d.Program().Run(&ebpf.RunOptions{Data: frame(clean)[:n]}); err == nil {
						t.Errorf("length %d: the kernel ran the program on a frame shorter than an Ethernet header", n)
					}
					continue
				}
				cut := maps.Counters{}
				if n < full {
					cut.Malformed = 1
				}
				whole := n == full

				want := cut
				want.Passed = 1
				if whole {
					want.SynMX = 1
				}
				d.expect(lengthName("clean", n), frame(clean)[:n], xdpPass, want)

				want = cut
				wantAction := xdpPass
				if whole {
					wantAction, want.DroppedBan = xdpDrop, 1
				} else {
					want.Passed = 1
				}
				d.expect(lengthName("mail-scope banned", n), frame(mail)[:n], wantAction, want)

				action, moved := d.verdict(frame(all)[:n])
				switch {
				case n < tt.srcEnd && action != xdpPass:
					t.Errorf("length %d: all-scope banned source dropped before its address is in the frame", n)
				case n >= tt.ipHdrEnd && action != xdpDrop:
					t.Errorf("length %d: all-scope banned source passed with a complete network header", n)
				}
				if moved.Malformed != cut.Malformed {
					t.Errorf("length %d: all-scope banned: malformed moved by %d, want %d", n, moved.Malformed, cut.Malformed)
				}
				if verdicts(moved) != 1 || (action == xdpDrop) != (moved.DroppedBan == 1) {
					t.Errorf("length %d: all-scope banned: action %s but counters moved %+v", n, actionName(action), moved)
				}
			}
		})
	}
}

func lengthName(what string, n int) string {
	return what + " cut to " + strconv.Itoa(n) + " bytes"
}

// verdicts is how many verdict counters moved; every packet moves one.
func verdicts(c maps.Counters) uint64 {
	return c.Passed + c.Allowlisted + c.DroppedBan + c.DroppedRate + c.DroppedGeo
}

// Only a SYN (without ACK) to a protected port spends a token.
func TestOnlySYNSpendsTokens(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.rateLimit(maps.ClassMX, 1, 1) // one token, refilled once a minute

	tests := []struct {
		name   string
		flags  testnet.TCPFlags
		spends bool
	}{
		{"syn", testnet.FlagSYN, true},
		{"syn-ack", testnet.FlagSYN | testnet.FlagACK, false},
		{"ack", testnet.FlagACK, false},
		{"psh-ack", testnet.FlagPSH | testnet.FlagACK, false},
		{"rst", testnet.FlagRST, false},
		{"rst-ack", testnet.FlagRST | testnet.FlagACK, false},
		{"fin-ack", testnet.FlagFIN | testnet.FlagACK, false},
		{"syn with ecn bits", testnet.FlagSYN | testnet.FlagECE | testnet.FlagCWR, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.tb = t
			src := netip.AddrFrom4([4]byte{198, 18, 2, byte(10 + i)})
			p := testnet.SYN(src, dst4, 25)
			p.Flags = tt.flags
			want := maps.Counters{Passed: 1}
			if tt.spends {
				want.SynMX = 1
			}
			d.expect("first", p.Bytes(), xdpPass, want)
			tokens := d.explain(src, 25).Tokens
			if tt.spends {
				if tokens != 0 {
					t.Errorf("tokens after one %s: %d, want 0", tt.name, tokens)
				}
				d.expect("second", p.Bytes(), xdpDrop, maps.Counters{DroppedRate: 1, SynMX: 1})
				return
			}
			if tokens != 1 {
				t.Errorf("tokens after one %s: %d, want 1", tt.name, tokens)
			}
			for range 5 {
				d.expect("again", p.Bytes(), xdpPass, maps.Counters{Passed: 1})
			}
			d.expect("a syn after them", syn(src, 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
		})
	}
}

func TestEachPortClassIsProtectedAsConfigured(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.rateLimit(maps.ClassMX, 1, 1)
	d.rateLimit(maps.ClassAuth, 1, 1)

	tests := []struct {
		port  uint16
		class maps.Class
	}{
		{25, maps.ClassMX},
		{465, maps.ClassAuth},
		{587, maps.ClassAuth},
		{110, maps.ClassAuth},
		{995, maps.ClassAuth},
		{143, maps.ClassAuth},
		{993, maps.ClassAuth},
		{4190, maps.ClassAuth},
		{80, maps.ClassNone},
		{2525, maps.ClassNone},
		{22, maps.ClassNone},
	}
	for i, tt := range tests {
		t.Run(strconv.Itoa(int(tt.port)), func(t *testing.T) {
			d.tb = t
			src := netip.AddrFrom4([4]byte{198, 18, 3, byte(10 + i)})
			mailBanned := netip.AddrFrom4([4]byte{198, 18, 4, byte(10 + i)})
			d.ban(maps.Ban{Prefix: host(mailBanned), Scope: maps.ScopeMail})

			if got := d.explain(src, tt.port).Class; got != tt.class {
				t.Errorf("explained class %s, want %s", got, tt.class)
			}
			first := maps.Counters{Passed: 1}
			switch tt.class {
			case maps.ClassMX:
				first.SynMX = 1
			case maps.ClassAuth:
				first.SynAuth = 1
			}
			d.expect("first syn", syn(src, tt.port), xdpPass, first)
			second, secondAction := first, xdpPass
			if tt.class != maps.ClassNone {
				second.Passed, second.DroppedRate, secondAction = 0, 1, xdpDrop
			}
			d.expect("second syn over a burst of one", syn(src, tt.port), secondAction, second)

			if tt.class == maps.ClassNone {
				d.expect("mail-scope banned source", syn(mailBanned, tt.port), xdpPass, maps.Counters{Passed: 1})
			} else {
				d.expect("mail-scope banned source", syn(mailBanned, tt.port), xdpDrop, maps.Counters{DroppedBan: 1})
			}
		})
	}
}

func TestPortClassesCanBeChanged(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	src := addr("198.18.3.200")
	d.ban(maps.Ban{Prefix: host(src), Scope: maps.ScopeMail})
	d.expect("2525 unprotected", syn(src, 2525), xdpPass, maps.Counters{Passed: 1})
	if err := d.Maps.SetPortClass(2525, maps.ClassAuth); err != nil {
		t.Fatal(err)
	}
	d.expect("2525 made auth", syn(src, 2525), xdpDrop, maps.Counters{DroppedBan: 1})
	if err := d.Maps.SetPortClass(25, maps.ClassNone); err != nil {
		t.Fatal(err)
	}
	d.expect("25 unprotected", syn(src, 25), xdpPass, maps.Counters{Passed: 1})
}

func TestBanAppliesOnlyBetweenItsStartAndExpiry(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	now := time.Now()
	tests := []struct {
		name            string
		starts, expires time.Time
		drops           bool
	}{
		{"permanent", time.Time{}, time.Time{}, true},
		{"active until tomorrow", time.Time{}, now.Add(24 * time.Hour), true},
		{"started an hour ago, active", now.Add(-time.Hour), now.Add(time.Hour), true},
		{"started years before boot, active", now.Add(-24 * 365 * 10 * time.Hour), time.Time{}, true},
		{"expired a second ago", time.Time{}, now.Add(-time.Second), false},
		{"expired years before boot", now.Add(-24 * 365 * 11 * time.Hour), now.Add(-24 * 365 * 10 * time.Hour), false},
		{"starts in a minute", now.Add(time.Minute), time.Time{}, false},
		{"starts in a minute, expires in an hour", now.Add(time.Minute), now.Add(time.Hour), false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.tb = t
			for _, scope := range []maps.Scope{maps.ScopeAll, maps.ScopeMail} {
				src := netip.AddrFrom4([4]byte{198, 18, 5 + byte(scope), byte(10 + i)})
				d.ban(maps.Ban{Prefix: host(src), Scope: scope, Starts: tt.starts, Expires: tt.expires})
				if tt.drops {
					d.expect(scope.String(), syn(src, 25), xdpDrop, maps.Counters{DroppedBan: 1})
				} else {
					d.expect(scope.String(), syn(src, 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
				}
				// The same for a prefix ban around the address.
				src6 := netip.AddrFrom16([16]byte{0xfd, 0, 5, byte(scope), 15: byte(10 + i)})
				d.ban(maps.Ban{Prefix: netip.PrefixFrom(src6, 48), Scope: scope, Starts: tt.starts, Expires: tt.expires})
				if tt.drops {
					d.expect(scope.String()+" prefix", syn(src6, 25), xdpDrop, maps.Counters{DroppedBan: 1})
				} else {
					d.expect(scope.String()+" prefix", syn(src6, 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
				}
			}
		})
	}
}

func TestBanStopsDroppingWhenItExpires(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	src := addr("198.18.8.1")
	expires := time.Now().Add(1500 * time.Millisecond)
	d.ban(maps.Ban{Prefix: host(src), Scope: maps.ScopeAll, Expires: expires})
	if got := d.run(syn(src, 25)); got != xdpDrop {
		t.Fatalf("before expiry: %s, want drop", actionName(got))
	}
	var passedAt time.Time
	_, ok := until(t, 5*time.Second, 20*time.Millisecond, func() bool {
		if d.run(syn(src, 25)) == xdpPass {
			passedAt = time.Now()
			return true
		}
		return false
	})
	if !ok {
		t.Fatal("ban still drops 3.5 s after it expired")
	}
	// The boot-clock conversion is exact to well under a millisecond; allow
	// some slack for the read of the two clocks.
	if early := expires.Sub(passedAt); early > 20*time.Millisecond {
		t.Errorf("ban stopped dropping %v before it expired", early)
	}
}

func TestBanScope(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.noRateLimits()
	tests := []struct {
		name  string
		scope maps.Scope
		pkt   func(src netip.Addr) testnet.Packet
		drops bool
	}{
		{"mail scope, syn to 25", maps.ScopeMail, func(s netip.Addr) testnet.Packet { return testnet.SYN(s, dstFor(s), 25) }, true},
		{"mail scope, ack to 993", maps.ScopeMail, func(s netip.Addr) testnet.Packet {
			p := testnet.SYN(s, dstFor(s), 993)
			p.Flags = testnet.FlagACK
			return p
		}, true},
		{"mail scope, syn to 80", maps.ScopeMail, func(s netip.Addr) testnet.Packet { return testnet.SYN(s, dstFor(s), 80) }, false},
		{"mail scope, udp to 25", maps.ScopeMail, func(s netip.Addr) testnet.Packet {
			p := testnet.SYN(s, dstFor(s), 25)
			p.Proto = testnet.ProtoUDP
			return p
		}, false},
		{"all scope, syn to 25", maps.ScopeAll, func(s netip.Addr) testnet.Packet { return testnet.SYN(s, dstFor(s), 25) }, true},
		{"all scope, syn to 80", maps.ScopeAll, func(s netip.Addr) testnet.Packet { return testnet.SYN(s, dstFor(s), 80) }, true},
		{"all scope, udp to 53", maps.ScopeAll, func(s netip.Addr) testnet.Packet {
			p := testnet.SYN(s, dstFor(s), 53)
			p.Proto = testnet.ProtoUDP
			return p
		}, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.tb = t
			for _, src := range []netip.Addr{
				netip.AddrFrom4([4]byte{198, 18, 9, byte(10 + i)}),
				netip.AddrFrom16([16]byte{0xfd, 0, 9, 15: byte(10 + i)}),
			} {
				d.ban(maps.Ban{Prefix: host(src), Scope: tt.scope})
				want := xdpPass
				if tt.drops {
					want = xdpDrop
				}
				if got := d.run(tt.pkt(src).Bytes()); got != want {
					t.Errorf("%s: %s, want %s", src, actionName(got), actionName(want))
				}
			}
		})
	}
}
