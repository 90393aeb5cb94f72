package logs

import (
	"bytes"
	"net/netip"
)

// Postfix rule names.
const (
	RulePostfixSASLFailed  = "postfix-sasl-failed"
	RulePostfixSASLLogin   = "postfix-sasl-login"
	RulePostfixAuthErrors  = "postfix-too-many-errors-after-auth"
	RulePostfixAuthLost    = "postfix-lost-connection-after-auth"
	RulePostfixRelayDenied = "postfix-relay-denied"
	RulePostfixPipelining  = "postfix-improper-pipelining"
	RulePostfixPregreet    = "postfix-postscreen-pregreet"
	RulePostfixDNSBL       = "postfix-postscreen-dnsbl"
	RulePostfixHangup      = "postfix-postscreen-hangup"
	postfixSMTPDServices   = ServiceSMTP + "," + ServiceSubmission + "," + ServiceSubmissions
	postfixLostAuthServer  = "Connection lost to authentication server"
)

var postfixRules = []RuleInfo{
	{RulePostfixSASLFailed, RuleSetPostfix, postfixSMTPDServices, KindAuthFailure},
	{RulePostfixSASLLogin, RuleSetPostfix, postfixSMTPDServices, KindAuthSuccess},
	{RulePostfixAuthErrors, RuleSetPostfix, postfixSMTPDServices, KindProtocolAbuse},
	{RulePostfixAuthLost, RuleSetPostfix, postfixSMTPDServices, KindProtocolAbuse},
	{RulePostfixRelayDenied, RuleSetPostfix, postfixSMTPDServices, KindRelayDenied},
	{RulePostfixPipelining, RuleSetPostfix, postfixSMTPDServices, KindProtocolAbuse},
	{RulePostfixPregreet, RuleSetPostfix, ServiceSMTP, KindProtocolAbuse},
	{RulePostfixDNSBL, RuleSetPostfix, ServiceSMTP, KindDNSBL},
	{RulePostfixHangup, RuleSetPostfix, ServiceSMTP, KindProtocolAbuse},
}

// parsePostfix reads what Postfix's smtpd and postscreen write. The tag is
// "postfix[-INSTANCE][/SERVICE]/DAEMON": SERVICE is the master.cf service
// name set through syslog_name (submission, smtps, ...), DAEMON the program.
//
// Every rule reads the client address only from the place smtpd puts it,
// "name[addr]" right after a fixed prefix at the start of the message,
// never from later text (HELO names, addresses, user names, the client's
// pipelined input), which the client chooses.
func (p *Parser) parsePostfix(o *emitter, prog, msg []byte) {
	slash := bytes.LastIndexByte(prog, '/')
	if slash < 0 {
		return
	}
	daemon := prog[slash+1:]
	switch string(daemon) {
	case "smtpd":
		p.postfixSMTPD(o, postfixService(prog[:slash]), msg)
	case "postscreen":
		postfixPostscreen(o, msg)
	}
}

// postfixService maps "postfix/submission" (the tag without its daemon) to
// a service by its master.cf name: submission or 587, smtps, submissions or
// 465; anything else is plain smtp.
func postfixService(b []byte) string {
	slash := bytes.IndexByte(b, '/')
	if slash < 0 {
		return ServiceSMTP
	}
	name := b[slash+1:]
	switch {
	case index(name, "smtps") >= 0 || index(name, "submissions") >= 0 || string(name) == "465":
		return ServiceSubmissions
	case index(name, "submission") >= 0 || string(name) == "587":
		return ServiceSubmission
	}
	return ServiceSMTP
}

func (p *Parser) postfixSMTPD(o *emitter, service string, msg []byte) {
	switch {
	case hasPrefix(msg, "warning: "):
		// warning: name[addr]: SASL MECH authentication failed: REASON[, sasl_username=USER]
		addr, rest, ok := postfixClient(msg[len("warning: "):])
		if !ok || !hasPrefix(rest, ": SASL ") {
			return
		}
		rest = rest[len(": SASL "):]
		mech, rest, ok := cutSpace(rest)
		if !ok || len(mech) == 0 || !hasPrefix(rest, "authentication failed") {
			return
		}
		rest = rest[len("authentication failed"):]
		if hasPrefix(rest, ": ") {
			rest = rest[2:]
		} else if len(rest) != 0 {
			return
		}
		// Postfix lost its SASL server: the client did nothing wrong.
		if hasPrefix(rest, postfixLostAuthServer) {
			o.skip(RulePostfixSASLFailed, "Postfix lost its SASL server: not the client's doing")
			return
		}
		var user []byte
		if i := index(rest, ", sasl_username="); i >= 0 {
			user = rest[i+len(", sasl_username="):]
			if string(user) == "(unavailable)" {
				user = nil
			}
		}
		o.event(RulePostfixSASLFailed, service, KindAuthFailure, addr, user, 1)
	case hasPrefix(msg, "too many errors after AUTH from "):
		if addr, rest, ok := postfixClient(msg[len("too many errors after AUTH from "):]); ok && postfixEnd(rest) {
			o.event(RulePostfixAuthErrors, service, KindProtocolAbuse, addr, nil, 1)
		}
	case hasPrefix(msg, "lost connection after AUTH from "):
		if addr, rest, ok := postfixClient(msg[len("lost connection after AUTH from "):]); ok && postfixEnd(rest) {
			o.event(RulePostfixAuthLost, service, KindProtocolAbuse, addr, nil, 1)
		}
	case hasPrefix(msg, "improper command pipelining after "):
		// improper command pipelining after VERB from name[addr]: INPUT
		rest := msg[len("improper command pipelining after "):]
		verb, rest, ok := cutSpace(rest)
		if !ok || !isWord(verb) || !hasPrefix(rest, "from ") {
			return
		}
		if addr, rest, ok := postfixClient(rest[len("from "):]); ok && (len(rest) == 0 || rest[0] == ':') {
			o.event(RulePostfixPipelining, service, KindProtocolAbuse, addr, nil, 1)
		}
	default:
		// QUEUEID: ... or NOQUEUE: ...
		qid, rest, ok := postfixQueueID(msg)
		if !ok {
			return
		}
		switch {
		case hasPrefix(rest, "reject: RCPT from "):
			addr, rest, ok := postfixClient(rest[len("reject: RCPT from "):])
			if !ok || !hasPrefix(rest, ": ") {
				return
			}
			// The reply text follows: "554 5.7.1 <rcpt>: Relay access
			// denied; from=<...> ...". The recipient is the client's and
			// may hold the phrase itself; that misfiles the client's own
			// reject at worst and never names another address.
			if postfixReplyCode(rest[2:]) && index(rest, ">: Relay access denied;") >= 0 {
				o.event(RulePostfixRelayDenied, service, KindRelayDenied, addr, nil, 1)
			}
		case string(qid) != "NOQUEUE" && hasPrefix(rest, "client="):
			// QUEUEID: client=name[addr], sasl_method=M, sasl_username=USER
			addr, rest, ok := postfixClient(rest[len("client="):])
			if !ok || !hasPrefix(rest, ", sasl_method=") {
				return
			}
			rest = rest[len(", sasl_method="):]
			i := index(rest, ", sasl_username=")
			if i < 0 || !isWord(rest[:i]) {
				return
			}
			user := rest[i+len(", sasl_username="):]
			// Postfix may append ", sasl_sender=..." after the user name;
			// the name itself may hold that text too, so it is left as is.
			o.event(RulePostfixSASLLogin, service, KindAuthSuccess, addr, user, 1)
		}
	}
}

// postfixPostscreen reads postscreen's PREGREET, DNSBL and HANGUP lines;
// the client is "[addr]:port".
func postfixPostscreen(o *emitter, msg []byte) {
	var rule string
	var kind Kind
	var rest []byte
	switch {
	case hasPrefix(msg, "PREGREET "):
		// PREGREET 23 after 0 from [198.18.7.2]:55376: EHLO ...
		rule, kind = RulePostfixPregreet, KindProtocolAbuse
		rest = skipNumberAfter(msg[len("PREGREET "):], "from ")
	case hasPrefix(msg, "HANGUP after "):
		// HANGUP after 0.5 from [198.18.7.2]:55380 in tests before SMTP handshake
		rule, kind = RulePostfixHangup, KindProtocolAbuse
		rest = skipNumberAfter(msg[len("HANGUP "):], "from ")
	case hasPrefix(msg, "DNSBL rank "):
		// DNSBL rank 3 for [198.18.7.2]:55376
		rule, kind = RulePostfixDNSBL, KindDNSBL
		num, r, ok := cutSpace(msg[len("DNSBL rank "):])
		if !ok || !isNumber(num) || !hasPrefix(r, "for ") {
			return
		}
		rest = r[len("for "):]
	default:
		return
	}
	addr, rest, ok := bracketed(rest)
	if !ok || len(rest) < 2 || rest[0] != ':' || !isDigit(rest[1]) {
		return
	}
	i := 1
	for i < len(rest) && isDigit(rest[i]) {
		i++
	}
	rest = rest[i:]
	switch rule {
	case RulePostfixDNSBL:
		if len(rest) != 0 {
			return
		}
	case RulePostfixPregreet:
		if !hasPrefix(rest, ": ") && len(rest) != 0 {
			return
		}
	case RulePostfixHangup:
		if !hasPrefix(rest, " in ") {
			return
		}
	}
	o.event(rule, ServiceSMTP, kind, addr, nil, 1)
}

// skipNumberAfter reads "N after T " (PREGREET) or "after T " (HANGUP), then
// the keyword, and returns what follows it.
func skipNumberAfter(b []byte, keyword string) []byte {
	if tok, rest, ok := cutSpace(b); ok && isNumber(tok) {
		b = rest
	}
	if !hasPrefix(b, "after ") {
		return nil
	}
	t, rest, ok := cutSpace(b[len("after "):])
	if !ok || !isNumber(t) || !hasPrefix(rest, keyword) {
		return nil
	}
	return rest[len(keyword):]
}

// postfixClient reads smtpd's "name[addr]" (with ":port" when
// smtpd_client_port_logging is on). Postfix logs a verified host name or
// "unknown", never client text, so the name is checked to be a host name.
func postfixClient(b []byte) (netip.Addr, []byte, bool) {
	i := 0
	for i < len(b) && b[i] != '[' {
		ch := b[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || isDigit(ch) || ch == '-' || ch == '.' || ch == '_') {
			return netip.Addr{}, nil, false
		}
		i++
	}
	if i == 0 {
		return netip.Addr{}, nil, false
	}
	addr, rest, ok := bracketed(b[i:])
	if !ok {
		return netip.Addr{}, nil, false
	}
	if len(rest) >= 2 && rest[0] == ':' && isDigit(rest[1]) {
		j := 1
		for j < len(rest) && isDigit(rest[j]) {
			j++
		}
		rest = rest[j:]
	}
	return addr, rest, true
}

// postfixEnd accepts the end of a "... from name[addr]" line: nothing, or
// the ": " some versions add before detail.
func postfixEnd(rest []byte) bool {
	return len(rest) == 0 || hasPrefix(rest, ": ")
}

// postfixQueueID reads "QUEUEID: " or "NOQUEUE: ".
func postfixQueueID(b []byte) (qid, rest []byte, ok bool) {
	i := 0
	for i < len(b) && i < 32 && (isDigit(b[i]) || b[i] >= 'A' && b[i] <= 'Z' || b[i] >= 'a' && b[i] <= 'z') {
		i++
	}
	if i < 5 || !hasPrefix(b[i:], ": ") {
		return nil, nil, false
	}
	return b[:i], b[i+2:], true
}

// postfixReplyCode checks for "NNN " at the start of a reject's reply.
func postfixReplyCode(b []byte) bool {
	return len(b) > 4 && (b[0] == '4' || b[0] == '5') && isDigit(b[1]) && isDigit(b[2]) && b[3] == ' '
}

func isNumber(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	dots := 0
	for _, ch := range b {
		if ch == '.' {
			dots++
			continue
		}
		if !isDigit(ch) {
			return false
		}
	}
	return dots <= 1 && isDigit(b[0])
}

func isWord(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || isDigit(ch) || ch == '-' || ch == '_') {
			return false
		}
	}
	return true
}
