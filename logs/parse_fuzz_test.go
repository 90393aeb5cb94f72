package logs

import (
	"strings"
	"testing"
)

// addrAnchor is the text each rule expects right before the address.
func addrAnchor(rule string) string {
	switch {
	case rule == RuleDovecotPassdb:
		return ","
	case strings.HasPrefix(rule, "dovecot-"):
		return "rip="
	case strings.HasPrefix(rule, "sshd-"):
		return "from "
	default: // postfix, exim: [addr]
		return "["
	}
}

// addrAfterAnchor reports whether text holds anchor immediately followed by
// a whole address equal to want.
func addrAfterAnchor(text, anchor string, want func(string) bool) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], anchor)
		if j < 0 {
			return false
		}
		start := i + j + len(anchor)
		end := start
		for end < len(text) && (isDigit(text[end]) || text[end] >= 'a' && text[end] <= 'f' || text[end] >= 'A' && text[end] <= 'F' ||
			text[end] == ':' || text[end] == '.' || text[end] == 'I' || text[end] == 'P' || text[end] == 'v' || text[end] == '6') {
			end++
		}
		// Postscreen and Exim follow the bracket with ":port".
		for k := end; k > start; k-- {
			if want(text[start:k]) {
				return true
			}
		}
		i = start
	}
}

// FuzzParse checks the parser's invariants on arbitrary input: no panic,
// and every event has at least one attempt, a valid zone-less address in
// canonical (unmapped) form that the input writes whole right after the
// place its rule reads it from, and a known rule with that rule's kind.
func FuzzParse(f *testing.F) {
	for _, cl := range corpusLines(f) {
		f.Add(cl.text, cl.ident)
	}
	kinds := map[string]Kind{}
	for _, r := range builtinRules {
		kinds[r.Name] = r.Kind
	}
	// One parser across inputs, as in the daemon: session state must not
	// break the invariants either.
	p := newTestParser(f, ParserOptions{Sessions: 64})
	f.Fuzz(func(t *testing.T, text, ident string) {
		p.Parse(Line{Text: []byte(text), Ident: ident}, func(e Event) {
			if e.Attempts < 1 {
				t.Errorf("attempts %d: %q", e.Attempts, text)
			}
			if !e.Addr.IsValid() || e.Addr.Zone() != "" || e.Addr.Is4In6() {
				t.Errorf("address %v: %q", e.Addr, text)
			}
			kind, ok := kinds[e.Rule]
			if !ok || kind != e.Kind {
				t.Errorf("rule %q kind %q: %q", e.Rule, e.Kind, text)
			}
			same := func(s string) bool { a, ok := parseAddr([]byte(s)); return ok && a == e.Addr }
			if !addrAfterAnchor(text, addrAnchor(e.Rule), same) {
				t.Errorf("%s: address %s not after %q in %q", e.Rule, e.Addr, addrAnchor(e.Rule), text)
			}
		})
	})
}
