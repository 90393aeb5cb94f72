package verdict

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// pool is a small address space with squads, shared /64s and allowlist
// candidates, so random streams ban often and hit every rule.
var pool = func() []netip.Addr {
	var out []netip.Addr
	for _, s := range []string{
		"198.18.22.1", "198.18.22.2", "198.18.22.3", "198.18.22.4", "198.18.22.5", "198.18.22.7",
		"198.18.23.1", "198.18.23.2", "198.18.23.3", "198.18.23.4", "198.18.23.50",
		"127.0.0.1", "198.19.0.1",
		"fd00:22:1:1::1", "fd00:22:1:1::2", "fd00:22:1:2::1", "fd00:22:1:3::1", "fd00:22:1:4::1", "fd00:22:1:5::1",
		"fd00:23::7", "fd00:23::8", "::1",
	} {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}()

// allowCandidates are prefixes a stream may allowlist: addresses inside
// squads and /64s, loopback, a whole /24.
var allowCandidates = []netip.Prefix{
	netip.MustParsePrefix("198.18.22.7/32"),
	netip.MustParsePrefix("198.18.23.50/32"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fd00:23::7/128"),
	netip.MustParsePrefix("fd00:22:1:4::1/128"),
	netip.MustParsePrefix("198.19.0.0/24"),
}

var kinds = []logs.Kind{logs.KindAuthFailure, logs.KindAuthFailure, logs.KindAuthFailure, logs.KindProtocolAbuse, logs.KindRelayDenied, logs.KindDNSBL, logs.KindAuthSuccess}

func randomEvents(seed uint64, n int) []logs.Event {
	r := rand.New(rand.NewPCG(seed, seed))
	at := t0
	out := make([]logs.Event, n)
	for i := range out {
		at = at.Add(time.Duration(r.IntN(30_000)) * time.Millisecond)
		out[i] = logs.Event{
			Time: at, Service: []string{"smtp", "submission", "imap", "pop3", "sieve", "ssh"}[r.IntN(6)],
			Kind: kinds[r.IntN(len(kinds))], Addr: pool[r.IntN(len(pool))], Attempts: 1 + r.IntN(3)/2,
		}
	}
	return out
}

// checkNeverBansAllowlisted runs ops decoded from data (4 bytes each: op,
// address, time step, argument) and fails if any decision covers an
// address allowlisted at that moment. It returns the decisions made, by
// origin.
func checkNeverBansAllowlisted(t *testing.T, data []byte) map[Origin]int {
	made := map[Origin]int{}
	e := newEngine(t, func(c *Config) { c.MaxSources = 8 })
	now := t0
	var allowed []netip.Prefix
	for ; len(data) >= 4; data = data[4:] {
		op, a, step, arg := data[0], pool[int(data[1])%len(pool)], time.Duration(data[2])*time.Second, data[3]
		now = now.Add(step * time.Duration(1+int(arg)%64))
		switch op % 8 {
		case 0, 1, 2, 3, 4:
			ev := logs.Event{Time: now.Add(-time.Duration(arg%4) * time.Minute), Service: "imap", Kind: kinds[int(arg)%len(kinds)], Addr: a, Attempts: 1 + int(arg)%7}
			for _, d := range e.Observe(ev, now) {
				made[d.Origin]++
				for _, p := range allowed {
					if p.Overlaps(d.Prefix) {
						t.Fatalf("banned %s (%s: %s) over allowlisted %s", d.Prefix, d.Origin, d.Reason, p)
					}
				}
			}
		case 5:
			allowed = allowed[:0]
			for i, p := range allowCandidates {
				if arg&(1<<i) != 0 {
					allowed = append(allowed, p)
				}
			}
			e.SetAllowlist(allowed)
		case 6:
			bits := 32
			if a.Is6() {
				bits = 64
			}
			p, _ := a.Prefix(bits)
			if arg%2 == 0 {
				e.Unban(p, now)
			} else {
				e.ManualBan(p, Scope(arg%2), now.Add(time.Duration(arg)*time.Minute), now)
			}
		case 7:
			e.Expire(now)
		}
	}
	return made
}

func FuzzNeverBansAllowlisted(f *testing.F) {
	// Seeds: an allowlist of everything, then a squad's worth of failures.
	seed := []byte{5, 0, 0, 0x7f}
	for i := range 40 {
		seed = append(seed, 0, byte(i%6), 1, 0)
	}
	f.Add(seed)
	f.Add(binary.BigEndian.AppendUint64(nil, 0x0500_0003_0101_0000))
	f.Fuzz(func(t *testing.T, data []byte) { checkNeverBansAllowlisted(t, data) })
}

func TestRandomStreamsNeverBanAllowlisted(t *testing.T) {
	// The fuzz target on many random streams, so plain go test checks the
	// property too.
	r := rand.New(rand.NewPCG(1, 2))
	made := map[Origin]int{}
	for range 300 {
		data := make([]byte, 4*2000)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		// Short time steps, so failures pile up into bans and squads.
		for i := 0; i < len(data); i += 4 {
			data[i+2] %= 3
		}
		for o, n := range checkNeverBansAllowlisted(t, data) {
			made[o] += n
		}
	}
	// The property means nothing if the streams never ban: make sure every
	// kind of ban happened.
	t.Logf("decisions by origin: %v", made)
	for _, o := range []Origin{OriginLog, OriginRecidive, OriginSubnet} {
		if made[o] == 0 {
			t.Errorf("no %s bans in the random streams", o)
		}
	}
}
