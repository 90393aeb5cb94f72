package logs

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Built-in rule sets, by the software whose logs they read.
const (
	RuleSetPostfix = "postfix"
	RuleSetDovecot = "dovecot"
	RuleSetExim    = "exim"
	RuleSetSSHD    = "sshd"
)

// BuiltinRuleSets lists every built-in rule set.
func BuiltinRuleSets() []string {
	return []string{RuleSetPostfix, RuleSetDovecot, RuleSetExim, RuleSetSSHD}
}

// Services the built-in rules report.
const (
	ServiceSMTP        = "smtp"        // port 25, postfix/smtpd and postscreen
	ServiceSubmission  = "submission"  // port 587
	ServiceSubmissions = "submissions" // port 465, postfix "smtps"
	ServiceIMAP        = "imap"
	ServicePOP3        = "pop3"
	ServiceSieve       = "sieve" // managesieve
	ServiceSSH         = "ssh"
	// ServiceDovecot is reported for Dovecot auth-process lines, which name
	// no protocol: the attempt came through one of Dovecot's login services
	// (imap, pop3, submission or sieve) and the line does not say which.
	ServiceDovecot = "dovecot"
)

// MaxLineLength is the longest line the parser reads. No mail software
// writes a longer log line; a longer one is junk or an attack on the parser,
// and is skipped whole (no event) rather than read partly.
const MaxLineLength = 16 << 10

// DefaultSessions is how many Dovecot login sessions the parser remembers
// when ParserOptions.Sessions is zero (see COUNTING.md).
const DefaultSessions = 8192

// ParserOptions configures NewParser. The zero value enables every built-in
// rule set, no custom rules, the system clock and the local zone.
type ParserOptions struct {
	// RuleSets names the built-in rule sets to enable (RuleSetPostfix, ...).
	// Nil enables all of them; an empty non-nil slice enables none.
	RuleSets []string
	// Custom rules run on every line after the built-in ones. They are
	// checked as NewCustomRule checks them.
	Custom []CustomRule
	// Now is the reference clock for RFC 3164 stamps, which carry no year:
	// a stamp is placed in Now's year, or the year before if that would
	// put it more than a day in the future. Nil means time.Now. Replaying
	// old logs wants the time the log was written (its mtime).
	Now func() time.Time
	// Location is the zone of stamps that carry none. Nil means time.Local.
	Location *time.Location
	// Sessions bounds the Dovecot session memory used to count attempts
	// once (see COUNTING.md). Zero means DefaultSessions.
	Sessions int
	// OnSkip, when set, is called during Parse for a line a rule
	// recognizes but deliberately turns into no event (an attempt counted
	// from another line, a line made ambiguous by client text), with the
	// reason. "logs test" uses it to tell such lines from gaps.
	OnSkip func(rule, reason string)
}

// RuleInfo describes one rule for listings such as the CLI's.
type RuleInfo struct {
	Name    string // unique, e.g. "postfix-sasl-failed"
	Set     string // RuleSetPostfix, ..., or "custom"
	Service string // the service it reports; several separated by "," when the line decides
	Kind    Kind
}

// Parser turns log lines into Events. It keeps bounded state (the Dovecot
// sessions counted so far) and is for one goroutine at a time.
type Parser struct {
	clock    clock
	postfix  bool
	dovecot  bool
	exim     bool
	sshd     bool
	custom   []*CustomRule
	onSkip   func(rule, reason string)
	sessions *sessionLRU
	users    internTable
}

// NewParser returns a Parser with the given options, or every problem with
// them.
func NewParser(opts ParserOptions) (*Parser, error) {
	p := &Parser{
		clock:  clock{now: opts.Now, loc: opts.Location},
		onSkip: opts.OnSkip,
		users:  internTable{m: make(map[string]string)},
	}
	if p.clock.now == nil {
		p.clock.now = time.Now
	}
	if p.clock.loc == nil {
		p.clock.loc = time.Local
	}
	var errs []error
	sets := opts.RuleSets
	if sets == nil {
		sets = BuiltinRuleSets()
	}
	for _, s := range sets {
		switch s {
		case RuleSetPostfix:
			p.postfix = true
		case RuleSetDovecot:
			p.dovecot = true
		case RuleSetExim:
			p.exim = true
		case RuleSetSSHD:
			p.sshd = true
		default:
			errs = append(errs, fmt.Errorf("rule set %q: unknown (known: %v)", s, BuiltinRuleSets()))
		}
	}
	n := opts.Sessions
	if n < 0 {
		errs = append(errs, fmt.Errorf("sessions %d: must not be negative", n))
	}
	if n <= 0 {
		n = DefaultSessions
	}
	p.sessions = newSessionLRU(n)
	seen := make(map[string]bool)
	for _, r := range builtinRules {
		seen[r.Name] = true
	}
	for _, c := range opts.Custom {
		r, err := NewCustomRule(c.Name, c.Service, c.Kind, c.Pattern)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("custom rule %q: name already used", r.Name))
			continue
		}
		seen[r.Name] = true
		p.custom = append(p.custom, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Rules lists the enabled rules, built-in first.
func (p *Parser) Rules() []RuleInfo {
	var out []RuleInfo
	for _, r := range builtinRules {
		if p.setEnabled(r.Set) {
			out = append(out, r)
		}
	}
	for _, r := range p.custom {
		out = append(out, RuleInfo{Name: r.Name, Set: "custom", Service: r.Service, Kind: r.Kind})
	}
	return out
}

func (p *Parser) setEnabled(set string) bool {
	switch set {
	case RuleSetPostfix:
		return p.postfix
	case RuleSetDovecot:
		return p.dovecot
	case RuleSetExim:
		return p.exim
	case RuleSetSSHD:
		return p.sshd
	}
	return false
}

// header is a line split into its parts.
type header struct {
	time time.Time
	prog []byte // syslog tag without "[pid]:" ("postfix/smtpd"); empty when the line has none
	msg  []byte // what the program wrote
}

// Parse reads one line and calls emit for each event it stands for (usually
// none, at most a few). Event.Origin is the line's. A line longer than
// MaxLineLength or holding a NUL, CR or LF byte yields nothing: no mail
// software writes those, so such a line is corrupt or forged.
func (p *Parser) Parse(line Line, emit func(Event)) {
	text := line.Text
	if len(text) == 0 || len(text) > MaxLineLength {
		return
	}
	if bytes.IndexByte(text, 0) >= 0 || bytes.IndexByte(text, '\n') >= 0 || bytes.IndexByte(text, '\r') >= 0 {
		return
	}
	h := p.splitHeader(line)
	out := emitter{p: p, emit: emit, origin: line.Origin, time: h.time}
	prog := h.prog
	switch {
	case hasPrefix(prog, "postfix"):
		if p.postfix {
			p.parsePostfix(&out, prog, h.msg)
		}
	case hasPrefix(prog, "sshd"):
		if p.sshd {
			p.parseSSHD(&out, prog, h.msg)
		}
	case hasPrefix(prog, "exim") || len(prog) == 0:
		if p.exim {
			p.parseExim(&out, h.msg)
		}
	default:
		if p.dovecot {
			p.parseDovecot(&out, prog, h.msg)
		}
	}
	for _, r := range p.custom {
		r.match(&out, h.msg)
	}
}

// splitHeader finds the time, the program and the message. Journal lines
// (Ident set) are the bare message; file lines start with a timestamp and
// then either "host tag[pid]: " (syslog), "tag: " (Dovecot's log_path,
// multilog) or nothing (Exim's own log).
func (p *Parser) splitHeader(line Line) header {
	h := header{time: line.Time, msg: line.Text}
	if line.Ident != "" {
		h.prog = unsafeBytes(line.Ident)
		if h.time.IsZero() {
			if t, rest, ok := p.clock.parseTimestamp(h.msg); ok {
				h.time, h.msg = t, rest
			}
		}
	} else {
		if t, rest, ok := p.clock.parseTimestamp(h.msg); ok {
			if h.time.IsZero() {
				h.time = t
			}
			h.msg = rest
		}
		h.prog, h.msg = splitTag(h.msg)
	}
	if h.time.IsZero() {
		h.time = p.clock.now()
	}
	return h
}

// splitTag splits "host tag[pid]: msg" or "tag[pid]: msg" into the tag and
// the message; with no tag it returns msg unchanged.
func splitTag(b []byte) (tag, msg []byte) {
	tok, rest, ok := cutSpace(b)
	if !ok {
		return nil, b
	}
	if t, ok := tagOf(tok); ok {
		return t, rest
	}
	tok2, rest2, ok := cutSpace(rest)
	if !ok {
		return nil, b
	}
	if t, ok := tagOf(tok2); ok && validHost(tok) {
		return t, rest2
	}
	return nil, b
}

// tagOf reads a syslog tag token "name[pid]:" or "name:" and returns name.
func tagOf(tok []byte) ([]byte, bool) {
	if len(tok) < 2 || tok[len(tok)-1] != ':' {
		return nil, false
	}
	tok = tok[:len(tok)-1]
	if tok[len(tok)-1] == ']' {
		i := bytes.LastIndexByte(tok, '[')
		if i <= 0 {
			return nil, false
		}
		for _, ch := range tok[i+1 : len(tok)-1] {
			if !isDigit(ch) {
				return nil, false
			}
		}
		tok = tok[:i]
	}
	for _, ch := range tok {
		if !isTagByte(ch) {
			return nil, false
		}
	}
	return tok, true
}

func isTagByte(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || isDigit(ch) ||
		ch == '/' || ch == '-' || ch == '_' || ch == '.' || ch == '(' || ch == ')'
}

func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || isDigit(ch) || ch == '-' || ch == '.' || ch == '_' || ch == ':') {
			return false
		}
	}
	return true
}

// cutSpace splits b at its first space.
func cutSpace(b []byte) (before, after []byte, ok bool) {
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		return b, nil, false
	}
	return b[:i], b[i+1:], true
}

// emitter fills in what every event from one line shares.
type emitter struct {
	p      *Parser
	emit   func(Event)
	origin Origin
	time   time.Time
}

// event emits one event. user is copied (interned) only here, so lines
// that produce nothing cost no allocation.
func (o *emitter) event(rule, service string, kind Kind, addr netip.Addr, user []byte, attempts int) {
	if attempts < 1 || !addr.IsValid() {
		return
	}
	o.emit(Event{
		Time:     o.time,
		Service:  service,
		Kind:     kind,
		Addr:     addr,
		User:     o.p.users.get(user),
		Attempts: attempts,
		Rule:     rule,
		Origin:   o.origin,
	})
}

// skip reports a recognized line that yields no event on purpose.
func (o *emitter) skip(rule, reason string) {
	if o.p.onSkip != nil {
		o.p.onSkip(rule, reason)
	}
}

// parseAddr reads an IP address written by the mail software: IPv4 dotted
// quad, or IPv6 (optionally with Postfix's "IPv6:" prefix). IPv4-mapped IPv6
// is folded to IPv4; zones and anything else are refused.
func parseAddr(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > 45+5 {
		return netip.Addr{}, false
	}
	if hasPrefix(b, "IPv6:") {
		b = b[5:]
	}
	if a, ok := parseIPv4(b); ok {
		return a, true
	}
	for _, ch := range b {
		if !(isDigit(ch) || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F' || ch == ':' || ch == '.') {
			return netip.Addr{}, false
		}
	}
	// The bytes are hex, colons and dots only, so the parse cannot see a
	// zone and keeps no part of its argument: a string view of the bytes,
	// without a copy, is safe here and keeps IPv6 lines allocation-free.
	a, err := netip.ParseAddr(unsafe.String(&b[0], len(b)))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parseIPv4 reads a dotted quad with no leading zeros.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var out [4]byte
	part, val, digitsSeen := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digitsSeen == 0 || part > 3 {
				return netip.Addr{}, false
			}
			out[part] = byte(val)
			part++
			val, digitsSeen = 0, 0
			continue
		}
		ch := b[i]
		if !isDigit(ch) {
			return netip.Addr{}, false
		}
		if digitsSeen > 0 && val == 0 {
			return netip.Addr{}, false // leading zero: octal in some parsers, refused
		}
		val = val*10 + int(ch-'0')
		digitsSeen++
		if val > 255 {
			return netip.Addr{}, false
		}
	}
	if part != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(out), true
}

// bracketed reads "[ADDR]" at the start of b and returns the address and
// what follows the closing bracket.
func bracketed(b []byte) (netip.Addr, []byte, bool) {
	if len(b) < 3 || b[0] != '[' {
		return netip.Addr{}, nil, false
	}
	j := bytes.IndexByte(b, ']')
	if j < 0 {
		return netip.Addr{}, nil, false
	}
	a, ok := parseAddr(b[1:j])
	if !ok {
		return netip.Addr{}, nil, false
	}
	return a, b[j+1:], true
}

// internTable hands out one string per distinct user name, so repeated
// names (the common case) cost no allocation. It stops growing at a fixed
// size and then allocates for new names instead: bounded memory whatever
// names attackers try.
type internTable struct {
	m map[string]string
}

const maxInterned = 4096

func (t *internTable) get(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := t.m[string(b)]; ok {
		return s
	}
	var s string
	if utf8.Valid(b) {
		s = string(b)
	} else {
		s = string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
	}
	if len(t.m) < maxInterned && len(b) <= 256 {
		t.m[string(b)] = s
	}
	return s
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

// unsafeBytes views a string as bytes without copying, for bytes.Index
// and friends on constant needles; the result must never be written.
func unsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

func index(b []byte, s string) int {
	return bytes.Index(b, unsafeBytes(s))
}

func lastIndex(b []byte, s string) int {
	return bytes.LastIndex(b, unsafeBytes(s))
}

// builtinRules lists every built-in rule, for Rules.
var builtinRules = slices.Concat(postfixRules, dovecotRules, eximRules, sshdRules)
