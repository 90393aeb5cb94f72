package verdict

import (
	"net/netip"
	"testing"
)

func TestAllowlistMatchesBothFamiliesAndMappedForms(t *testing.T) {
	a := newAllowlist([]netip.Prefix{
		netip.MustParsePrefix("198.18.0.0/16"),
		netip.MustParsePrefix("::ffff:198.19.1.0/120"), // 198.19.1.0/24 in mapped form
		netip.MustParsePrefix("fd00:1::/32"),
		netip.MustParsePrefix("fd00:2::5/128"),
		netip.MustParsePrefix("198.19.2.7/24"), // host bits set: masked
		{},                                     // invalid: skipped
	})
	contains := []struct {
		addr string
		want bool
	}{
		{"198.18.255.1", true},
		{"::ffff:198.18.0.1", true},
		{"198.19.1.9", true},
		{"198.19.2.200", true},
		{"198.19.3.1", false},
		{"fd00:1:ffff::1", true},
		{"fd00:2::5", true},
		{"fd00:2::6", false},
		{"fe80::1%eth0", false},
		{"::", false},
	}
	for _, tt := range contains {
		if got := a.contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("contains(%s) = %v; want %v", tt.addr, got, tt.want)
		}
	}
	prefixes := []struct {
		prefix          string
		overlaps, cover bool
	}{
		{"198.18.7.0/24", true, true},
		{"198.0.0.0/8", true, false},
		{"fd00:2::/64", true, false},
		{"fd00:2::5/128", true, true},
		{"fd00:3::/48", false, false},
		{"::ffff:198.19.1.0/120", true, true},
	}
	for _, tt := range prefixes {
		p := netip.MustParsePrefix(tt.prefix)
		if _, got := a.overlaps(p); got != tt.overlaps {
			t.Errorf("overlaps(%s) = %v; want %v", p, got, tt.overlaps)
		}
		if got := a.covers(p); got != tt.cover {
			t.Errorf("covers(%s) = %v; want %v", p, got, tt.cover)
		}
	}
}
