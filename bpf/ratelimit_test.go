package bpf_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/maps"
)

func TestTokenBucketPassesABurstThenDrops(t *testing.T) {
	d := loadDatapath(t, 4096)
	tests := []struct {
		name  string
		src   string
		port  uint16
		class maps.Class
		burst uint32
	}{
		{"mx burst 1", "198.18.50.1", 25, maps.ClassMX, 1},
		{"mx burst 5", "198.18.50.2", 25, maps.ClassMX, 5},
		{"auth burst 30", "198.18.50.3", 993, maps.ClassAuth, 30},
		{"ipv6 mx burst 5", "fd00:50::1", 25, maps.ClassMX, 5},
		{"ipv6 auth burst 7", "fd00:51::1", 587, maps.ClassAuth, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.tb = t
			d.rateLimit(tt.class, 1, tt.burst) // refills once a minute: not during the test
			src := addr(tt.src)
			seen := maps.Counters{SynMX: 1}
			if tt.class == maps.ClassAuth {
				seen = maps.Counters{SynAuth: 1}
			}
			passed, dropped := seen, seen
			passed.Passed, dropped.DroppedRate = 1, 1
			for i := range tt.burst {
				if tokens := d.explain(src, tt.port).Tokens; tokens != tt.burst-i {
					t.Errorf("before syn %d: %d tokens, want %d", i+1, tokens, tt.burst-i)
				}
				d.expect("syn within the burst", syn(src, tt.port), xdpPass, passed)
			}
			for range 3 {
				d.expect("syn over the burst", syn(src, tt.port), xdpDrop, dropped)
			}
			if e := d.explain(src, tt.port); e.Tokens != 0 || e.Rule != "rate-limit" || e.Action != "drop" {
				t.Errorf("explain over the burst: %+v", e)
			}
		})
	}
}

func TestTokenBucketRefills(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.rateLimit(maps.ClassMX, 6000, 3) // a token every 10 ms
	for _, s := range []string{"198.18.51.1", "fd00:52::1"} {
		t.Run(s, func(t *testing.T) {
			d.tb = t
			src := addr(s)
			start := time.Now()
			for range 3 {
				if got := d.run(syn(src, 25)); got != xdpPass {
					t.Fatalf("syn within the burst: %s", actionName(got))
				}
			}
			if got := d.run(syn(src, 25)); got != xdpDrop {
				if time.Since(start) < 10*time.Millisecond {
					t.Fatalf("syn over the burst: %s", actionName(got))
				}
				t.Skip("the machine took longer than a token's time to send four SYNs")
			}
			took, ok := until(t, 2*time.Second, time.Millisecond, func() bool {
				return d.run(syn(src, 25)) == xdpPass
			})
			if !ok {
				t.Fatalf("no token came back within %v at one token per 10 ms", took)
			}
		})
	}
}

func TestEachClassHasItsOwnBucket(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.rateLimit(maps.ClassMX, 1, 2)
	d.rateLimit(maps.ClassAuth, 1, 2)
	for _, s := range []string{"198.18.52.1", "fd00:53::1"} {
		t.Run(s, func(t *testing.T) {
			d.tb = t
			src := addr(s)
			auth := maps.Counters{Passed: 1, SynAuth: 1}
			d.expect("587 first", syn(src, 587), xdpPass, auth)
			d.expect("587 second", syn(src, 587), xdpPass, auth)
			d.expect("587 over", syn(src, 587), xdpDrop, maps.Counters{DroppedRate: 1, SynAuth: 1})
			d.expect("465 shares the auth bucket", syn(src, 465), xdpDrop, maps.Counters{DroppedRate: 1, SynAuth: 1})
			d.expect("25 is another class", syn(src, 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
			d.expect("80 is not limited", syn(src, 80), xdpPass, maps.Counters{Passed: 1})
		})
	}
}

func TestBucketsAreKeyedPerIPv4AddressAndPerIPv6Slash64(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.rateLimit(maps.ClassMX, 1, 1)
	tests := []struct {
		name         string
		first, other string
		shared       bool
	}{
		{"ipv4 neighbours", "198.18.53.1", "198.18.53.2", false},
		{"ipv6 in one /64", "fd00:54::1", "fd00:54::ffff:1", true},
		{"ipv6 at the ends of one /64", "fd00:55::", "fd00:55::ffff:ffff:ffff:ffff", true},
		{"ipv6 in neighbouring /64s", "fd00:56::1", "fd00:56:0:1::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.tb = t
			d.expect("first source", syn(addr(tt.first), 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
			if tt.shared {
				d.expect("other source", syn(addr(tt.other), 25), xdpDrop, maps.Counters{DroppedRate: 1, SynMX: 1})
			} else {
				d.expect("other source", syn(addr(tt.other), 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
			}
		})
	}
	top, err := d.Maps.Top(100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[netip.Prefix]maps.Source{}
	for _, s := range top {
		got[s.Prefix] = s
	}
	for p, syns := range map[string]uint64{
		"198.18.53.1/32": 1, "198.18.53.2/32": 1, "fd00:54::/64": 2, "fd00:55::/64": 2, "fd00:56::/64": 1, "fd00:56:0:1::/64": 1,
	} {
		if s, ok := got[prefix(p)]; !ok || s.SYNs[0] != syns {
			t.Errorf("top: %s has %+v, want %d mx syns", p, s, syns)
		}
	}
	if len(got) != 6 {
		t.Errorf("top lists %d sources, want 6: %v", len(got), top)
	}
}

func TestRateLimitZeroIsOff(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.rateLimit(maps.ClassMX, 1, 1)
	d.rateLimit(maps.ClassMX, 0, 0)
	src := addr("198.18.54.1")
	for range 200 {
		d.expect("syn", syn(src, 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
	}
	e := d.explain(src, 25)
	if e.Limited || e.Tokens != 0xffffffff || e.Action != "pass" || !e.Tracked {
		t.Errorf("explain with the limit off: %+v", e)
	}
	top, err := d.Maps.Top(1)
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 1 || top[0].SYNs != [2]uint64{200, 0} || top[0].Drops != [2]uint64{0, 0} {
		t.Errorf("top: %+v, want 200 mx syns and no drops", top)
	}
	// Turning it on again applies at once, to the same source.
	d.rateLimit(maps.ClassMX, 1, 2)
	d.expect("first with the limit on", syn(src, 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
	d.expect("second with the limit on", syn(src, 25), xdpPass, maps.Counters{Passed: 1, SynMX: 1})
	d.expect("third with the limit on", syn(src, 25), xdpDrop, maps.Counters{DroppedRate: 1, SynMX: 1})
}

func TestTopListsSourcesBySYNsWithDrops(t *testing.T) {
	d := loadDatapath(t, 4096)
	d.rateLimit(maps.ClassMX, 1, 2)
	d.rateLimit(maps.ClassAuth, 1, 3)
	send := func(src string, port uint16, n int) {
		for range n {
			d.run(syn(addr(src), port))
		}
	}
	send("198.18.55.1", 25, 5)  // 2 pass, 3 dropped
	send("198.18.55.1", 993, 4) // 3 pass, 1 dropped
	send("fd00:57::1", 587, 3)
	send("fd00:57::2", 587, 3) // same /64: 6 auth syns, 3 dropped
	send("198.18.55.2", 25, 1)
	send("198.18.55.3", 80, 10) // unprotected: not tracked
	// A banned source is dropped before the rate limit and not tracked.
	d.ban(maps.Ban{Prefix: prefix("198.18.55.4/32"), Scope: maps.ScopeAll})
	send("198.18.55.4", 25, 4)

	top, err := d.Maps.Top(2)
	if err != nil {
		t.Fatal(err)
	}
	want := []maps.Source{
		{Prefix: prefix("198.18.55.1/32"), SYNs: [2]uint64{5, 4}, Drops: [2]uint64{3, 1}},
		{Prefix: prefix("fd00:57::/64"), SYNs: [2]uint64{0, 6}, Drops: [2]uint64{0, 3}},
	}
	if len(top) != len(want) {
		t.Fatalf("top(2) has %d entries: %+v", len(top), top)
	}
	for i := range want {
		got := top[i]
		if got.Prefix != want[i].Prefix || got.SYNs != want[i].SYNs || got.Drops != want[i].Drops {
			t.Errorf("top[%d] = %+v, want %+v", i, got, want[i])
		}
		if age := time.Since(got.LastSeen); age < -time.Second || age > 10*time.Second {
			t.Errorf("top[%d] last seen %v ago", i, age)
		}
	}
	all, err := d.Maps.Top(100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Errorf("top lists %d sources, want 3 (no unprotected or banned ones): %+v", len(all), all)
	}
}
