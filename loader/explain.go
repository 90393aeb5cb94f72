package loader

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/maps"
)

// Explanation is what the datapath does with a SYN from Addr to Port, as
// the kernel program itself decided it.
type Explanation struct {
	Addr        netip.Addr
	Port        uint16
	Action      string // pass or drop
	Rule        string // pass, allowlist, ban, ban-prefix, rate-limit, ...
	Class       maps.Class
	Allowlisted bool
	AllowedBy   netip.Prefix // the allowlist entry, when Allowlisted
	Ban         *maps.Ban    // the ban that matched, if any
	Tracked     bool         // the source has a rate-limit entry
	Tokens      uint32       // tokens in the source's bucket before this SYN
	Limited     bool         // the class has a rate limit
	RateLimit   maps.RateLimit
	// Geo says the program looked the source up in its geo tries (a geo
	// policy exists): GeoCountry is its country code, maps.CountryOther or
	// maps.CountryUnknown, and GeoDrop the classes its entry drops.
	Geo        bool
	GeoCountry string
	GeoDrop    maps.GeoMask
}

// RuleNames are the names of enum pc_rule as users see them.
func ruleName(r uint8) string {
	switch r {
	case bpf.RulePass:
		return "pass"
	case bpf.RuleNonIP:
		return "non-ip"
	case bpf.RuleMalformed:
		return "malformed"
	case bpf.RuleAllow:
		return "allowlist"
	case bpf.RuleBanExact:
		return "ban"
	case bpf.RuleBanPrefix:
		return "ban-prefix"
	case bpf.RuleGeo:
		return "geo"
	case bpf.RuleRate:
		return "rate-limit"
	}
	return fmt.Sprintf("rule(%d)", r)
}

// xdpMD is struct xdp_md, the context BPF_PROG_TEST_RUN takes for XDP. Data
// is the length of the metadata in front of the packet.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// Explain runs a SYN from addr to port through the program with the explain
// metadata set, so the answer is the kernel's own logic while no token,
// counter, hit or tracked source changes.
func (d *Datapath) Explain(addr netip.Addr, port uint16) (Explanation, error) {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.Zone() != "" {
		return Explanation{}, fmt.Errorf("%q is not an IP address", addr)
	}
	dst := netip.IPv4Unspecified()
	if addr.Is6() {
		dst = netip.IPv6Loopback()
	}
	pkt := synPacket(addr, dst, port)
	in := append(bpf.ExplainRequest(), pkt...)
	out := make([]byte, len(in)+256)
	ctx := xdpMD{Data: bpf.ExplainSize, DataEnd: uint32(len(in))}
	ret, err := d.prog.Run(&ebpf.RunOptions{Data: in, DataOut: out, Context: ctx})
	if err != nil {
		return Explanation{}, fmt.Errorf("run program: %w", err)
	}
	ex, err := bpf.ParseExplain(out)
	if err != nil {
		return Explanation{}, err
	}
	e := Explanation{
		Addr:        addr,
		Port:        port,
		Action:      "pass",
		Rule:        ruleName(ex.Rule),
		Class:       maps.Class(ex.Class),
		Allowlisted: ex.Flags&bpf.ExplainAllowlisted != 0,
		Tracked:     ex.Flags&bpf.ExplainTracked != 0,
		Tokens:      ex.Tokens,
	}
	if ex.Flags&bpf.ExplainGeo != 0 {
		e.Geo, e.GeoCountry, e.GeoDrop = true, maps.CountryCode(ex.GeoCountry), maps.GeoMask(ex.GeoDrop)
	}
	if ret == 1 { // XDP_DROP
		e.Action = "drop"
	}
	if e.Class != maps.ClassNone {
		rl, err := d.Maps.RateLimit(e.Class)
		if err != nil {
			return e, err
		}
		e.RateLimit, e.Limited = rl, rl.PerMinute > 0
	}
	if e.Allowlisted {
		e.AllowedBy, _, _ = d.Maps.AllowedBy(addr)
	}
	if ex.Rule == bpf.RuleBanExact || ex.Rule == bpf.RuleBanPrefix {
		b, err := d.Maps.LookupBan(netip.PrefixFrom(addr, int(ex.BanPlen)).Masked())
		if err != nil {
			return e, fmt.Errorf("look up matched ban: %w", err)
		}
		e.Ban = &b
	}
	return e, nil
}

// synPacket builds an Ethernet frame with a TCP SYN. Checksums are left zero:
// the program does not read them.
func synPacket(src, dst netip.Addr, dport uint16) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	tcp[12] = 5 << 4
	tcp[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(tcp[14:], 65535)

	eth := make([]byte, 14)
	var ip []byte
	if src.Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		ip[8] = 64
		ip[9] = 6
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
	} else {
		binary.BigEndian.PutUint16(eth[12:], 0x86dd)
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
		ip[6] = 6
		ip[7] = 64
		s, d := src.As16(), dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	}
	return append(append(eth, ip...), tcp...)
}
