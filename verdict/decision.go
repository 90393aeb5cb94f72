package verdict

import (
	"fmt"
	"net/netip"
	"time"
)

// Scope says which packets of a banned source the kernel should drop.
type Scope uint8

// The scopes of a ban. The zero value bans everything, the safe default for
// a source that has shown it is hostile.
const (
	ScopeAll  Scope = iota // every packet from the source
	ScopeMail              // packets to the protected mail ports only
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

// Origin says what made a ban. The daemon maps it by name to the kernel's
// and the store's origins.
type Origin uint8

// The origins of bans. The engine makes log, subnet and recidive bans; it
// learns of manual ones through ManualBan and of all of them through Restore.
const (
	OriginManual   Origin = iota // an administrator's ban
	OriginLog                    // failures counted from the logs
	OriginSubnet                 // a squad of banned sources in one prefix
	OriginRecidive               // a source banned too often in a short time
	OriginGeo                    // a country block; not the engine's business
	OriginImport                 // an imported blocklist; not the engine's business
)

func (o Origin) String() string {
	names := [...]string{"manual", "log", "subnet", "recidive", "geo", "import"}
	if int(o) < len(names) {
		return names[o]
	}
	return fmt.Sprintf("origin(%d)", uint8(o))
}

// Decision is a ban the engine asks the daemon to apply and record.
type Decision struct {
	// Prefix is what to ban: an IPv4 address as a /32, an IPv6 source as its
	// /64 (Config.SourceBitsV6), or a squad's /24 or /48.
	Prefix  netip.Prefix
	Scope   Scope
	Origin  Origin
	Start   time.Time // the now the decision was made at
	Expires time.Time // Start plus the (escalated) ban time
	// Reason explains the decision in one line, most telling part first,
	// e.g. "5 auth failures in 3m12s (smtp, imap)".
	Reason string
	// Evidence is how many weighted failures inside the window led to a
	// source ban, or how many banned sources led to a subnet ban.
	Evidence int
	// Services are the services the evidence came from, sorted.
	Services []string
	// Offence counts this ban among the ones the engine remembers for the
	// same prefix: 1 for a first ban, 2 for the first repeat, and so on.
	Offence int
}

// Duration is how long the ban lasts.
func (d Decision) Duration() time.Duration { return d.Expires.Sub(d.Start) }

// PastBan is a ban from the store, handed to Restore so escalation,
// recidive and squad counting survive a restart of the daemon.
type PastBan struct {
	Prefix  netip.Prefix
	Scope   Scope
	Origin  Origin
	Start   time.Time
	Expires time.Time // zero: permanent
	// Lifted is when an administrator unbanned it, and Restore treats it as
	// Unban at that time. Zero when it ran out, and zero too for a ban the
	// daemon replaced with a longer one: that is an escalation, and
	// counting it as an unban would wipe the history that caused it.
	Lifted time.Time
}
