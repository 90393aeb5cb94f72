package testnet

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	src4 = netip.MustParseAddr("198.18.0.1")
	dst4 = netip.MustParseAddr("198.18.0.2")
	src6 = netip.MustParseAddr("fd00:18::1")
	dst6 = netip.MustParseAddr("fd00:18::2")
)

func TestPacketBytesDecode(t *testing.T) {
	tcpOpts := []byte{2, 4, 0x05, 0xb4, 1, 3, 3, 7} // MSS 1460, NOP, window scale 7
	tests := []struct {
		name    string
		p       Packet
		wantLen int   // whole frame
		wantExt []int // sizes of the IPv6 extension headers, in order
	}{
		{name: "IPv4 SYN", p: SYN(src4, dst4, 25), wantLen: 14 + 20 + 20},
		{name: "IPv6 SYN", p: SYN(src6, dst6, 587), wantLen: 14 + 40 + 20},
		{name: "IPv4 TCP with options and payload",
			p:       Packet{Src: src4, Dst: dst4, SrcPort: 1234, DstPort: 993, Flags: FlagPSH | FlagACK, TCPOptions: tcpOpts[:7], Payload: []byte("hello")},
			wantLen: 14 + 20 + 28 + 5},
		{name: "IPv6 TCP with every flag",
			p:       Packet{Src: src6, Dst: dst6, SrcPort: 1, DstPort: 65535, Flags: 0xff, TCPOptions: tcpOpts, Payload: []byte("x")},
			wantLen: 14 + 40 + 28 + 1},
		{name: "one VLAN tag", p: Packet{VLANs: []uint16{100}, Src: src4, Dst: dst4, SrcPort: 5, DstPort: 25, Flags: FlagSYN},
			wantLen: 18 + 20 + 20},
		{name: "QinQ", p: Packet{VLANs: []uint16{4095, 1}, Src: src6, Dst: dst6, SrcPort: 5, DstPort: 25, Flags: FlagSYN},
			wantLen: 22 + 40 + 20},
		{name: "IPv4 options padded", p: Packet{Src: src4, Dst: dst4, DstPort: 25, IPv4Options: []byte{0x94, 4, 0, 0, 1}},
			wantLen: 14 + 28 + 20},
		{name: "IPv4 options of 40 bytes", p: Packet{Src: src4, Dst: dst4, DstPort: 25, IPv4Options: bytes.Repeat([]byte{1}, 40)},
			wantLen: 14 + 60 + 20},
		{name: "UDP over IPv4 with an odd payload", p: Packet{Src: src4, Dst: dst4, Proto: ProtoUDP, SrcPort: 5300, DstPort: 5301, Payload: []byte("abc")},
			wantLen: 14 + 20 + 8 + 3},
		{name: "UDP over IPv6", p: Packet{Src: src6, Dst: dst6, Proto: ProtoUDP, SrcPort: 5300, DstPort: 5301, Payload: []byte("abcd")},
			wantLen: 14 + 40 + 8 + 4},
		{name: "ICMP echo", p: Packet{Src: src4, Dst: dst4, Proto: ProtoICMP, SrcPort: 7, DstPort: 9, Payload: []byte("ping")},
			wantLen: 14 + 20 + 8 + 4},
		{name: "ICMPv6 echo", p: Packet{Src: src6, Dst: dst6, Proto: ProtoICMPv6, SrcPort: 7, DstPort: 9, Payload: []byte("ping")},
			wantLen: 14 + 40 + 8 + 4},
		{name: "other protocol carries payload only", p: Packet{Src: src4, Dst: dst4, Proto: 253, Payload: []byte{1, 2, 3}},
			wantLen: 14 + 20 + 3},
		{name: "hop-by-hop", p: Packet{Src: src6, Dst: dst6, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtHopByHop}}},
			wantLen: 14 + 40 + 8 + 20, wantExt: []int{8}},
		{name: "hop-by-hop long", p: Packet{Src: src6, Dst: dst6, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtHopByHop, Len: 300}}},
			wantLen: 14 + 40 + 304 + 20, wantExt: []int{304}},
		{name: "hop-by-hop longest", p: Packet{Src: src6, Dst: dst6, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtHopByHop, Len: 2046}}},
			wantLen: 14 + 40 + 2048 + 20, wantExt: []int{2048}},
		{name: "destination options", p: Packet{Src: src6, Dst: dst6, Proto: ProtoUDP, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtDestOptions, Len: 7}}},
			wantLen: 14 + 40 + 16 + 8, wantExt: []int{16}},
		{name: "routing", p: Packet{Src: src6, Dst: dst6, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtRouting}}},
			wantLen: 14 + 40 + 8 + 20, wantExt: []int{8}},
		{name: "routing with two addresses", p: Packet{Src: src6, Dst: dst6, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtRouting, Len: 27}}},
			wantLen: 14 + 40 + 40 + 20, wantExt: []int{40}},
		{name: "atomic fragment", p: Packet{Src: src6, Dst: dst6, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtFragment}}},
			wantLen: 14 + 40 + 8 + 20, wantExt: []int{8}},
		{name: "AH", p: Packet{Src: src6, Dst: dst6, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtAH}}},
			wantLen: 14 + 40 + 16 + 20, wantExt: []int{16}},
		{name: "AH with a longer ICV", p: Packet{Src: src6, Dst: dst6, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtAH, Len: 20}}},
			wantLen: 14 + 40 + 24 + 20, wantExt: []int{24}},
		{name: "other extension header (mobility) in RFC 6564 layout", p: Packet{Src: src6, Dst: dst6, DstPort: 25, IPv6Ext: []ExtHeader{{Type: 135, Len: 8}}},
			wantLen: 14 + 40 + 16 + 20, wantExt: []int{16}},
		{name: "every extension header chained", p: Packet{Src: src6, Dst: dst6, Proto: ProtoICMPv6, IPv6Ext: []ExtHeader{
			{Type: ExtHopByHop, Len: 10}, {Type: ExtDestOptions}, {Type: ExtRouting, Len: 22},
			{Type: ExtFragment, Frag: &Frag{ID: 0xdeadbeef}}, {Type: ExtAH}, {Type: ExtDestOptions, Len: 60},
		}}, wantLen: 14 + 40 + 16 + 8 + 24 + 8 + 16 + 64 + 8, wantExt: []int{16, 8, 24, 8, 16, 64}},
		{name: "IPv4 first fragment", p: Packet{Src: src4, Dst: dst4, DstPort: 25, IPv4Frag: &Frag{More: true, ID: 0xbeef}, Payload: []byte("12345678")},
			wantLen: 14 + 20 + 20 + 8},
		{name: "IPv4 later fragment", p: Packet{Src: src4, Dst: dst4, DstPort: 25, IPv4Frag: &Frag{Offset: 8191, ID: 1}, Payload: []byte("tail")},
			wantLen: 14 + 20 + 4},
		{name: "IPv6 first fragment", p: Packet{Src: src6, Dst: dst6, Proto: ProtoUDP, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtFragment, Frag: &Frag{More: true, ID: 7}}}, Payload: []byte("12345678")},
			wantLen: 14 + 40 + 8 + 8 + 8, wantExt: []int{8}},
		{name: "IPv6 later fragment", p: Packet{Src: src6, Dst: dst6, DstPort: 25, IPv6Ext: []ExtHeader{{Type: ExtHopByHop}, {Type: ExtFragment, Frag: &Frag{Offset: 3, More: true, ID: 0xffffffff}}}, Payload: []byte("middle")},
			wantLen: 14 + 40 + 8 + 8 + 6, wantExt: []int{8, 8}},
		{name: "explicit MACs", p: Packet{SrcMAC: net.HardwareAddr{0xaa, 1, 2, 3, 4, 5}, DstMAC: net.HardwareAddr{0xbb, 6, 7, 8, 9, 10}, Src: src4, Dst: dst4, DstPort: 25},
			wantLen: 14 + 20 + 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.p.Bytes()
			if len(b) != tt.wantLen {
				t.Fatalf("frame is %d bytes, want %d\n%x", len(b), tt.wantLen, b)
			}
			checkFrame(t, tt.p, b, tt.wantExt)
		})
	}
}

// checkFrame decodes b with gopacket and checks every field against p.
func checkFrame(t *testing.T, p Packet, b []byte, wantExt []int) {
	t.Helper()
	proto := p.Proto
	if proto == 0 {
		proto = ProtoTCP
	}
	pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	// gopacket reports protocols and headers it does not know as an error.
	known := slices.Contains([]uint8{ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6}, proto)
	for _, e := range p.IPv6Ext {
		known = known && slices.Contains([]uint8{ExtHopByHop, ExtRouting, ExtFragment, ExtAH, ExtDestOptions}, e.Type)
	}
	if e := pkt.ErrorLayer(); e != nil && known {
		t.Fatalf("decode: %v", e.Error())
	}
	eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	wantSrc, wantDst := macOr(p.SrcMAC, "02:00:00:00:00:01"), macOr(p.DstMAC, "02:00:00:00:00:02")
	if !bytes.Equal(eth.SrcMAC, wantSrc) || !bytes.Equal(eth.DstMAC, wantDst) {
		t.Errorf("MACs %s > %s, want %s > %s", eth.SrcMAC, eth.DstMAC, wantSrc, wantDst)
	}

	// The type fields in order: the Ethernet header's, then each tag's.
	types := []layers.EthernetType{eth.EthernetType}
	var vids []uint16
	for _, l := range pkt.Layers() {
		if q, ok := l.(*layers.Dot1Q); ok {
			types = append(types, q.Type)
			vids = append(vids, q.VLANIdentifier)
			if q.Priority != 0 || q.DropEligible {
				t.Errorf("VLAN %d has priority %d, DEI %v", q.VLANIdentifier, q.Priority, q.DropEligible)
			}
		}
	}
	var wantTypes []layers.EthernetType
	for i := range p.VLANs {
		if i == len(p.VLANs)-1 {
			wantTypes = append(wantTypes, layers.EthernetTypeDot1Q)
		} else {
			wantTypes = append(wantTypes, layers.EthernetTypeQinQ)
		}
	}
	ipType := layers.EthernetTypeIPv4
	if p.Src.Is6() {
		ipType = layers.EthernetTypeIPv6
	}
	wantTypes = append(wantTypes, ipType)
	if !slices.Equal(types, wantTypes) || !slices.Equal(vids, p.VLANs) {
		t.Errorf("type fields %v with VLANs %v, want %v with %v", types, vids, wantTypes, p.VLANs)
	}
	l3 := b[14+4*len(p.VLANs):]

	var l4 []byte
	laterFragment := false
	var pseudo []byte
	if p.Src.Is4() {
		ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		wantOpts := make([]byte, (len(p.IPv4Options)+3)/4*4)
		copy(wantOpts, p.IPv4Options)
		if ip.Version != 4 || int(ip.IHL) != 5+len(wantOpts)/4 || ip.TOS != 0 || int(ip.Length) != len(l3) || ip.TTL != 64 ||
			ip.Protocol != layers.IPProtocol(proto) || ip.SrcIP.String() != p.Src.String() || ip.DstIP.String() != p.Dst.String() {
			t.Errorf("IPv4 header %+v does not match %+v", ip, p)
		}
		if got := l3[20 : 20+len(wantOpts)]; !bytes.Equal(got, wantOpts) {
			t.Errorf("IPv4 options %x, want %x", got, wantOpts)
		}
		if s := onesSum(l3[:ip.IHL*4]); s != 0xffff {
			t.Errorf("IPv4 header checksum %#04x is wrong: header sums to %#04x", ip.Checksum, s)
		}
		var wantID, wantOff uint16
		var wantFlags layers.IPv4Flag
		if f := p.IPv4Frag; f != nil {
			wantID, wantOff = uint16(f.ID), f.Offset
			if f.More {
				wantFlags = layers.IPv4MoreFragments
			}
			laterFragment = f.Offset > 0
		}
		if ip.Id != wantID || ip.FragOffset != wantOff || ip.Flags != wantFlags {
			t.Errorf("IPv4 id %d offset %d flags %v, want %d %d %v", ip.Id, ip.FragOffset, ip.Flags, wantID, wantOff, wantFlags)
		}
		l4 = ip.Payload
		pseudo = append(append(p.Src.AsSlice(), p.Dst.AsSlice()...), 0, proto, byte(len(l4)>>8), byte(len(l4)))
	} else {
		ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		if ip.Version != 6 || ip.TrafficClass != 0 || ip.FlowLabel != 0 || int(ip.Length) != len(l3)-40 || ip.HopLimit != 64 ||
			ip.SrcIP.String() != p.Src.String() || ip.DstIP.String() != p.Dst.String() {
			t.Errorf("IPv6 header %+v does not match %+v", ip, p)
		}
		// Walk the chain by hand: gopacket stops decoding at a fragment header.
		next, rest := uint8(ip.NextHeader), l3[40:]
		var sizes []int
		for i, e := range p.IPv6Ext {
			if next != e.Type {
				t.Fatalf("extension %d: next header %d, want %d", i, next, e.Type)
			}
			size := checkExt(t, e, rest)
			sizes = append(sizes, size)
			if e.Frag != nil && e.Frag.Offset > 0 {
				laterFragment = true
			}
			next, rest = rest[0], rest[size:]
		}
		if next != proto {
			t.Errorf("last next header %d, want %d", next, proto)
		}
		if !slices.Equal(sizes, wantExt) {
			t.Errorf("extension header sizes %v, want %v", sizes, wantExt)
		}
		l4 = rest
		pseudo = append(append(p.Src.AsSlice(), p.Dst.AsSlice()...), 0, 0, byte(len(l4)>>8), byte(len(l4)), 0, 0, 0, proto)
	}

	if laterFragment {
		if !bytes.Equal(l4, p.Payload) {
			t.Errorf("later fragment carries %x, want the payload %x alone", l4, p.Payload)
		}
		return
	}
	checkL4(t, p, proto, l4, pseudo)
}

// checkExt checks one IPv6 extension header at the start of b and returns
// its size.
func checkExt(t *testing.T, e ExtHeader, b []byte) int {
	t.Helper()
	df := gopacket.NilDecodeFeedback
	switch e.Type {
	case ExtHopByHop, ExtDestOptions:
		var h layers.IPv6HopByHop // the two share one layout
		if err := h.DecodeFromBytes(b, df); err != nil {
			t.Fatalf("hop-by-hop/destination options: %v", err)
		}
		// Every byte is a skippable option or padding, and no run of
		// padding is longer than Linux accepts.
		covered, pad := 2, 0
		for _, o := range h.Options {
			covered += o.ActualLength
			switch o.OptionType {
			case 0, 1:
				pad += o.ActualLength
			case 0x1e:
				pad = 0
			default:
				t.Errorf("option type %#x", o.OptionType)
			}
			if pad > 7 {
				t.Errorf("%d bytes of padding in a row", pad)
			}
		}
		if covered != h.ActualLength || h.ActualLength < 2+e.Len || h.ActualLength >= 2+e.Len+8 || h.ActualLength%8 != 0 {
			t.Errorf("options cover %d of %d bytes for Len %d", covered, h.ActualLength, e.Len)
		}
		return h.ActualLength
	case ExtRouting:
		p := gopacket.NewPacket(b, layers.LayerTypeIPv6Routing, gopacket.Default)
		h, ok := p.Layer(layers.LayerTypeIPv6Routing).(*layers.IPv6Routing)
		if !ok {
			t.Fatalf("routing header does not decode: %v", p.ErrorLayer())
		}
		n := len(h.SourceRoutingIPs)
		if h.RoutingType != 0 || h.SegmentsLeft != 0 || h.ActualLength != 8+16*n || 2+e.Len > h.ActualLength || (n > 0 && 2+e.Len <= h.ActualLength-16) {
			t.Errorf("routing type %d, %d segments left, %d addresses in %d bytes, for Len %d", h.RoutingType, h.SegmentsLeft, n, h.ActualLength, e.Len)
		}
		return h.ActualLength
	case ExtFragment:
		var h layers.IPv6Fragment
		if err := h.DecodeFromBytes(b, df); err != nil {
			t.Fatalf("fragment header: %v", err)
		}
		want := Frag{}
		if e.Frag != nil {
			want = *e.Frag
		}
		if h.FragmentOffset != want.Offset || h.MoreFragments != want.More || h.Identification != want.ID || h.Reserved1 != 0 || h.Reserved2 != 0 {
			t.Errorf("fragment header %+v, want %+v", h, want)
		}
		return 8
	case ExtAH:
		var h layers.IPSecAH
		if err := h.DecodeFromBytes(b, df); err != nil {
			t.Fatalf("AH: %v", err)
		}
		if h.SPI != 256 || h.Seq != 1 || h.ActualLength%8 != 0 || h.ActualLength < 2+max(e.Len, 10) || h.ActualLength >= 2+max(e.Len, 10)+8 {
			t.Errorf("AH SPI %d seq %d, %d bytes for Len %d", h.SPI, h.Seq, h.ActualLength, e.Len)
		}
		return h.ActualLength
	}
	// Any other type: next header, length in 8-byte units beyond the
	// first, zeros.
	size := (int(b[1]) + 1) * 8
	if size%8 != 0 || size < 2+e.Len || size >= 2+e.Len+8 || !bytes.Equal(b[2:size], make([]byte, size-2)) {
		t.Errorf("extension header %d: %x for Len %d", e.Type, b[:min(size, len(b))], e.Len)
	}
	return size
}

// checkL4 checks the transport header and payload in b.
func checkL4(t *testing.T, p Packet, proto uint8, b, pseudo []byte) {
	t.Helper()
	df := gopacket.NilDecodeFeedback
	var payload []byte
	switch proto {
	case ProtoTCP:
		var h layers.TCP
		if err := h.DecodeFromBytes(b, df); err != nil {
			t.Fatalf("TCP: %v", err)
		}
		wantOpts := make([]byte, (len(p.TCPOptions)+3)/4*4)
		copy(wantOpts, p.TCPOptions)
		flags := map[TCPFlags]bool{FlagFIN: h.FIN, FlagSYN: h.SYN, FlagRST: h.RST, FlagPSH: h.PSH, FlagACK: h.ACK, FlagURG: h.URG, FlagECE: h.ECE, FlagCWR: h.CWR}
		for f, set := range flags {
			if set != (p.Flags&f != 0) {
				t.Errorf("TCP flag %#x is %v in %#x", f, set, p.Flags)
			}
		}
		if uint16(h.SrcPort) != p.SrcPort || uint16(h.DstPort) != p.DstPort || int(h.DataOffset) != 5+len(wantOpts)/4 || h.Window == 0 || h.Seq == 0 {
			t.Errorf("TCP header %+v does not match %+v", h, p)
		}
		if got := b[20 : 20+len(wantOpts)]; !bytes.Equal(got, wantOpts) {
			t.Errorf("TCP options %x, want %x", got, wantOpts)
		}
		payload = h.Payload
	case ProtoUDP:
		var h layers.UDP
		if err := h.DecodeFromBytes(b, df); err != nil {
			t.Fatalf("UDP: %v", err)
		}
		if uint16(h.SrcPort) != p.SrcPort || uint16(h.DstPort) != p.DstPort || int(h.Length) != len(b) || h.Checksum == 0 {
			t.Errorf("UDP header %+v does not match %+v", h, p)
		}
		payload = h.Payload
	case ProtoICMP:
		var h layers.ICMPv4
		if err := h.DecodeFromBytes(b, df); err != nil {
			t.Fatalf("ICMP: %v", err)
		}
		if h.TypeCode != layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0) || h.Id != p.SrcPort || h.Seq != p.DstPort {
			t.Errorf("ICMP header %+v does not match %+v", h, p)
		}
		payload = h.Payload
		pseudo = nil // ICMP for IPv4 sums the message alone
	case ProtoICMPv6:
		var h layers.ICMPv6
		if err := h.DecodeFromBytes(b, df); err != nil {
			t.Fatalf("ICMPv6: %v", err)
		}
		if h.TypeCode != layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0) ||
			binary.BigEndian.Uint16(b[4:]) != p.SrcPort || binary.BigEndian.Uint16(b[6:]) != p.DstPort {
			t.Errorf("ICMPv6 header %+v does not match %+v", h, p)
		}
		payload = b[8:]
	default:
		if !bytes.Equal(b, p.Payload) {
			t.Errorf("protocol %d carries %x, want the payload %x", proto, b, p.Payload)
		}
		return
	}
	if !bytes.Equal(payload, p.Payload) {
		t.Errorf("payload %x, want %x", payload, p.Payload)
	}
	if s := onesSum(append(pseudo, b...)); s != 0xffff {
		t.Errorf("protocol %d checksum is wrong: pseudo header and segment sum to %#04x", proto, s)
	}
}

func TestPacketNonIP(t *testing.T) {
	arp := bytes.Repeat([]byte{0xa5}, 28)
	tests := []struct {
		name string
		p    Packet
		want []byte // after the MACs
	}{
		{"ARP", Packet{EtherType: EtherTypeARP, Payload: arp}, append([]byte{0x08, 0x06}, arp...)},
		{"ARP in a VLAN", Packet{EtherType: EtherTypeARP, VLANs: []uint16{7}, Payload: arp}, append([]byte{0x81, 0, 0, 7, 0x08, 0x06}, arp...)},
		{"three tags", Packet{EtherType: 0x88b5, VLANs: []uint16{1, 2, 3}}, []byte{0x88, 0xa8, 0, 1, 0x88, 0xa8, 0, 2, 0x81, 0, 0, 3, 0x88, 0xb5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Bytes()[12:]; !bytes.Equal(got, tt.want) {
				t.Errorf("got %x, want %x", got, tt.want)
			}
		})
	}
}

func TestPacketEtherTypeOverride(t *testing.T) {
	// A frame that claims IPv6 but carries IPv4, for parser robustness tests.
	b := Packet{EtherType: EtherTypeIPv6, Src: src4, Dst: dst4, DstPort: 25}.Bytes()
	if got := binary.BigEndian.Uint16(b[12:]); got != EtherTypeIPv6 {
		t.Errorf("EtherType %#04x, want %#04x", got, EtherTypeIPv6)
	}
	if b[14] != 0x45 {
		t.Errorf("first IP byte %#02x, want an IPv4 header (0x45)", b[14])
	}
}

func TestPacketPanicsOnImpossibleInput(t *testing.T) {
	tests := []struct {
		name string
		p    Packet
	}{
		{"mixed families", Packet{Src: src4, Dst: dst6}},
		{"no Dst", Packet{Src: src4}},
		{"no Src and no EtherType", Packet{}},
		{"VLAN ID above 4095", Packet{VLANs: []uint16{4096}, Src: src4, Dst: dst4}},
		{"IPv4 options too long", Packet{Src: src4, Dst: dst4, IPv4Options: make([]byte, 41)}},
		{"TCP options too long", Packet{Src: src4, Dst: dst4, TCPOptions: make([]byte, 41)}},
		{"IPv4 fragment ID above 16 bits", Packet{Src: src4, Dst: dst4, IPv4Frag: &Frag{ID: 1 << 16}}},
		{"fragment offset above 13 bits", Packet{Src: src6, Dst: dst6, IPv6Ext: []ExtHeader{{Type: ExtFragment, Frag: &Frag{Offset: 8192}}}}},
		{"IPv6 extension on IPv4", Packet{Src: src4, Dst: dst4, IPv6Ext: []ExtHeader{{Type: ExtHopByHop}}}},
		{"IPv4 fragment on IPv6", Packet{Src: src6, Dst: dst6, IPv4Frag: &Frag{}}},
		{"Frag on a non-fragment header", Packet{Src: src6, Dst: dst6, IPv6Ext: []ExtHeader{{Type: ExtRouting, Frag: &Frag{}}}}},
		{"extension header too long", Packet{Src: src6, Dst: dst6, IPv6Ext: []ExtHeader{{Type: ExtDestOptions, Len: 2047}}}},
		{"negative Len", Packet{Src: src6, Dst: dst6, IPv6Ext: []ExtHeader{{Type: ExtHopByHop, Len: -1}}}},
		{"IPv4 packet over 65535 bytes", Packet{Src: src4, Dst: dst4, Proto: 253, Payload: make([]byte, 65516)}},
		{"short MAC", Packet{SrcMAC: net.HardwareAddr{1}, Src: src4, Dst: dst4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Bytes did not panic")
				}
			}()
			tt.p.Bytes()
		})
	}
	// The largest IPv4 packet still encodes.
	if n := len((Packet{Src: src4, Dst: dst4, Proto: 253, Payload: make([]byte, 65515)}).Bytes()); n != 14+65535 {
		t.Errorf("largest IPv4 packet is %d bytes, want %d", n, 14+65535)
	}
}

// onesSum is the ones' complement sum of b in 16-bit words, folded; a
// correct checksum makes it 0xffff. Written apart from the builder's code on
// purpose.
func onesSum(b []byte) uint16 {
	var s uint64
	for i := 0; i < len(b); i++ {
		if i%2 == 0 {
			s += uint64(b[i]) << 8
		} else {
			s += uint64(b[i])
		}
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

func macOr(m net.HardwareAddr, def string) net.HardwareAddr {
	if m != nil {
		return m
	}
	d, _ := net.ParseMAC(def)
	return d
}
