package bpf_test

// A stand-in for internal/testnet's packet builder (being written on the
// testnet branch) with the same API, so that switching is a rename. Lengths
// and next-header chains are exact; checksums are left zero because the XDP
// program never reads them.

import (
	"encoding/binary"
	"net/netip"
)

type TCPFlags uint8

const (
	FIN TCPFlags = 1 << iota
	SYNFlag
	RST
	PSH
	ACK
	URG
)

type Frag struct {
	Offset uint16 // in 8-byte units
	More   bool
	ID     uint32
}

type ExtHeader struct {
	Type uint8 // 0 hop-by-hop, 43 routing, 44 fragment, 60 destination options, 51 AH
	Len  int   // body bytes, padded as the type requires
	Frag *Frag // for type 44
}

type Packet struct {
	EtherType        uint16
	VLANs            []uint16
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
	Flags            TCPFlags
	IPv4Options      []byte
	IPv4Frag         *Frag
	IPv6Ext          []ExtHeader
	TCPOptions       []byte
	Payload          []byte
}

func SYN(src, dst netip.Addr, dport uint16) Packet {
	return Packet{Src: src, Dst: dst, SrcPort: 40000, DstPort: dport, Flags: SYNFlag}
}

func pad(n, to int) int { return (n + to - 1) / to * to }

func (p Packet) Bytes() []byte {
	et := p.EtherType
	if et == 0 {
		et = 0x0800
		if p.Src.Is6() {
			et = 0x86dd
		}
	}
	b := make([]byte, 12) // MACs
	for i, id := range p.VLANs {
		tpid := uint16(0x8100)
		if len(p.VLANs) > 1 && i == 0 {
			tpid = 0x88a8
		}
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, id&0x0fff)
	}
	b = binary.BigEndian.AppendUint16(b, et)
	if et != 0x0800 && et != 0x86dd {
		return append(b, p.Payload...)
	}
	proto := p.Proto
	if proto == 0 {
		proto = 6
	}
	var l4 []byte
	first := (p.IPv4Frag == nil || p.IPv4Frag.Offset == 0)
	for _, e := range p.IPv6Ext {
		if e.Type == 44 && e.Frag != nil && e.Frag.Offset > 0 {
			first = false
		}
	}
	if first {
		switch proto {
		case 6:
			opts := make([]byte, pad(len(p.TCPOptions), 4))
			copy(opts, p.TCPOptions)
			l4 = binary.BigEndian.AppendUint16(l4, p.SrcPort)
			l4 = binary.BigEndian.AppendUint16(l4, p.DstPort)
			l4 = append(l4, 0, 0, 0, 1, 0, 0, 0, 0) // seq, ack
			l4 = append(l4, byte((20+len(opts))/4)<<4, byte(p.Flags))
			l4 = append(l4, 0xff, 0xff, 0, 0, 0, 0) // window, checksum, urgent
			l4 = append(l4, opts...)
		case 17:
			l4 = binary.BigEndian.AppendUint16(l4, p.SrcPort)
			l4 = binary.BigEndian.AppendUint16(l4, p.DstPort)
			l4 = binary.BigEndian.AppendUint16(l4, uint16(8+len(p.Payload)))
			l4 = append(l4, 0, 0)
		}
	}
	l4 = append(l4, p.Payload...)
	if p.Src.Is4() {
		opts := make([]byte, pad(len(p.IPv4Options), 4))
		copy(opts, p.IPv4Options)
		hl := 20 + len(opts)
		ip := []byte{0x40 | byte(hl/4), 0}
		ip = binary.BigEndian.AppendUint16(ip, uint16(hl+len(l4)))
		var id, frag uint16
		if f := p.IPv4Frag; f != nil {
			id = uint16(f.ID)
			frag = f.Offset & 0x1fff
			if f.More {
				frag |= 0x2000
			}
		}
		ip = binary.BigEndian.AppendUint16(ip, id)
		ip = binary.BigEndian.AppendUint16(ip, frag)
		ip = append(ip, 64, proto, 0, 0)
		s, d := p.Src.As4(), p.Dst.As4()
		ip = append(append(append(ip, s[:]...), d[:]...), opts...)
		return append(append(b, ip...), l4...)
	}
	var ext []byte
	next := proto
	for i := len(p.IPv6Ext) - 1; i >= 0; i-- {
		e := p.IPv6Ext[i]
		var h []byte
		switch e.Type {
		case 44:
			h = []byte{next, 0, 0, 0, 0, 0, 0, 0}
			if f := e.Frag; f != nil {
				off := f.Offset << 3
				if f.More {
					off |= 1
				}
				binary.BigEndian.PutUint16(h[2:], off)
				binary.BigEndian.PutUint32(h[4:], f.ID)
			}
		case 51:
			total := pad(12+e.Len, 8)
			h = make([]byte, total)
			h[0], h[1] = next, byte(total/4-2)
		default:
			total := pad(2+e.Len, 8)
			h = make([]byte, total)
			h[0], h[1] = next, byte(total/8-1)
		}
		ext = append(h, ext...)
		next = e.Type
	}
	ip := []byte{0x60, 0, 0, 0}
	ip = binary.BigEndian.AppendUint16(ip, uint16(len(ext)+len(l4)))
	ip = append(ip, next, 64)
	s, d := p.Src.As16(), p.Dst.As16()
	ip = append(append(ip, s[:]...), d[:]...)
	return append(append(append(b, ip...), ext...), l4...)
}
