package maillab_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis-mail/portcullis/tests/maillab"
)

// The accounts of the scripted scenario. mallory and admin do not exist.
var (
	alice = maillab.User{Name: "alice", Password: "correct-horse-battery"}
	bob   = maillab.User{Name: "bob", Password: "tr0ub4dor&3"}
)

// step is one line of the scripted scenario: conns connections from one
// client address, each making perConn attempts of one kind.
type step struct {
	Client   int    `json:"client"` // 1-based client namespace
	IPv6     bool   `json:"ipv6"`
	Addr     string `json:"addr"` // filled in when run
	Service  string `json:"service"`
	Port     int    `json:"port"`
	What     string `json:"what"`
	User     string `json:"user,omitempty"`
	Conns    int    `json:"connections"`
	PerConn  int    `json:"attempts_per_connection"`
	Accepted bool   `json:"accepted"`

	pass string
}

// attempts is how many logins (or commands) the step makes in all.
func (s step) attempts() int { return s.Conns * s.PerConn }

// scenario is what TestGenerateLabLogs runs, in order. Client 1 attacks
// over IPv4, client 2 over IPv6, client 3 is a legitimate user on both.
func scenario(ssh bool) []step {
	steps := []step{
		{Client: 1, Service: "smtp-submission", Port: 587, What: "AUTH LOGIN, wrong password", User: "alice", pass: "guess1", Conns: 3, PerConn: 1},
		{Client: 1, Service: "smtp-submission", Port: 587, What: "AUTH PLAIN, wrong password", User: "alice", pass: "guess2", Conns: 2, PerConn: 1},
		{Client: 1, Service: "smtp-submission", Port: 587, What: "AUTH LOGIN, unknown user", User: "mallory", pass: "guess3", Conns: 2, PerConn: 1},
		{Client: 1, Service: "smtp-submission", Port: 587, What: "AUTH PLAIN, unknown user", User: "admin", pass: "admin", Conns: 2, PerConn: 1},
		{Client: 1, Service: "smtp-submission", Port: 587, What: "AUTH PLAIN, 3 attempts on one connection, wrong password", User: "bob", pass: "guess4", Conns: 1, PerConn: 3},
		{Client: 1, Service: "imap", Port: 143, What: "LOGIN, 3 attempts on one connection, wrong password", User: "alice", pass: "guess5", Conns: 1, PerConn: 3},
		{Client: 1, Service: "imap", Port: 143, What: "LOGIN, one per connection, wrong password", User: "bob", pass: "guess6", Conns: 2, PerConn: 1},
		{Client: 1, Service: "imap", Port: 143, What: "LOGIN, one per connection, unknown user", User: "mallory", pass: "guess7", Conns: 2, PerConn: 1},
		{Client: 1, Service: "pop3", Port: 110, What: "USER/PASS, one per connection, wrong password", User: "alice", pass: "guess8", Conns: 2, PerConn: 1},
		{Client: 1, Service: "pop3", Port: 110, What: "USER/PASS, one per connection, unknown user", User: "admin", pass: "guess9", Conns: 1, PerConn: 1},
		{Client: 1, Service: "pop3", Port: 110, What: "USER/PASS, 2 attempts on one connection, wrong password", User: "bob", pass: "guess10", Conns: 1, PerConn: 2},
		{Client: 1, Service: "smtp", Port: 25, What: "relay attempt without AUTH (RCPT to a foreign domain)", Conns: 2, PerConn: 1},
		{Client: 1, Service: "smtp", Port: 25, What: "improper pipelining (EHLO and QUIT sent before the greeting)", Conns: 1, PerConn: 1},
		{Client: 2, IPv6: true, Service: "smtp-submission", Port: 587, What: "AUTH LOGIN, wrong password", User: "alice", pass: "guess11", Conns: 2, PerConn: 1},
		{Client: 2, IPv6: true, Service: "smtp-submission", Port: 587, What: "AUTH PLAIN, unknown user", User: "mallory", pass: "guess12", Conns: 1, PerConn: 1},
		{Client: 2, IPv6: true, Service: "imap", Port: 143, What: "LOGIN, one per connection, wrong password", User: "alice", pass: "guess13", Conns: 2, PerConn: 1},
		{Client: 2, IPv6: true, Service: "imap", Port: 143, What: "LOGIN, 2 attempts on one connection, unknown user", User: "admin", pass: "guess14", Conns: 1, PerConn: 2},
		{Client: 2, IPv6: true, Service: "pop3", Port: 110, What: "USER/PASS, one per connection, wrong password", User: "bob", pass: "guess15", Conns: 2, PerConn: 1},
		{Client: 2, IPv6: true, Service: "smtp", Port: 25, What: "relay attempt without AUTH (RCPT to a foreign domain)", Conns: 1, PerConn: 1},
		{Client: 3, Service: "smtp-submission", Port: 587, What: "AUTH PLAIN, success", User: "alice", pass: alice.Password, Conns: 1, PerConn: 1, Accepted: true},
		{Client: 3, Service: "smtp-submission", Port: 587, What: "AUTH LOGIN, success", User: "bob", pass: bob.Password, Conns: 1, PerConn: 1, Accepted: true},
		{Client: 3, Service: "imap", Port: 143, What: "LOGIN, success", User: "alice", pass: alice.Password, Conns: 1, PerConn: 1, Accepted: true},
		{Client: 3, Service: "pop3", Port: 110, What: "USER/PASS, success", User: "bob", pass: bob.Password, Conns: 1, PerConn: 1, Accepted: true},
		{Client: 3, IPv6: true, Service: "smtp-submission", Port: 587, What: "AUTH PLAIN, success", User: "bob", pass: bob.Password, Conns: 1, PerConn: 1, Accepted: true},
		{Client: 3, IPv6: true, Service: "imap", Port: 143, What: "LOGIN, success", User: "bob", pass: bob.Password, Conns: 1, PerConn: 1, Accepted: true},
		{Client: 3, IPv6: true, Service: "pop3", Port: 110, What: "USER/PASS, success", User: "alice", pass: alice.Password, Conns: 1, PerConn: 1, Accepted: true},
	}
	if ssh {
		steps = append(steps,
			step{Client: 1, Service: "ssh", Port: 22, What: "password, wrong password", User: "root", pass: "toor", Conns: 3, PerConn: 1},
			step{Client: 1, Service: "ssh", Port: 22, What: "password, invalid user", User: "mallory", pass: "guess16", Conns: 2, PerConn: 1},
			step{Client: 2, IPv6: true, Service: "ssh", Port: 22, What: "password, invalid user", User: "oracle", pass: "oracle", Conns: 2, PerConn: 1},
			step{Client: 3, Service: "ssh", Port: 22, What: "publickey, success", User: "root", Conns: 1, PerConn: 1, Accepted: true},
		)
	}
	return steps
}

// runner runs scenario steps against a lab.
type runner struct {
	lab    *maillab.Lab
	signer ssh.Signer // authorized for every account when the lab has sshd
}

func newRunner(t *testing.T, lab *maillab.Lab, withSSH bool) *runner {
	t.Helper()
	r := &runner{lab: lab}
	if withSSH {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatalf("generate ssh key: %v", err)
		}
		if r.signer, err = ssh.NewSignerFromKey(key); err != nil {
			t.Fatalf("ssh signer: %v", err)
		}
		if err := lab.AuthorizeKey(string(ssh.MarshalAuthorizedKey(r.signer.PublicKey()))); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// server and client addresses of a step.
func (r *runner) addrs(s step) (server, client netip.Addr) {
	c := r.lab.Client(s.Client)
	if s.IPv6 {
		return r.lab.ServerAddr6(), c.Addr6()
	}
	return r.lab.ServerAddr4(), c.Addr4()
}

// run makes the step's connections and checks every attempt got the
// answer the scenario expects.
func (r *runner) run(ctx context.Context, s step) error {
	srv, _ := r.addrs(s)
	c := r.lab.Client(s.Client)
	for range s.Conns {
		results, err := r.conn(ctx, c, srv, s)
		if err != nil {
			return fmt.Errorf("%s %s from client %d: %w", s.Service, s.What, s.Client, err)
		}
		for i, ok := range results {
			if ok != s.Accepted {
				return fmt.Errorf("%s %s from client %d: attempt %d accepted=%v, want %v", s.Service, s.What, s.Client, i+1, ok, s.Accepted)
			}
		}
	}
	return nil
}

// conn makes one connection of the step and returns each attempt's result.
func (r *runner) conn(ctx context.Context, c *maillab.Client, srv netip.Addr, s step) ([]bool, error) {
	addr := netip.AddrPortFrom(srv, uint16(s.Port))
	switch s.Service {
	case "smtp-submission":
		sess, err := c.SMTP(ctx, addr)
		if err != nil {
			return nil, err
		}
		defer sess.Close()
		if err := sess.Hello("client.lab.example"); err != nil {
			return nil, err
		}
		mech := maillab.AuthPlain
		if strings.HasPrefix(s.What, "AUTH LOGIN") {
			mech = maillab.AuthLogin
		}
		auth := func(user, pass string) (bool, error) { return sess.Auth(mech, user, pass) }
		return logins(auth, s, sess.Quit)
	case "imap":
		sess, err := c.IMAP(ctx, addr)
		if err != nil {
			return nil, err
		}
		defer sess.Close()
		return logins(sess.Login, s, sess.Logout)
	case "pop3":
		sess, err := c.POP3(ctx, addr)
		if err != nil {
			return nil, err
		}
		defer sess.Close()
		return logins(sess.Login, s, sess.Quit)
	case "smtp":
		if strings.HasPrefix(s.What, "improper") {
			return []bool{false}, c.SMTPPipelining(ctx, srv)
		}
		sess, err := c.SMTP(ctx, addr)
		if err != nil {
			return nil, err
		}
		defer sess.Close()
		if err := sess.Hello("client.lab.example"); err != nil {
			return nil, err
		}
		ok, err := sess.Relay("spammer@attacker.example", "victim@elsewhere.example")
		if err != nil {
			return nil, err
		}
		return []bool{ok}, sess.Quit()
	case "ssh":
		var ok bool
		var err error
		if s.pass == "" {
			ok, err = c.SSHPublicKey(ctx, srv, s.User, r.signer)
		} else {
			ok, err = c.SSHPassword(ctx, srv, s.User, s.pass)
		}
		return []bool{ok}, err
	}
	return nil, fmt.Errorf("unknown service %q", s.Service)
}

// logins makes the step's attempts on one open connection, then says
// goodbye.
func logins(login func(user, pass string) (bool, error), s step, goodbye func() error) ([]bool, error) {
	var results []bool
	for range s.PerConn {
		ok, err := login(s.User, s.pass)
		if err != nil {
			return nil, err
		}
		results = append(results, ok)
	}
	return results, goodbye()
}
