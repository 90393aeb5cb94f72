package testnet

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// TCPFlags are the flag bits of a TCP header.
type TCPFlags uint8

// The TCP flags. They are named Flag* because SYN is the function that
// builds a whole SYN packet.
const (
	FlagFIN TCPFlags = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

// IP protocol and IPv6 extension header numbers.
const (
	ProtoICMP      = 1
	ProtoTCP       = 6
	ProtoUDP       = 17
	ProtoICMPv6    = 58
	ExtHopByHop    = 0
	ExtRouting     = 43
	ExtFragment    = 44
	ExtAH          = 51
	ExtDestOptions = 60
)

// EtherType values.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86dd
	tpid8021Q     = 0x8100
	tpid8021AD    = 0x88a8
)

// Frag makes an IPv4 packet, or an IPv6 fragment header, a fragment.
type Frag struct {
	// Offset is the fragment's place in the datagram, in 8-byte units
	// (at most 8191). Above 0 the L4 header is not written: the packet
	// carries Payload only, as a later fragment does.
	Offset uint16
	// More is the more-fragments flag.
	More bool
	// ID identifies the datagram; IPv4 has room for 16 bits of it.
	ID uint32
}

// ExtHeader is one IPv6 extension header.
type ExtHeader struct {
	// Type is ExtHopByHop, ExtRouting, ExtFragment, ExtDestOptions, ExtAH,
	// or any other number, which gets the generic layout of RFC 6564.
	Type uint8
	// Len is how many bytes follow the next-header and length bytes before
	// padding; the header takes the smallest size its type allows that
	// holds them. The content is what a receiver skips: PadN and
	// experimental skippable options (0x1e) for hop-by-hop and destination
	// options (Linux drops runs of more than 7 padding bytes), a type 0
	// routing header with no segments left and all-zero addresses, an AH with
	// SPI 256, sequence 1 and a zero ICV. Len must be 0 for ExtFragment.
	Len int
	// Frag fills a fragment header; nil means offset 0, no more fragments,
	// ID 0 (an atomic fragment). Only for ExtFragment.
	Frag *Frag
}

// Packet describes an Ethernet frame for BPF_PROG_TEST_RUN or for sending
// on a veth. Bytes fills in every length and checksum.
type Packet struct {
	// SrcMAC and DstMAC default to 02:00:00:00:00:01 and
	// 02:00:00:00:00:02; set DstMAC to a veth's address to deliver a frame
	// to its stack.
	SrcMAC, DstMAC net.HardwareAddr
	// EtherType 0 is derived from Src (IPv4 or IPv6). Any other value is
	// written as given, also to make a frame lie about what it carries;
	// with an invalid Src the frame carries Payload only (e.g. ARP).
	EtherType uint16
	// VLANs are VLAN IDs, outer first. The innermost tag is 802.1Q
	// (0x8100), the outer ones 802.1ad (0x88a8): two tags are QinQ.
	VLANs []uint16
	// Src and Dst are both IPv4 or both IPv6.
	Src, Dst netip.Addr
	// Proto 0 is TCP. TCP, UDP, ICMP and ICMPv6 get a header (ICMP an echo
	// request with identifier SrcPort and sequence number DstPort); any
	// other protocol carries Payload directly.
	Proto            uint8
	SrcPort, DstPort uint16
	Flags            TCPFlags
	// IPv4Options are padded with zeros (end of list) to a multiple of 4;
	// at most 40 bytes.
	IPv4Options []byte
	// IPv4Frag makes an IPv4 packet a fragment.
	IPv4Frag *Frag
	// IPv6Ext are the IPv6 extension headers, in order.
	IPv6Ext []ExtHeader
	// TCPOptions are padded with zeros (end of option list) to a multiple
	// of 4; at most 40 bytes.
	TCPOptions []byte
	Payload    []byte
}

// SYN is a TCP SYN from src port 40000 to dst port dport.
func SYN(src, dst netip.Addr, dport uint16) Packet {
	return Packet{Src: src, Dst: dst, SrcPort: 40000, DstPort: dport, Flags: FlagSYN}
}

// Bytes encodes the frame with correct lengths (IPv4 total length and
// header length, IPv6 payload length and next-header chain, TCP data offset,
// UDP length) and checksums (IPv4 header; TCP, UDP and ICMPv6 over the
// pseudo header; ICMP). The L4 checksum covers what the packet carries,
// which for a first fragment is only part of the datagram. Bytes panics on
// a description that cannot be encoded, such as mixed address families or a
// VLAN ID above 4095: that is a bug in the test.
func (p Packet) Bytes() []byte {
	b := make([]byte, 0, 64+len(p.IPv4Options)+len(p.TCPOptions)+len(p.Payload))
	b = append(b, mac(p.DstMAC, 2)...)
	b = append(b, mac(p.SrcMAC, 1)...)
	for i, vid := range p.VLANs {
		if vid > 0xfff {
			panic(fmt.Sprintf("testnet: VLAN ID %d above 4095", vid))
		}
		tpid := uint16(tpid8021AD)
		if i == len(p.VLANs)-1 {
			tpid = tpid8021Q
		}
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, vid)
	}
	etherType := p.EtherType
	if etherType == 0 {
		switch {
		case p.Src.Is4():
			etherType = EtherTypeIPv4
		case p.Src.Is6():
			etherType = EtherTypeIPv6
		default:
			panic("testnet: EtherType 0 needs Src to derive it from")
		}
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	if !p.Src.IsValid() {
		return append(b, p.Payload...)
	}
	if p.Src.Is4() != p.Dst.Is4() || !p.Dst.IsValid() {
		panic(fmt.Sprintf("testnet: Src %s and Dst %s are not of one family", p.Src, p.Dst))
	}
	if p.Src.Is4() {
		return p.appendIPv4(b)
	}
	return p.appendIPv6(b)
}

func mac(m net.HardwareAddr, last byte) []byte {
	if m == nil {
		return []byte{0x02, 0, 0, 0, 0, last}
	}
	if len(m) != 6 {
		panic(fmt.Sprintf("testnet: MAC %s is not 6 bytes", m))
	}
	return m
}

func (p Packet) proto() uint8 {
	if p.Proto == 0 {
		return ProtoTCP
	}
	return p.Proto
}

func (p Packet) appendIPv4(b []byte) []byte {
	if len(p.IPv6Ext) > 0 {
		panic("testnet: IPv6 extension headers on an IPv4 packet")
	}
	opts := padTo(p.IPv4Options, 4, 40, "IPv4 options")
	var id uint32
	var fragField uint16
	l4 := true
	if f := p.IPv4Frag; f != nil {
		if f.ID > 0xffff {
			panic(fmt.Sprintf("testnet: IPv4 fragment ID %d above 65535", f.ID))
		}
		id, fragField, l4 = f.ID, fragOffset(f)|boolBit(f.More, 0x2000), f.Offset == 0
	}
	seg := p.segment(l4, pseudo4(p.Src, p.Dst, p.proto()))
	hdrLen := 20 + len(opts)
	h := make([]byte, hdrLen, hdrLen+len(seg))
	h[0] = 0x40 | byte(hdrLen/4)
	binary.BigEndian.PutUint16(h[2:], length16(hdrLen+len(seg), "IPv4 total length"))
	binary.BigEndian.PutUint16(h[4:], uint16(id))
	binary.BigEndian.PutUint16(h[6:], fragField)
	h[8] = 64
	h[9] = p.proto()
	copy(h[12:], p.Src.AsSlice())
	copy(h[16:], p.Dst.AsSlice())
	copy(h[20:], opts)
	binary.BigEndian.PutUint16(h[10:], checksum(0, h))
	return append(append(b, h...), seg...)
}

func (p Packet) appendIPv6(b []byte) []byte {
	if p.IPv4Frag != nil || len(p.IPv4Options) > 0 {
		panic("testnet: IPv4 fragment or options on an IPv6 packet")
	}
	var ext []byte
	l4 := true
	for i, e := range p.IPv6Ext {
		next := p.proto()
		if i+1 < len(p.IPv6Ext) {
			next = p.IPv6Ext[i+1].Type
		}
		ext = appendExt(ext, e, next)
		if e.Frag != nil && e.Frag.Offset > 0 {
			l4 = false
		}
	}
	next := p.proto()
	if len(p.IPv6Ext) > 0 {
		next = p.IPv6Ext[0].Type
	}
	seg := p.segment(l4, pseudo6(p.Src, p.Dst, p.proto()))
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], length16(len(ext)+len(seg), "IPv6 payload length"))
	h[6] = next
	h[7] = 64
	copy(h[8:], p.Src.AsSlice())
	copy(h[24:], p.Dst.AsSlice())
	return append(append(append(b, h...), ext...), seg...)
}

// appendExt appends one extension header whose next-header field is next.
func appendExt(b []byte, e ExtHeader, next uint8) []byte {
	if e.Len < 0 {
		panic(fmt.Sprintf("testnet: extension header %d with Len %d", e.Type, e.Len))
	}
	if e.Frag != nil && e.Type != ExtFragment {
		panic(fmt.Sprintf("testnet: Frag on extension header %d", e.Type))
	}
	switch e.Type {
	case ExtFragment:
		if e.Len != 0 {
			panic("testnet: a fragment header has no Len")
		}
		f := e.Frag
		if f == nil {
			f = &Frag{}
		}
		b = append(b, next, 0)
		b = binary.BigEndian.AppendUint16(b, fragOffset(f)<<3|boolBit(f.More, 1))
		return binary.BigEndian.AppendUint32(b, f.ID)
	case ExtRouting:
		// Type 0 with no segments left: every node skips it (RFC 8200
		// 4.4), and its addresses come in 16-byte units.
		size := 8
		if e.Len > 6 {
			size += roundUp(e.Len-6, 16)
		}
		h := extBody(next, size, e.Type)
		return append(b, h...)
	case ExtAH:
		// The length counts 4-byte units minus 2; in IPv6 the whole header
		// is a multiple of 8 (RFC 4302 2.2).
		size := roundUp(2+max(e.Len, 10), 8)
		if size > (0xff+2)*4 {
			panic(fmt.Sprintf("testnet: AH with Len %d too long", e.Len))
		}
		h := make([]byte, size)
		h[0], h[1] = next, byte(size/4-2)
		binary.BigEndian.PutUint32(h[4:], 256)
		binary.BigEndian.PutUint32(h[8:], 1)
		return append(b, h...)
	default:
		h := extBody(next, roundUp(2+e.Len, 8), e.Type)
		if e.Type == ExtHopByHop || e.Type == ExtDestOptions {
			fillOptions(h[2:])
		}
		return append(b, h...)
	}
}

// extBody is a zeroed header of size bytes with the next-header byte and
// the length byte in 8-byte units beyond the first unit.
func extBody(next uint8, size int, typ uint8) []byte {
	if size/8-1 > 0xff {
		panic(fmt.Sprintf("testnet: extension header %d of %d bytes too long", typ, size))
	}
	h := make([]byte, size)
	h[0], h[1] = next, byte(size/8-1)
	return h
}

// fillOptions fills a hop-by-hop or destination options area with options
// a receiver skips. Runs of padding stay under 8 bytes because Linux drops
// longer ones (RFC 4942 2.1.9.5); longer areas use the experimental option
// 0x1e, whose top bits tell receivers to skip it (RFC 4727).
func fillOptions(b []byte) {
	const experimental = 0x1e
	for len(b) > 7 {
		n := min(len(b), 2+0xff)
		if len(b)-n == 1 {
			n-- // leave two bytes, a PadN, rather than one
		}
		b[0], b[1] = experimental, byte(n-2)
		b = b[n:]
	}
	switch len(b) {
	case 0:
	case 1:
		b[0] = 0 // Pad1
	default:
		b[0], b[1] = 1, byte(len(b)-2) // PadN
	}
}

// segment is the L4 header and payload, or the payload alone when the
// packet is a later fragment. sum is the pseudo header's partial checksum
// without the length.
func (p Packet) segment(l4 bool, sum uint32) []byte {
	if !l4 {
		return p.Payload
	}
	var h []byte
	ck := -1 // offset of the checksum in h, if the protocol has one
	pseudo := true
	switch p.proto() {
	case ProtoTCP:
		opts := padTo(p.TCPOptions, 4, 40, "TCP options")
		h = make([]byte, 20+len(opts))
		binary.BigEndian.PutUint16(h[0:], p.SrcPort)
		binary.BigEndian.PutUint16(h[2:], p.DstPort)
		binary.BigEndian.PutUint32(h[4:], 1)
		if p.Flags&FlagACK != 0 {
			binary.BigEndian.PutUint32(h[8:], 1)
		}
		h[12] = byte(len(h)/4) << 4
		h[13] = byte(p.Flags)
		binary.BigEndian.PutUint16(h[14:], 64240)
		copy(h[20:], opts)
		ck = 16
	case ProtoUDP:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[0:], p.SrcPort)
		binary.BigEndian.PutUint16(h[2:], p.DstPort)
		binary.BigEndian.PutUint16(h[4:], length16(8+len(p.Payload), "UDP length"))
		ck = 6
	case ProtoICMP, ProtoICMPv6:
		h = make([]byte, 8)
		h[0] = 8 // echo request
		pseudo = p.proto() == ProtoICMPv6
		if pseudo {
			h[0] = 128
		}
		binary.BigEndian.PutUint16(h[4:], p.SrcPort)
		binary.BigEndian.PutUint16(h[6:], p.DstPort)
		ck = 2
	default:
		return p.Payload
	}
	seg := append(h, p.Payload...)
	if !pseudo {
		sum = 0
	} else {
		sum += uint32(len(seg))
	}
	c := checksum(sum, seg)
	if c == 0 && p.proto() == ProtoUDP {
		c = 0xffff // 0 means "no checksum" in UDP
	}
	binary.BigEndian.PutUint16(seg[ck:], c)
	return seg
}

// pseudo4 and pseudo6 sum the pseudo headers (RFC 793, RFC 8200 8.1)
// except for the upper-layer length, which segment adds.
func pseudo4(src, dst netip.Addr, proto uint8) uint32 {
	s, d := src.As4(), dst.As4()
	return sum16(0, s[:]) + sum16(0, d[:]) + uint32(proto)
}

func pseudo6(src, dst netip.Addr, proto uint8) uint32 {
	s, d := src.As16(), dst.As16()
	return sum16(0, s[:]) + sum16(0, d[:]) + uint32(proto)
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(sum uint32, b []byte) uint16 {
	sum = sum16(sum, b)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func sum16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fragOffset(f *Frag) uint16 {
	if f.Offset > 0x1fff {
		panic(fmt.Sprintf("testnet: fragment offset %d above 8191", f.Offset))
	}
	return f.Offset
}

func boolBit(b bool, bit uint16) uint16 {
	if b {
		return bit
	}
	return 0
}

// padTo copies b padded with zeros to a multiple of unit, at most limit.
func padTo(b []byte, unit, limit int, what string) []byte {
	if len(b) > limit {
		panic(fmt.Sprintf("testnet: %d bytes of %s, at most %d fit", len(b), what, limit))
	}
	out := make([]byte, roundUp(len(b), unit))
	copy(out, b)
	return out
}

func roundUp(n, unit int) int {
	return (n + unit - 1) / unit * unit
}

func length16(n int, what string) uint16 {
	if n > 0xffff {
		panic(fmt.Sprintf("testnet: %s %d above 65535", what, n))
	}
	return uint16(n)
}
