package logs

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
)

// CustomRule is a rule from configuration: a regular expression (RE2
// syntax, so matching time is linear in the line whatever the pattern)
// with a named group "ip" for the client address and optionally "user".
// It runs on the message part of every line: after the timestamp and the
// syslog "host tag[pid]: " header, or the bare journal message.
//
// The pattern decides where the address is taken from. Anchor it (^ and
// fixed text before the ip group) so that text a client controls, such as
// a user name, cannot supply the address.
type CustomRule struct {
	Name    string
	Service string
	Kind    Kind
	Pattern string

	re   *regexp.Regexp
	ip   int // index of the ip group
	user int // index of the user group, -1 when absent
}

// knownKinds are the kinds a custom rule may report.
var knownKinds = []Kind{KindAuthFailure, KindAuthSuccess, KindProtocolAbuse, KindRelayDenied, KindDNSBL, KindInvalidUser}

// NewCustomRule checks and compiles a custom rule. It returns every problem
// found, each naming the rule and the field.
func NewCustomRule(name, service string, kind Kind, pattern string) (*CustomRule, error) {
	r := &CustomRule{Name: name, Service: service, Kind: kind, Pattern: pattern, ip: -1, user: -1}
	label := name
	if label == "" {
		label = "(unnamed)"
	}
	var errs []error
	if name == "" {
		errs = append(errs, fmt.Errorf("custom rule %s: name: empty", label))
	}
	if service == "" {
		errs = append(errs, fmt.Errorf("custom rule %s: service: empty", label))
	}
	if !slices.Contains(knownKinds, kind) {
		errs = append(errs, fmt.Errorf("custom rule %s: kind %q: unknown (known: %v)", label, kind, knownKinds))
	}
	re, err := regexp.Compile(pattern)
	switch {
	case pattern == "":
		errs = append(errs, fmt.Errorf("custom rule %s: pattern: empty", label))
	case err != nil:
		errs = append(errs, fmt.Errorf("custom rule %s: pattern: %w", label, err))
	default:
		for i, g := range re.SubexpNames() {
			switch g {
			case "":
			case "ip":
				if r.ip >= 0 {
					errs = append(errs, fmt.Errorf("custom rule %s: pattern: group \"ip\" appears twice", label))
				}
				r.ip = i
			case "user":
				r.user = i
			default:
				errs = append(errs, fmt.Errorf("custom rule %s: pattern: unknown group %q (only \"ip\" and \"user\")", label, g))
			}
		}
		if r.ip < 0 {
			errs = append(errs, fmt.Errorf("custom rule %s: pattern: no (?P<ip>...) group for the client address", label))
		}
		r.re = re
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// match runs the rule on a message. A match whose ip group is not an
// address yields nothing.
func (r *CustomRule) match(o *emitter, msg []byte) {
	m := r.re.FindSubmatchIndex(msg)
	if m == nil || m[2*r.ip] < 0 {
		return
	}
	addr, ok := parseAddr(msg[m[2*r.ip]:m[2*r.ip+1]])
	if !ok {
		return
	}
	var user []byte
	if r.user >= 0 && m[2*r.user] >= 0 {
		user = msg[m[2*r.user]:m[2*r.user+1]]
	}
	o.event(r.Name, r.Service, r.Kind, addr, user, 1)
}
