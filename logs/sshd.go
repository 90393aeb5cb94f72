package logs

import "bytes"

// OpenSSH rule names.
const (
	RuleSSHDFailed      = "sshd-failed-password"
	RuleSSHDInvalidUser = "sshd-invalid-user"
	RuleSSHDMaxAuth     = "sshd-max-auth-tries"
)

var sshdRules = []RuleInfo{
	{RuleSSHDFailed, RuleSetSSHD, ServiceSSH, KindAuthFailure},
	{RuleSSHDInvalidUser, RuleSetSSHD, ServiceSSH, KindInvalidUser},
	{RuleSSHDMaxAuth, RuleSetSSHD, ServiceSSH, KindProtocolAbuse},
}

// parseSSHD reads sshd (and OpenSSH 9.8's sshd-session). The user name sits
// between a fixed prefix and " from IP port N" and may itself hold
// " from 1.2.3.4 port 22", so the address is read from the end of the line.
//
// Each "Failed password" line is one attempt. "Invalid user" is logged once
// per connection before any attempt, and "maximum authentication attempts
// exceeded" after the attempts it sums up, so neither is an attempt itself:
// they get kinds of their own (see COUNTING.md).
func (p *Parser) parseSSHD(o *emitter, prog, msg []byte) {
	switch string(prog) {
	case "sshd", "sshd-session", "sshd-auth":
	default:
		return
	}
	if hasPrefix(msg, "error: ") {
		msg = msg[len("error: "):]
	}
	var rule string
	var kind Kind
	var rest []byte
	switch {
	case hasPrefix(msg, "Failed password for "):
		rule, kind, rest = RuleSSHDFailed, KindAuthFailure, msg[len("Failed password for "):]
	case hasPrefix(msg, "Failed keyboard-interactive/pam for "):
		rule, kind, rest = RuleSSHDFailed, KindAuthFailure, msg[len("Failed keyboard-interactive/pam for "):]
	case hasPrefix(msg, "Invalid user "):
		rule, kind, rest = RuleSSHDInvalidUser, KindInvalidUser, msg[len("Invalid user "):]
	case hasPrefix(msg, "maximum authentication attempts exceeded for "):
		rule, kind, rest = RuleSSHDMaxAuth, KindProtocolAbuse, msg[len("maximum authentication attempts exceeded for "):]
	default:
		return
	}
	if rule != RuleSSHDInvalidUser && hasPrefix(rest, "invalid user ") {
		rest = rest[len("invalid user "):]
	}
	// "Invalid user USER from ADDR port N" ends at the port: read from the
	// end. Attempts are "USER from ADDR port N ssh2[: INFO][ [preauth]]":
	// the user name before and the INFO after (key fingerprints, client
	// user names) can both be the client's, so the line is anchored on its
	// one " ssh2"; a second one means the client wrote it, and the line is
	// dropped rather than guessed at. Only made-up user names can hold
	// " ssh2", and their connections still yield sshd-invalid-user.
	tail := rest
	if rule != RuleSSHDInvalidUser {
		if bytes.Count(tail, []byte(" ssh2")) != 1 {
			o.skip(rule, "client text holds a second \" ssh2\": the address is ambiguous")
			return
		}
		j := bytes.Index(tail, []byte(" ssh2"))
		after := tail[j+len(" ssh2"):]
		if len(after) != 0 && string(after) != " [preauth]" && !hasPrefix(after, ": ") {
			return
		}
		tail = tail[:j]
	}
	i := bytes.LastIndexByte(tail, ' ')
	if i < 0 || !isNumber(tail[i+1:]) || bytes.IndexByte(tail[i+1:], '.') >= 0 {
		return
	}
	tail = tail[:i]
	if !bytes.HasSuffix(tail, []byte(" port")) {
		return
	}
	tail = tail[:len(tail)-len(" port")]
	i = bytes.LastIndexByte(tail, ' ')
	if i < 0 {
		return
	}
	addr, ok := parseAddr(tail[i+1:])
	if !ok {
		return
	}
	tail = tail[:i]
	var user []byte
	switch {
	case bytes.HasSuffix(tail, []byte(" from")):
		user = tail[:len(tail)-len(" from")]
	case string(tail) == "from":
		// "Invalid user  from ..." with an empty name
	default:
		return
	}
	o.event(rule, ServiceSSH, kind, addr, user, 1)
}
