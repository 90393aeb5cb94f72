package maps

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/portcullis-mail/portcullis/bpf"
)

// v4MappedBits is how far an IPv4 prefix length is shifted in the kernel's
// keys, which hold every address as IPv6 (IPv4 mapped into ::ffff:0:0/96).
const v4MappedBits = 96

// ParsePrefix reads an address or a CIDR prefix as users type them. A bare
// address becomes a /32 or /128; IPv4-mapped IPv6 folds to IPv4; host bits
// are refused, since "10.0.0.1/24" is more likely a typo than a wish.
func ParsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: an address with a zone cannot be banned or allowed", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	n, err := normalize(p)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.Addr().Unmap() != n.Addr() {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %s?", s, n)
	}
	return n, nil
}

// normalize folds IPv4-mapped prefixes to IPv4 and masks host bits.
func normalize(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %s", p)
	}
	a := p.Addr()
	bits := p.Bits()
	if a.Is4In6() {
		if bits < v4MappedBits {
			return netip.Prefix{}, fmt.Errorf("prefix %s is wider than the IPv4-mapped range", p)
		}
		a = a.Unmap()
		bits -= v4MappedBits
	}
	p = netip.PrefixFrom(a.WithZone(""), bits).Masked()
	// The kernel keys IPv4 as ::ffff:a.b.c.d, so an IPv6 prefix holding
	// that range (::/0 to ::/80) would match every IPv4 source too.
	if p.Addr().Is6() && p.Contains(netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff})) {
		return netip.Prefix{}, fmt.Errorf("prefix %s would also cover every IPv4 address; give IPv6 prefixes outside ::/80 and IPv4 prefixes separately", p)
	}
	return p, nil
}

// addrKey is the kernel's key for one address.
func addrKey(a netip.Addr) bpf.Addr {
	b := a.As16() // IPv4 comes out mapped, as the kernel keys it
	var k bpf.Addr
	for i := range k.A {
		k.A[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return k
}

// keyAddr is the inverse of addrKey.
func keyAddr(k bpf.Addr) netip.Addr {
	var b [16]byte
	for i, w := range k.A {
		binary.NativeEndian.PutUint32(b[4*i:], w)
	}
	return netip.AddrFrom16(b).Unmap()
}

// lpmKey is the kernel's trie key for a normalized prefix.
func lpmKey(p netip.Prefix) bpf.LPMKey {
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += v4MappedBits
	}
	return bpf.LPMKey{Prefixlen: uint32(bits), A: addrKey(p.Addr()).A}
}

// keyPrefix is the inverse of lpmKey.
func keyPrefix(k bpf.LPMKey) netip.Prefix {
	a := keyAddr(bpf.Addr{A: k.A})
	bits := int(k.Prefixlen)
	if a.Is4() {
		bits -= v4MappedBits
	}
	return netip.PrefixFrom(a, bits)
}

// lpm4Key is the IPv4 prefix ban trie's key for a normalized IPv4 prefix.
func lpm4Key(p netip.Prefix) bpf.LPM4Key {
	b := p.Addr().As4()
	return bpf.LPM4Key{Prefixlen: uint32(p.Bits()), Addr: binary.NativeEndian.Uint32(b[:])}
}

// lpm6Key is the short IPv6 trie's key for a normalized IPv6 prefix of at
// most /64.
func lpm6Key(p netip.Prefix) bpf.LPM6Key {
	k := addrKey(p.Addr())
	return bpf.LPM6Key{Prefixlen: uint32(p.Bits()), A: [2]uint32{k.A[0], k.A[1]}}
}

// keyPrefix6 is the inverse of lpm6Key.
func keyPrefix6(k bpf.LPM6Key) netip.Prefix {
	a := keyAddr(bpf.Addr{A: [4]uint32{k.A[0], k.A[1]}})
	return netip.PrefixFrom(a, int(k.Prefixlen))
}

// keyPrefix4 is the inverse of lpm4Key.
func keyPrefix4(k bpf.LPM4Key) netip.Prefix {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], k.Addr)
	return netip.PrefixFrom(netip.AddrFrom4(b), int(k.Prefixlen))
}

// isSingle reports whether p names one address (an exact ban).
func isSingle(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }
