package bpf_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
)

// snapshot is every byte of datapath state that a packet can change:
// per-CPU counters, tracked sources (tokens, SYNs, last seen) and bans
// (hits).
func (d *datapath) snapshot() string {
	d.tb.Helper()
	var b strings.Builder
	for _, name := range []string{bpf.MapCounters, bpf.MapSources, bpf.MapBans, bpf.MapPrefixBans4, bpf.MapPrefixBans6, bpf.MapPrefixBans6L} {
		m := d.pinned(name)
		var rows []string
		if name == bpf.MapCounters {
			// An array of per-CPU values: one slice per index.
			for i := uint32(0); i < bpf.CounterMax; i++ {
				var per []uint64
				if err := m.Lookup(i, &per); err != nil {
					d.tb.Fatal(err)
				}
				rows = append(rows, fmt.Sprint(i, per))
			}
		}
		var k, v []byte
		it := m.Iterate()
		for name != bpf.MapCounters && it.Next(&k, &v) {
			rows = append(rows, fmt.Sprintf("%x=%x", k, v))
		}
		if err := it.Err(); err != nil {
			d.tb.Fatalf("iterate %s: %v", name, err)
		}
		slices.Sort(rows)
		fmt.Fprintf(&b, "%s: %s\n", name, strings.Join(rows, " "))
	}
	return b.String()
}

// Explain must give the kernel's own answer and leave no trace: the
// scenarios set up state, explain the same SYN a few times, check that not
// one byte of state changed, and then send the SYN for real.
func TestExplainAgreesWithARealRunAndChangesNothing(t *testing.T) {
	ban := func(p string, scope maps.Scope) func(*datapath) {
		return func(d *datapath) { d.ban(maps.Ban{Prefix: prefix(p), Scope: scope}) }
	}
	allow := func(p string) func(*datapath) { return func(d *datapath) { d.allow(prefix(p)) } }
	limit := func(c maps.Class, perMinute, burst uint32) func(*datapath) {
		return func(d *datapath) { d.rateLimit(c, perMinute, burst) }
	}
	send := func(src string, port uint16, n int) func(*datapath) {
		return func(d *datapath) {
			for range n {
				d.run(syn(addr(src), port))
			}
		}
	}
	tests := []struct {
		name    string
		setup   []func(*datapath)
		src     string
		port    uint16
		action  string
		rule    string
		tokens  uint32 // not computed (0) when a ban decides
		tracked bool
	}{
		{"fresh source, default mx limit", nil, "198.18.60.1", 25, "pass", "pass", 60, false},
		{"fresh source, default auth limit", nil, "198.18.60.1", 993, "pass", "pass", 30, false},
		{"two syns spent", []func(*datapath){send("198.18.60.2", 25, 2)}, "198.18.60.2", 25, "pass", "pass", 58, true},
		{"bucket empty", []func(*datapath){limit(maps.ClassMX, 1, 2), send("198.18.60.3", 25, 2)}, "198.18.60.3", 25, "drop", "rate-limit", 0, true},
		{"bucket empty, allowlisted", []func(*datapath){limit(maps.ClassMX, 1, 1), allow("198.18.60.0/24"), send("198.18.60.4", 25, 3)}, "198.18.60.4", 25, "pass", "allowlist", 0, true},
		{"ipv6 bucket emptied by another address of the /64", []func(*datapath){limit(maps.ClassAuth, 1, 2), send("fd00:60::1", 587, 2)}, "fd00:60::2", 993, "drop", "rate-limit", 0, true},
		{"rate limit off", []func(*datapath){limit(maps.ClassMX, 0, 0), send("198.18.60.5", 25, 1)}, "198.18.60.5", 25, "pass", "pass", 0xffffffff, true},
		{"exact ban", []func(*datapath){ban("198.18.60.6/32", maps.ScopeAll)}, "198.18.60.6", 25, "drop", "ban", 0, false},
		{"prefix ban", []func(*datapath){ban("fd00:61::/48", maps.ScopeMail)}, "fd00:61::9", 25, "drop", "ban-prefix", 0, false},
		{"mail-scope ban, unprotected port", []func(*datapath){ban("198.18.60.7/32", maps.ScopeMail)}, "198.18.60.7", 80, "pass", "pass", 0, false},
		{"banned and allowlisted", []func(*datapath){ban("198.18.60.0/24", maps.ScopeAll), allow("198.18.60.8/32")}, "198.18.60.8", 25, "pass", "allowlist", 0, false},
		{"banned with hits", []func(*datapath){ban("198.18.60.9/32", maps.ScopeAll), send("198.18.60.9", 25, 3)}, "198.18.60.9", 25, "drop", "ban", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := loadDatapath(t, 4096)
			for _, f := range tt.setup {
				f(d)
			}
			src := addr(tt.src)
			before := d.snapshot()
			e := d.explain(src, tt.port)
			for range 3 {
				if again := d.explain(src, tt.port); !sameExplanation(again, e) {
					t.Errorf("explain changed its answer: %+v, then %+v", e, again)
				}
			}
			if after := d.snapshot(); after != before {
				t.Errorf("explain changed state:\nbefore %s\nafter  %s", before, after)
			}
			if e.Action != tt.action || e.Rule != tt.rule || e.Tracked != tt.tracked {
				t.Errorf("explain: %s by %s (tracked %v), want %s by %s (tracked %v)", e.Action, e.Rule, e.Tracked, tt.action, tt.rule, tt.tracked)
			}
			if e.Class != maps.ClassNone && e.Tokens != tt.tokens {
				t.Errorf("explain: %d tokens, want %d", e.Tokens, tt.tokens)
			}
			real := d.run(syn(src, tt.port))
			if actionName(real) != e.Action {
				t.Errorf("explain said %s, a real run did %s", e.Action, actionName(real))
			}
		})
	}
}

// sameExplanation compares two explanations, the matched ban by value.
func sameExplanation(a, b loader.Explanation) bool {
	if (a.Ban == nil) != (b.Ban == nil) || a.Ban != nil && *a.Ban != *b.Ban {
		return false
	}
	a.Ban, b.Ban = nil, nil
	return a == b
}
