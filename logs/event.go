// Package logs turns what mail software writes to its logs into typed events.
//
// Sources follow log files and the journal and hand over raw lines with the
// place each came from; parsers turn lines into Events. Intake parses: it
// never decides or enforces (that is verdict's and the daemon's job).
package logs

import (
	"net/netip"
	"time"
)

// Kind says what a client did.
type Kind string

// The kinds of event the parsers produce.
const (
	KindAuthFailure   Kind = "auth_failure"   // one or more failed logins
	KindAuthSuccess   Kind = "auth_success"   // a successful login
	KindProtocolAbuse Kind = "protocol_abuse" // pipelining, pregreet, too many errors, sync errors
	KindRelayDenied   Kind = "relay_denied"   // an unauthenticated client tried to relay
	KindDNSBL         Kind = "dnsbl"          // postscreen found the client on a DNS blocklist
	// KindInvalidUser: the client named an account that does not exist
	// (sshd's "Invalid user"); logged once per connection, before and apart
	// from the attempts, so it is not an attempt itself.
	KindInvalidUser Kind = "invalid_user"
)

// Origin is where a line came from: a file and line number, or a journal cursor.
type Origin struct {
	File   string `json:"file,omitempty"`
	Line   int64  `json:"line,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// Line is one log line as a source read it.
type Line struct {
	// Text is the line without its line ending.
	Text []byte
	// Time is set when the source knows when the line was written (the
	// journal does); otherwise zero, and the parser reads the line's own
	// timestamp.
	Time time.Time
	// Ident is the syslog identifier when the source knows it (the journal's
	// SYSLOG_IDENTIFIER); empty for lines read from files.
	Ident string
	// Origin says where the line came from.
	Origin Origin
}

// Event is one thing a client did, as the mail software logged it.
type Event struct {
	Time     time.Time
	Service  string // smtp, submission, submissions, imap, pop3, sieve, ssh, ...
	Kind     Kind
	Addr     netip.Addr // the client's address; IPv4-mapped IPv6 folded to IPv4
	User     string     // the login name when the software logged one
	Attempts int        // how many attempts this line stands for (>= 1)
	Rule     string     // the name of the rule that matched
	Origin   Origin
	// Country is the client's ISO 3166 code when a geo database places
	// it; the daemon fills it in, parsers leave it empty.
	Country string
}
