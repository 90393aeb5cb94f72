package logs

import "bytes"

// Dovecot rule names.
const (
	RuleDovecotAuthFailed = "dovecot-auth-failed"    // login process: "(auth failed, N attempts ...)"
	RuleDovecotPlaintext  = "dovecot-plaintext-auth" // login process: plaintext auth while disabled
	RuleDovecotPassdb     = "dovecot-passdb-failed"  // auth process: Password mismatch, unknown user, pam
	RuleDovecotLogin      = "dovecot-login"          // login process: "Login: user=<...>"
	dovecotLoginServices  = "imap,pop3,submission,sieve"
)

var dovecotRules = []RuleInfo{
	{RuleDovecotAuthFailed, RuleSetDovecot, dovecotLoginServices, KindAuthFailure},
	{RuleDovecotPlaintext, RuleSetDovecot, dovecotLoginServices, KindAuthFailure},
	{RuleDovecotPassdb, RuleSetDovecot, ServiceDovecot, KindAuthFailure},
	{RuleDovecotLogin, RuleSetDovecot, dovecotLoginServices, KindAuthSuccess},
}

// parseDovecot reads Dovecot's login and auth processes. prog is "dovecot"
// for syslog and journal lines, where the process name starts the message
// ("imap-login: ..."), or the process itself for log_path and multilog
// lines ("imap-login", "auth", "auth-worker(123)").
func (p *Parser) parseDovecot(o *emitter, prog, msg []byte) {
	proc := prog
	if string(prog) == "dovecot" {
		// Old versions repeat the name: "dovecot[442]: dovecot: auth(default): ...".
		if hasPrefix(msg, "dovecot: ") {
			msg = msg[len("dovecot: "):]
		}
		i := index(msg, ": ")
		if i <= 0 {
			return
		}
		proc, msg = msg[:i], msg[i+2:]
	}
	msg = dovecotStripLevel(msg)
	if service := dovecotLoginService(proc); service != "" {
		p.dovecotLogin(o, service, msg)
		return
	}
	if dovecotAuthProcess(proc) {
		p.dovecotAuth(o, msg)
	}
}

// dovecotStripLevel drops the "Info: " a log_path line carries (syslog
// carries the level out of band).
func dovecotStripLevel(msg []byte) []byte {
	for _, l := range [...]string{"Info: ", "Warning: ", "Error: ", "Debug: "} {
		if hasPrefix(msg, l) {
			return msg[len(l):]
		}
	}
	return msg
}

func dovecotLoginService(proc []byte) string {
	switch string(proc) {
	case "imap-login":
		return ServiceIMAP
	case "pop3-login":
		return ServicePOP3
	case "submission-login":
		return ServiceSubmission
	case "managesieve-login":
		return ServiceSieve
	}
	return ""
}

// dovecotAuthProcess accepts "auth", "auth-worker", "auth(default)",
// "auth-worker(31326)" and the old "dovecot-auth".
func dovecotAuthProcess(proc []byte) bool {
	if i := bytes.IndexByte(proc, '('); i > 0 {
		proc = proc[:i]
	}
	switch string(proc) {
	case "auth", "auth-worker", "dovecot-auth":
		return true
	}
	return false
}

// dovecotLogin reads a login process line: "REASON: user=<U>, method=M,
// rip=IP, lip=IP, ..., session=<ID>". The key list has a fixed order
// (login_log_format_elements) and only the user name before rip= is the
// client's, so the address is the value of the last "rip=" in the line.
func (p *Parser) dovecotLogin(o *emitter, service string, msg []byte) {
	r := lastIndex(msg, "rip=")
	if r <= 0 || (msg[r-1] != ' ' && msg[r-1] != '<') {
		return
	}
	rest := msg[r+len("rip="):]
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		end = len(rest)
	}
	addr, ok := parseAddr(rest[:end])
	if !ok {
		return
	}
	after := rest[end:]
	// lip= always follows: without it the line may be cut inside the
	// address ("rip=2001:db8::" of "rip=2001:db8::1"), which would name
	// someone else.
	if !hasPrefix(after, ", lip=") {
		return
	}
	// The reason and keys before rip= (the user name may hold anything).
	head := msg[:r]
	userAt := index(head, "user=<")
	reasonEnd := userAt
	if reasonEnd < 0 {
		reasonEnd = len(head)
	}
	reason := head[:reasonEnd]
	var user []byte
	if userAt >= 0 {
		u := head[userAt+len("user=<"):]
		if j := bytes.LastIndexByte(u, '>'); j >= 0 {
			user = u[:j]
		}
	}
	session := dovecotSession(after)

	switch {
	case hasPrefix(reason, "Login: ") || hasPrefix(reason, "Logged in: "):
		// "Login: " up to 2.3, "Logged in: " from 2.4.
		o.event(RuleDovecotLogin, service, KindAuthSuccess, addr, user, 1)
	case index(reason, "(auth failed, ") >= 0:
		i := index(reason, "(auth failed, ") + len("(auth failed, ")
		n := 0
		for ; i < len(reason) && isDigit(reason[i]) && n < 1e6; i++ {
			n = n*10 + int(reason[i]-'0')
		}
		if !hasPrefix(reason[i:], " attempt") {
			return
		}
		if len(session) > 0 {
			n -= p.sessions.close(session, n)
			if n <= 0 {
				o.skip(RuleDovecotAuthFailed, "every attempt already counted from the auth process's lines")
				return
			}
		}
		o.event(RuleDovecotAuthFailed, service, KindAuthFailure, addr, user, n)
	case index(reason, "(tried to use disabled plaintext auth)") >= 0 ||
		index(reason, "(tried to use disallowed plaintext auth)") >= 0:
		o.event(RuleDovecotPlaintext, service, KindAuthFailure, addr, user, 1)
	}
}

// dovecotSession reads the "session=<ID>" among the keys after rip=.
func dovecotSession(after []byte) []byte {
	i := index(after, "session=<")
	if i < 0 {
		return nil
	}
	s := after[i+len("session=<"):]
	j := bytes.IndexByte(s, '>')
	if j <= 0 || !isSessionID(s[:j]) {
		return nil
	}
	return s[:j]
}

func isSessionID(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || isDigit(ch) || ch == '+' || ch == '/') {
			return false
		}
	}
	return true
}

// dovecotAuth reads an auth process line "DRIVER(USER,IP[,<SESSION>]):
// OUTCOME". The user name is the client's and may hold "(", "," or "): ",
// so the line is read from its fixed ends: the outcome after the last
// "): " must be one of the exact texts below (none of which holds "): "),
// and the address is the field before the session at the end of the
// parentheses.
//
// Only lines with a session id are counted: they come from a Dovecot login
// process, whose session the summary line closes (see COUNTING.md). Lines
// without one come from Postfix or Exim over the auth socket, which log
// the failure themselves.
func (p *Parser) dovecotAuth(o *emitter, msg []byte) {
	// Dovecot 2.3's auth-worker prefixes its requests with the connection:
	// "conn unix:auth-worker (pid=25008,uid=104): auth-worker<1>: pam(...": the
	// first ": auth-worker<N>: " is the server's (client text comes after).
	if hasPrefix(msg, "conn ") {
		i := index(msg, ": auth-worker<")
		if i < 0 {
			return
		}
		rest := msg[i+len(": auth-worker<"):]
		j := index(rest, ">: ")
		if j <= 0 || !isNumber(rest[:j]) {
			return
		}
		msg = rest[j+len(">: "):]
	}
	open := bytes.IndexByte(msg, '(')
	if open <= 0 || !isWord(msg[:open]) {
		return
	}
	close := lastIndex(msg, "): ")
	if close < open {
		return
	}
	outcome := msg[close+3:]
	switch {
	case string(outcome) == "Password mismatch",
		string(outcome) == "unknown user",
		hasPrefix(outcome, "pam_authenticate() failed: "):
	default:
		return
	}
	inner := msg[open+1 : close]
	if len(inner) < 3 || inner[len(inner)-1] != '>' {
		o.skip(RuleDovecotPassdb, "no session id: a request from Postfix or Exim, counted from their own line, or from a Dovecot login process, counted by its summary")
		return
	}
	lt := bytes.LastIndexByte(inner, '<')
	if lt < 2 || inner[lt-1] != ',' {
		return
	}
	session := inner[lt+1 : len(inner)-1]
	if !isSessionID(session) {
		return
	}
	inner = inner[:lt-1]
	comma := bytes.LastIndexByte(inner, ',')
	if comma < 0 {
		return
	}
	addr, ok := parseAddr(inner[comma+1:])
	if !ok {
		return
	}
	user := inner[:comma]
	if string(user) == "?" {
		user = nil
	}
	if !p.sessions.count(session) {
		o.skip(RuleDovecotPassdb, "the session's summary came first and counted this attempt")
		return
	}
	o.event(RuleDovecotPassdb, ServiceDovecot, KindAuthFailure, addr, user, 1)
}

// sessionLRU remembers, for the most recent Dovecot login sessions, how many
// failed attempts the auth process reported (and so were already emitted),
// and whether the login process's summary has closed the session.
type sessionLRU struct {
	max   int
	index map[string]int32 // session id -> slot
	slots []sessionSlot
	head  int32 // most recently used, -1 when empty
	tail  int32 // least recently used
}

type sessionSlot struct {
	id         string
	counted    int
	closed     bool
	prev, next int32
}

func newSessionLRU(max int) *sessionLRU {
	return &sessionLRU{max: max, index: make(map[string]int32, max), head: -1, tail: -1}
}

// count records one auth-process failure for the session; it returns false
// when the session's summary has already been seen (the attempt is in it).
func (l *sessionLRU) count(id []byte) bool {
	s := l.get(id)
	if s.closed {
		return false
	}
	s.counted++
	return true
}

// close records the summary line of a session that reports n attempts and
// returns how many of them were already emitted from auth-process lines.
func (l *sessionLRU) close(id []byte, n int) int {
	s := l.get(id)
	if s.closed {
		return n // a repeated summary: already counted in full
	}
	c := min(s.counted, n)
	s.closed, s.counted = true, n
	return c
}

// get returns the slot for id, creating it (and evicting the least
// recently used) when needed, and marks it most recently used.
func (l *sessionLRU) get(id []byte) *sessionSlot {
	if i, ok := l.index[string(id)]; ok {
		l.touch(i)
		return &l.slots[i]
	}
	var i int32
	if len(l.slots) < l.max {
		l.slots = append(l.slots, sessionSlot{})
		i = int32(len(l.slots) - 1)
	} else {
		i = l.tail
		l.unlink(i)
		delete(l.index, l.slots[i].id)
	}
	l.slots[i] = sessionSlot{id: string(id), prev: -1, next: -1}
	l.index[l.slots[i].id] = i
	l.pushFront(i)
	return &l.slots[i]
}

func (l *sessionLRU) touch(i int32) {
	if l.head == i {
		return
	}
	l.unlink(i)
	l.pushFront(i)
}

func (l *sessionLRU) unlink(i int32) {
	s := &l.slots[i]
	if s.prev >= 0 {
		l.slots[s.prev].next = s.next
	} else {
		l.head = s.next
	}
	if s.next >= 0 {
		l.slots[s.next].prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = -1, -1
}

func (l *sessionLRU) pushFront(i int32) {
	s := &l.slots[i]
	s.prev, s.next = -1, l.head
	if l.head >= 0 {
		l.slots[l.head].prev = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}
