package verdict

import (
	"net/netip"
	"slices"
)

// allowlist answers "is this address, or anything in this prefix,
// allowlisted?" in one map lookup per distinct prefix length, so a long
// list of host addresses costs no more per event than a short one.
type allowlist struct {
	byBits   map[int]map[netip.Prefix]struct{}
	bits     []int // the distinct lengths, shortest first
	prefixes []netip.Prefix
}

func newAllowlist(ps []netip.Prefix) allowlist {
	a := allowlist{byBits: make(map[int]map[netip.Prefix]struct{})}
	for _, p := range ps {
		if !p.IsValid() {
			continue
		}
		p = canonical(p)
		bits := p.Bits()
		if p.Addr().Is4() {
			bits += 96 // one numbering for both families: IPv4 as mapped
		}
		set, ok := a.byBits[bits]
		if !ok {
			set = make(map[netip.Prefix]struct{})
			a.byBits[bits] = set
			a.bits = append(a.bits, bits)
		}
		set[p] = struct{}{}
		a.prefixes = append(a.prefixes, p)
	}
	slices.Sort(a.bits)
	return a
}

// canonical masks p and folds IPv4-mapped IPv6 prefixes to IPv4.
func canonical(p netip.Prefix) netip.Prefix {
	a := p.Addr().WithZone("")
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return netip.PrefixFrom(a, p.Bits()).Masked()
}

// contains reports whether a is allowlisted.
func (a allowlist) contains(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	for _, bits := range a.bits {
		b := bits
		if addr.Is4() {
			if b < 96 {
				continue // an IPv6 prefix shorter than ::ffff:0:0/96 never holds a folded IPv4 address
			}
			b -= 96
		} else if b > 128 {
			continue
		}
		p, err := addr.Prefix(b)
		if err != nil {
			continue
		}
		if _, ok := a.byBits[bits][p]; ok {
			return true
		}
	}
	return false
}

// overlaps returns an allowlisted prefix that shares an address with p.
func (a allowlist) overlaps(p netip.Prefix) (netip.Prefix, bool) {
	p = canonical(p)
	for _, q := range a.prefixes {
		if q.Overlaps(p) {
			return q, true
		}
	}
	return netip.Prefix{}, false
}

// covers reports whether every address of p is allowlisted.
func (a allowlist) covers(p netip.Prefix) bool {
	p = canonical(p)
	for _, q := range a.prefixes {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
