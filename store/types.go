package store

import (
	"database/sql"
	"fmt"
	"net/netip"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// Origin says who made a ban. The names are those of maps.Origin; the store
// keeps them as text so the database reads plainly.
type Origin string

// The origins of bans.
const (
	OriginLog      Origin = "log"      // the verdict engine, from log evidence
	OriginManual   Origin = "manual"   // `portcullis ban`
	OriginSubnet   Origin = "subnet"   // a squad of sources from one prefix
	OriginRecidive Origin = "recidive" // repeated bans of one source
	OriginGeo      Origin = "geo"      // a country block (a later issue)
	OriginImport   Origin = "import"   // imported from a list (a later issue)
)

func (o Origin) valid() bool {
	switch o {
	case OriginLog, OriginManual, OriginSubnet, OriginRecidive, OriginGeo, OriginImport:
		return true
	}
	return false
}

// Scope says which packets of a banned source are dropped: "all" or "mail".
type Scope string

// The scopes of a ban.
const (
	ScopeAll  Scope = "all"
	ScopeMail Scope = "mail"
)

// Ban is one ban as recorded. A ban is identified by its prefix and start, or
// by Key when the caller gives one; recording the same ban twice is a no-op.
type Ban struct {
	// ID is the row's id, set by the store on reads.
	ID int64
	// Key is an optional id the caller chooses (for example the control
	// request that made a manual ban), unique across bans.
	Key    string
	Prefix netip.Prefix // one address is a /32 or /128
	Scope  Scope
	Origin Origin
	Reason string
	// Start is when the ban took effect. Required.
	Start time.Time
	// Expires is when it ends by itself; zero means permanent.
	Expires time.Time
	// Evidence is how many failures led to the ban.
	Evidence int
	// LiftedAt and LiftReason say when and why the ban was lifted before it
	// expired; LiftedAt is zero while it was not.
	LiftedAt   time.Time
	LiftReason string
}

// Permanent reports whether the ban never expires.
func (b Ban) Permanent() bool { return b.Expires.IsZero() }

// InForceAt reports whether the ban drops traffic at t: not lifted by then
// and not expired. A ban whose start is still to come counts as in force, so
// that it is restored into the kernel, which starts it on time.
func (b Ban) InForceAt(t time.Time) bool {
	if !b.LiftedAt.IsZero() && !t.Before(b.LiftedAt) {
		return false
	}
	return b.Expires.IsZero() || t.Before(b.Expires)
}

func (b Ban) check() error {
	switch {
	case !b.Prefix.IsValid():
		return fmt.Errorf("ban has no valid prefix")
	case b.Prefix.Addr().Is4In6():
		return fmt.Errorf("ban of %s: write the IPv4 prefix, not its IPv6-mapped form", b.Prefix)
	case b.Prefix != b.Prefix.Masked():
		return fmt.Errorf("ban of %s: prefix has host bits set (want %s)", b.Prefix, b.Prefix.Masked())
	case b.Scope != ScopeAll && b.Scope != ScopeMail:
		return fmt.Errorf("ban of %s: unknown scope %q", b.Prefix, b.Scope)
	case !b.Origin.valid():
		return fmt.Errorf("ban of %s: unknown origin %q", b.Prefix, b.Origin)
	case b.Start.IsZero():
		return fmt.Errorf("ban of %s: no start time", b.Prefix)
	case !b.Expires.IsZero() && !b.Expires.After(b.Start):
		return fmt.Errorf("ban of %s: expires %s, not after its start %s", b.Prefix, b.Expires.UTC(), b.Start.UTC())
	}
	return nil
}

// Lift ends the bans of one prefix before they expire (`portcullis unban`,
// or the daemon finding a ban gone from the kernel). It lifts every ban of
// exactly Prefix in force at At, or, when Key is set, only the ban with that
// key. Lifting a ban that is already lifted or expired changes nothing, so a
// lift can be committed again after a crash.
type Lift struct {
	Key    string
	Prefix netip.Prefix
	At     time.Time
	Reason string
}

// Position is how far one log source has been read. Its fields are those of
// logs.Position, so the daemon converts with store.Position(p).
type Position struct {
	// Key names the stream, e.g. "file:/var/log/mail.log" or "journal:mail".
	Key string
	// Path is the name of the file that held the lines when it was read.
	Path string
	// Dev and Inode identify the file on its filesystem.
	Dev   uint64
	Inode uint64
	// Fingerprint tells a reused inode from the file that had it before.
	Fingerprint string
	// Offset is the byte offset just after the last accepted line.
	Offset int64
	// Line is the number of lines accepted.
	Line int64
	// Cursor is the journal's cursor of the last accepted entry.
	Cursor string
}

// Batch is what Commit writes in one transaction.
type Batch struct {
	Events    []logs.Event
	Bans      []Ban
	Lifts     []Lift
	Positions []Position
}

// addrBytes is the address as the database keeps it: 4 bytes for IPv4, 16
// for IPv6. An IPv4-mapped IPv6 address is folded to IPv4 first, so one
// client has one spelling.
func addrBytes(a netip.Addr) []byte {
	return a.Unmap().AsSlice()
}

func addrFromBytes(b []byte) (netip.Addr, error) {
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.Addr{}, fmt.Errorf("stored address has %d bytes, want 4 or 16", len(b))
	}
	return a, nil
}

// lastAddr is the last address in p (p masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bits := p.Bits()
	for i := range b {
		switch {
		case bits >= 8:
			bits -= 8
		case bits > 0:
			b[i] |= 0xff >> bits
			bits = 0
		default:
			b[i] = 0xff
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// nanos is t in the database's unit; the zero time is NULL.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(ns sql.NullInt64) time.Time {
	if !ns.Valid {
		return time.Time{}
	}
	return time.Unix(0, ns.Int64).UTC()
}
