package logs

import (
	"net/netip"
	"strings"
	"testing"
)

func TestNewCustomRuleReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name          string
		rule          CustomRule
		wantFragments []string
	}{
		{"everything wrong", CustomRule{Kind: "bogus", Pattern: "("}, []string{"name: empty", "service: empty", `kind "bogus"`, "pattern: error parsing regexp"}},
		{"no ip group", CustomRule{Name: "r", Service: "imap", Kind: KindAuthFailure, Pattern: `failed from (\S+)`}, []string{"no (?P<ip>...) group"}},
		{"unknown group", CustomRule{Name: "r", Service: "imap", Kind: KindAuthFailure, Pattern: `(?P<ip>\S+) (?P<host>\S+)`}, []string{`unknown group "host"`}},
		{"ip twice", CustomRule{Name: "r", Service: "imap", Kind: KindAuthFailure, Pattern: `(?P<ip>\S+)|x(?P<ip>\S+)`}, []string{`"ip" appears twice`}},
		{"empty pattern", CustomRule{Name: "r", Service: "imap", Kind: KindAuthFailure}, []string{"pattern: empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCustomRule(tt.rule.Name, tt.rule.Service, tt.rule.Kind, tt.rule.Pattern)
			if err == nil {
				t.Fatal("no error")
			}
			for _, f := range tt.wantFragments {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("error %q lacks %q", err, f)
				}
			}
		})
	}
}

func TestCustomRuleMatches(t *testing.T) {
	// A Roundcube-style line (journal shape); the pattern is anchored so
	// the user name cannot supply the address.
	r, err := NewCustomRule("webmail-failed", "https", KindAuthFailure,
		`^Failed login for (?P<user>.*) from (?P<ip>[0-9a-fA-F.:]+) in session \w+ \(error: \d+\)$`)
	if err != nil {
		t.Fatal(err)
	}
	p := newTestParser(t, ParserOptions{Custom: []CustomRule{*r}})
	got := parseAll(p, Line{Ident: "roundcube", Text: []byte("Failed login for alice from 198.18.7.2 in session abc (error: 0)")})
	if len(got) != 1 || got[0].Addr != netip.MustParseAddr("198.18.7.2") || got[0].User != "alice" ||
		got[0].Rule != "webmail-failed" || got[0].Service != "https" || got[0].Kind != KindAuthFailure || got[0].Attempts != 1 {
		t.Errorf("got %+v", got)
	}
	// An ip group that is not an address yields nothing.
	if got := parseAll(p, Line{Ident: "roundcube", Text: []byte("Failed login for alice from ::: in session abc (error: 0)")}); len(got) != 0 {
		t.Errorf("bad address: got %+v", got)
	}
	// From a file: the pattern sees the message after the syslog header.
	got = parseAll(p, Line{Text: []byte("Dec 04 21:58:42 mx roundcube[1]: Failed login for bob from fd00:7::2 in session abc (error: 0)")})
	if len(got) != 1 || got[0].Addr != netip.MustParseAddr("fd00:7::2") {
		t.Errorf("file line: got %+v", got)
	}
	// A custom rule may not take a built-in rule's name.
	if _, err := NewParser(ParserOptions{Custom: []CustomRule{{Name: RuleSSHDFailed, Service: "ssh", Kind: KindAuthFailure, Pattern: `(?P<ip>x)`}}}); err == nil {
		t.Error("duplicate name accepted")
	}
	// NewParser validates rules given as plain values.
	if _, err := NewParser(ParserOptions{Custom: []CustomRule{{Name: "x", Service: "ssh", Kind: KindAuthFailure, Pattern: `nogroup`}}}); err == nil {
		t.Error("rule without ip group accepted")
	}
}
