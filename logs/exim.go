package logs

import (
	"bytes"
	"net/netip"
)

// Exim rule names.
const (
	RuleEximAuthFailed  = "exim-authenticator-failed"
	RuleEximSyncError   = "exim-sync-error"
	RuleEximRelayDenied = "exim-relay-denied"
	eximServices        = ServiceSMTP + "," + ServiceSubmission + "," + ServiceSubmissions
)

var eximRules = []RuleInfo{
	{RuleEximAuthFailed, RuleSetExim, eximServices, KindAuthFailure},
	{RuleEximSyncError, RuleSetExim, eximServices, KindProtocolAbuse},
	{RuleEximRelayDenied, RuleSetExim, eximServices, KindRelayDenied},
}

// parseExim reads Exim 4's main log (after its own timestamp) or its syslog
// messages. Exim writes the client as "[name ][(helo) ][addr]:port" and its
// own address as " I=[addr]:port"; the HELO name is the client's and may be
// an address literal, so the client address is the bracketed field after
// it, read by position.
func (p *Parser) parseExim(o *emitter, msg []byte) {
	// "[pid] " when log_selector has +pid.
	if len(msg) > 2 && msg[0] == '[' {
		if i := bytes.IndexByte(msg, ']'); i > 1 && isNumber(msg[1:i]) && i+1 < len(msg) && msg[i+1] == ' ' {
			msg = msg[i+2:]
		}
	}
	switch {
	case index(msg, " authenticator failed for ") >= 0:
		// DRIVER authenticator failed for HOST: 535 Incorrect authentication data (set_id=USER)
		driver, rest, ok := cutSpace(msg)
		if !ok || !isWord(driver) || !hasPrefix(rest, "authenticator failed for ") {
			return
		}
		addr, service, rest, ok := eximHost(rest[len("authenticator failed for "):])
		if !ok || !hasPrefix(rest, ": 535 ") {
			return
		}
		var user []byte
		if i := index(rest, " (set_id="); i >= 0 {
			user = rest[i+len(" (set_id="):]
			if j := bytes.LastIndexByte(user, ')'); j >= 0 {
				user = user[:j]
			}
		}
		o.event(RuleEximAuthFailed, service, KindAuthFailure, addr, user, 1)
	case hasPrefix(msg, "SMTP protocol synchronization error ("):
		rest := msg[len("SMTP protocol synchronization error ("):]
		switch {
		case hasPrefix(rest, "input sent without waiting for greeting): rejected connection from H="):
			// ... rejected connection from H=[addr]:port I=[addr]:port input="..."
			rest = rest[len("input sent without waiting for greeting): rejected connection from H="):]
			if addr, service, _, ok := eximHost(rest); ok {
				o.event(RuleEximSyncError, service, KindProtocolAbuse, addr, nil, 1)
			}
		case hasPrefix(rest, "next input sent too soon: pipelining was not advertised): rejected \""):
			// ... rejected "CMD" H=host [addr]:port I=[addr]:port next input="..."
			// The command and the next input are the client's and both
			// sides of H=, so the line counts only when it holds one " H=".
			if bytes.Count(msg, []byte(" H=")) != 1 {
				o.skip(RuleEximSyncError, "client text holds a second \" H=\": the address is ambiguous")
				return
			}
			i := index(rest, "\" H=")
			if i < 0 {
				return
			}
			if addr, service, _, ok := eximHost(rest[i+len("\" H="):]); ok {
				o.event(RuleEximSyncError, service, KindProtocolAbuse, addr, nil, 1)
			}
		}
	case hasPrefix(msg, "H="):
		// H=host [addr]:port I=[addr]:port F=<sender> rejected RCPT <rcpt>: relay not permitted
		if !bytes.HasSuffix(msg, []byte(": relay not permitted")) {
			return
		}
		addr, service, rest, ok := eximHost(msg[len("H="):])
		if !ok || index(rest, " rejected RCPT ") < 0 {
			return
		}
		o.event(RuleEximRelayDenied, service, KindRelayDenied, addr, nil, 1)
	}
}

// eximHost reads Exim's host field "[name ][(helo) ][addr][:port][ I=[addr]:port]"
// and returns the client address, the service named by the local port (smtp
// when Exim does not log it) and the rest.
func eximHost(b []byte) (netip.Addr, string, []byte, bool) {
	// An optional verified host name: no spaces, brackets or parentheses.
	if len(b) > 0 && b[0] != '(' && b[0] != '[' {
		tok, rest, ok := cutSpace(b)
		if !ok || !validHost(tok) {
			return netip.Addr{}, "", nil, false
		}
		b = rest
	}
	// An optional HELO in parentheses; Exim refuses HELO names with spaces
	// or parentheses, so it ends at the first ") ".
	if len(b) > 0 && b[0] == '(' {
		i := index(b, ") ")
		if i < 0 || bytes.IndexByte(b[1:i], '(') >= 0 || bytes.IndexByte(b[1:i], ' ') >= 0 {
			return netip.Addr{}, "", nil, false
		}
		b = b[i+2:]
	}
	addr, rest, ok := bracketed(b)
	if !ok {
		return netip.Addr{}, "", nil, false
	}
	rest = skipPort(rest)
	service := ServiceSMTP
	if hasPrefix(rest, " I=[") {
		if j := bytes.IndexByte(rest, ']'); j > 0 && j+1 < len(rest) && rest[j+1] == ':' {
			port := rest[j+2:]
			k := 0
			for k < len(port) && isDigit(port[k]) {
				k++
			}
			service = serviceByPort(port[:k])
			rest = port[k:]
		}
	}
	return addr, service, rest, true
}

func skipPort(b []byte) []byte {
	if len(b) >= 2 && b[0] == ':' && isDigit(b[1]) {
		i := 1
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		return b[i:]
	}
	return b
}

// serviceByPort names the mail service on a well-known port.
func serviceByPort(port []byte) string {
	switch string(port) {
	case "587":
		return ServiceSubmission
	case "465":
		return ServiceSubmissions
	}
	return ServiceSMTP
}
