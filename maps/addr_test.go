package maps

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "192.0.2.7", want: "192.0.2.7/32"},
		{in: "2001:db8::1", want: "2001:db8::1/128"},
		{in: "::ffff:192.0.2.7", want: "192.0.2.7/32"},
		{in: "192.0.2.0/24", want: "192.0.2.0/24"},
		{in: "2001:db8::/48", want: "2001:db8::/48"},
		{in: "::ffff:192.0.2.0/120", want: "192.0.2.0/24"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "192.0.2.7/24", wantErr: "host bits set; did you mean 192.0.2.0/24"},
		{in: "::ffff:192.0.2.0/64", wantErr: "wider than the IPv4-mapped range"},
		{in: "300.1.1.1", wantErr: `"300.1.1.1" is not an IP address`},
		{in: "192.0.2.0/33", wantErr: "is not an IP address or CIDR"},
		{in: "fe80::1%eth0", wantErr: "zone"},
		{in: "::/0", wantErr: "would also cover every IPv4 address"},
		{in: "::/64", wantErr: "would also cover every IPv4 address"},
		{in: "::/81", want: "::/81"},
		{in: "", wantErr: "is not an IP address"},
		{in: "example.org", wantErr: "is not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefix(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePrefix(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("ParsePrefix(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestKeysRoundTrip(t *testing.T) {
	for _, s := range []string{"192.0.2.7/32", "192.0.2.0/24", "0.0.0.0/0", "2001:db8::1/128", "2001:db8::/32", "8000::/1"} {
		p := netip.MustParsePrefix(s)
		if got := keyPrefix(lpmKey(p)); got != p {
			t.Errorf("keyPrefix(lpmKey(%s)) = %s", p, got)
		}
		if got := keyAddr(addrKey(p.Addr())); got != p.Addr() {
			t.Errorf("keyAddr(addrKey(%s)) = %s", p.Addr(), got)
		}
	}
	// IPv4 is keyed in its mapped form, as the XDP program reads it off the wire.
	k := lpmKey(netip.MustParsePrefix("192.0.2.0/24"))
	if k.Prefixlen != 120 {
		t.Errorf("IPv4 /24 has kernel prefix length %d, want 120", k.Prefixlen)
	}
	p4 := netip.MustParsePrefix("192.0.2.0/24")
	if got := keyPrefix4(lpm4Key(p4)); got != p4 {
		t.Errorf("keyPrefix4(lpm4Key(%s)) = %s", p4, got)
	}
}
