package maps

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/portcullis-mail/portcullis/bpf"
)

// Scope says which packets of a banned source are dropped.
type Scope uint8

// The scopes of a ban.
const (
	ScopeAll  = Scope(bpf.ScopeAll)  // every packet from the source
	ScopeMail = Scope(bpf.ScopeMail) // packets to the protected mail ports
)

func (s Scope) String() string {
	switch s {
	case ScopeAll:
		return "all"
	case ScopeMail:
		return "mail"
	}
	return fmt.Sprintf("scope(%d)", uint8(s))
}

// ParseScope reads "all" or "mail".
func ParseScope(s string) (Scope, error) {
	switch s {
	case "all":
		return ScopeAll, nil
	case "mail":
		return ScopeMail, nil
	}
	return 0, fmt.Errorf("unknown scope %q (want all or mail)", s)
}

// Class is a class of protected ports; each has its own rate limit.
type Class uint32

// The port classes.
const (
	ClassNone = Class(bpf.ClassNone) // unprotected
	ClassMX   = Class(bpf.ClassMX)   // SMTP from other servers (25)
	ClassAuth = Class(bpf.ClassAuth) // logins: submission, IMAP, POP3, sieve
)

// Classes lists the protected classes in order.
func Classes() []Class { return []Class{ClassMX, ClassAuth} }

func (c Class) String() string {
	switch c {
	case ClassNone:
		return "none"
	case ClassMX:
		return "mx"
	case ClassAuth:
		return "auth"
	}
	return fmt.Sprintf("class(%d)", uint32(c))
}

// ParseClass reads "mx" or "auth".
func ParseClass(s string) (Class, error) {
	switch s {
	case "mx":
		return ClassMX, nil
	case "auth":
		return ClassAuth, nil
	}
	return 0, fmt.Errorf("unknown port class %q (want mx or auth)", s)
}

// DefaultPorts are the protected ports of each class on first load.
func DefaultPorts() map[Class][]uint16 {
	return map[Class][]uint16{
		ClassMX:   {25},
		ClassAuth: {465, 587, 110, 995, 143, 993, 4190},
	}
}

// Origin says who made a ban.
type Origin uint8

// The origins of bans.
const (
	OriginManual   Origin = 0
	OriginLog      Origin = 1
	OriginSubnet   Origin = 2
	OriginRecidive Origin = 3
	OriginGeo      Origin = 4
	OriginImport   Origin = 5
)

func (o Origin) String() string {
	names := [...]string{"manual", "log", "subnet", "recidive", "geo", "import"}
	if int(o) < len(names) {
		return names[o]
	}
	return fmt.Sprintf("origin(%d)", uint8(o))
}

// Ban is one ban, of one address or a prefix.
type Ban struct {
	Prefix  netip.Prefix // one address is a /32 or /128
	Scope   Scope
	Origin  Origin
	Reason  string    // cut to what the kernel keeps (47 bytes)
	Starts  time.Time // zero: at once
	Expires time.Time // zero: permanent
	Hits    uint64    // packets dropped by this ban
}

// Permanent reports whether the ban never expires.
func (b Ban) Permanent() bool { return b.Expires.IsZero() }

// ActiveAt reports whether the ban is in force at t.
func (b Ban) ActiveAt(t time.Time) bool {
	return (b.Starts.IsZero() || !t.Before(b.Starts)) && (b.Expires.IsZero() || t.Before(b.Expires))
}

// RateLimit is a token bucket: Burst SYNs at once, refilled at PerMinute.
// PerMinute 0 turns the limit off.
type RateLimit struct {
	PerMinute uint32
	Burst     uint32
}

// DefaultRateLimits are set on first load. auth: a household behind one NAT
// (phones and desktops, each mail client opening up to ~5 IMAP connections,
// all reconnecting after a network change) fits in 30 at once and 30 a
// minute, while a password sprayer is held to one SYN every two seconds.
// mx: a large sender's parallel deliveries (Postfix defaults to 20 per
// destination) fit in a burst of 60 and 120 a minute.
func DefaultRateLimits() map[Class]RateLimit {
	return map[Class]RateLimit{
		ClassMX:   {PerMinute: 120, Burst: 60},
		ClassAuth: {PerMinute: 30, Burst: 30},
	}
}

// Counters are the datapath's counters summed over CPUs. Every packet
// lands in exactly one of Passed, Allowlisted, DroppedBan, DroppedRate and
// DroppedGeo.
type Counters struct {
	Passed      uint64 `json:"passed"`
	Allowlisted uint64 `json:"allowlisted"` // would have been dropped; the allowlist passed it
	DroppedBan  uint64 `json:"dropped_ban"`
	DroppedRate uint64 `json:"dropped_rate"`
	DroppedGeo  uint64 `json:"dropped_geo"`
	SynMX       uint64 `json:"syn_seen_mx"`
	SynAuth     uint64 `json:"syn_seen_auth"`
	Malformed   uint64 `json:"malformed"`
	NonIP       uint64 `json:"non_ip"`
	TrackFull   uint64 `json:"track_full"` // SYNs whose source could not be tracked
}

// Source is what the datapath knows of one source's SYNs to protected
// ports. IPv4 sources are single addresses, IPv6 sources /64s.
type Source struct {
	Prefix   netip.Prefix
	SYNs     [2]uint64 // mx, auth
	Drops    [2]uint64 // dropped by the rate limit: mx, auth
	LastSeen time.Time
}

// Total is the source's SYNs over both classes.
func (s Source) Total() uint64 { return s.SYNs[0] + s.SYNs[1] }

// Fill is how full one map is.
type Fill struct {
	Name     string `json:"name"`
	Entries  int    `json:"entries"`
	Capacity int    `json:"capacity"`
	// Bytes is the kernel memory the map holds, as the kernel reports it
	// (preallocated maps hold their capacity's worth from the start).
	Bytes uint64 `json:"bytes"`
}
