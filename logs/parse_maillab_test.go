package logs

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// labStep is one row of the mail lab's scenario.json.
type labStep struct {
	Addr                  string `json:"addr"`
	Service               string `json:"service"`
	What                  string `json:"what"`
	Connections           int    `json:"connections"`
	AttemptsPerConnection int    `json:"attempts_per_connection"`
	Accepted              bool   `json:"accepted"`
}

// TestMaillabScenario parses the real logs the mail lab recorded (Postfix,
// Dovecot with auth_verbose yes and no, sshd) and checks, per client
// address, that the failed attempts add up to exactly what the scripted
// clients did, that every accepted mail login is one success, and that
// every relay attempt is one relay_denied event.
func TestMaillabScenario(t *testing.T) {
	raw, err := os.ReadFile("testdata/maillab/scenario.json")
	if err != nil {
		t.Fatal(err)
	}
	var steps []labStep
	if err := json.Unmarshal(raw, &steps); err != nil {
		t.Fatal(err)
	}
	wantFail, wantOK, wantRelay := map[netip.Addr]int{}, map[netip.Addr]int{}, map[netip.Addr]int{}
	for _, s := range steps {
		a := netip.MustParseAddr(s.Addr)
		n := s.Connections * s.AttemptsPerConnection
		switch {
		case s.What == "relay attempt without AUTH (RCPT to a foreign domain)":
			wantRelay[a] += n
		case s.Service == "smtp" || s.Service == "ssh" && s.Accepted:
			// pipelining is protocol abuse; sshd key logins are not read
		case s.Service == "smtp-submission" && s.Accepted:
			// Postfix logs a successful AUTH by name only on the client=
			// line of a message the client then sends; these clients
			// send none (only "auth=1" in the disconnect statistics).
		case s.Accepted:
			wantOK[a] += s.Connections
		default:
			wantFail[a] += n
		}
	}
	for _, variant := range []string{"auth-verbose-yes", "auth-verbose-no"} {
		t.Run(variant, func(t *testing.T) {
			p := newTestParser(t, ParserOptions{})
			gotFail, gotOK, gotRelay := map[netip.Addr]int{}, map[netip.Addr]int{}, map[netip.Addr]int{}
			for _, f := range []struct{ name, ident string }{{"postfix.log", ""}, {"dovecot.log", ""}, {"sshd.log", "sshd"}} {
				fh, err := os.Open(filepath.Join("testdata/maillab", variant, f.name))
				if err != nil {
					t.Fatal(err)
				}
				sc := bufio.NewScanner(fh)
				for sc.Scan() {
					p.Parse(Line{Text: sc.Bytes(), Ident: f.ident}, func(e Event) {
						switch e.Kind {
						case KindAuthFailure:
							gotFail[e.Addr] += e.Attempts
						case KindAuthSuccess:
							gotOK[e.Addr]++
						case KindRelayDenied:
							gotRelay[e.Addr]++
						}
					})
				}
				fh.Close()
			}
			check := func(what string, got, want map[netip.Addr]int) {
				t.Helper()
				for a, n := range want {
					if got[a] != n {
						t.Errorf("%s from %s: %d, want %d", what, a, got[a], n)
					}
				}
				for a, n := range got {
					if _, ok := want[a]; !ok {
						t.Errorf("%s from %s: %d, want none", what, a, n)
					}
				}
			}
			check("failed attempts", gotFail, wantFail)
			check("successful logins", gotOK, wantOK)
			check("relay attempts", gotRelay, wantRelay)
			t.Logf("failed attempts per address: %v", gotFail)
		})
	}
}
