// Package maillab runs a real Postfix and Dovecot (and optionally sshd) in a
// private network namespace, with client namespaces joined to it by veth
// pairs, so tests can make real login attempts and read the real log lines
// they produce.
//
// Topology: the server namespace holds the service addresses 198.18.0.1 and
// fd00:25::1 on its loopback. Client i (1-based) is joined by its own veth
// pair: 198.18.i.1/24 and fd00:25:0:i::1/64 on the server side,
// 198.18.i.2/24 and fd00:25:0:i::2/64 on the client side, and the client
// routes only the service addresses through the pair. Namespaces and veth
// pairs come from internal/testnet; nothing is added to the root namespace.
// (fd00::/64 itself is avoided: hosts use it on their real interfaces.)
package maillab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testnet"
)

// User is a mailbox account with a known password.
type User struct {
	Name     string
	Password string
}

// Options chooses what a lab runs. The zero value is a lab with one client,
// one user (DefaultUser), auth_verbose off and no sshd.
type Options struct {
	// Clients is how many client namespaces to create; 0 means 1.
	Clients int
	// Users are the Dovecot accounts; empty means one user, alice.
	Users []User
	// AuthVerbose sets Dovecot's auth_verbose, which adds a line per
	// failed password check naming the user and the reason.
	AuthVerbose bool
	// AuthFailureDelay is Dovecot's auth_failure_delay. Zero keeps tests
	// fast; Dovecot's own default is 2s.
	AuthFailureDelay time.Duration
	// AuthPenalty keeps Dovecot's auth penalty, which delays each new
	// login from an address that failed before (up to 15s). Off by
	// default so attacks in tests run at full speed.
	AuthPenalty bool
	// SSH also starts a private sshd on port 22 (package openssh-server).
	SSH bool
	// TLS gives Postfix a certificate from a throwaway CA (Lab.TLSCA), so
	// clients can use STARTTLS on 25 and 587.
	TLS bool
}

// The service addresses every lab's servers listen on; each lab has its own
// namespace, so they never collide.
var (
	serverAddr4 = netip.AddrFrom4([4]byte{198, 18, 0, 1})
	serverAddr6 = netip.AddrFrom16([16]byte{0: 0xfd, 3: 0x25, 15: 1})
)

// Lab is a running mail lab. Close (registered with t.Cleanup by Start)
// stops every server.
type Lab struct {
	tlsCA   string // the CA file when Options.TLS
	opts    Options
	dir     string
	suffix  string
	server  *testnet.NS
	clients []*Client
	links   []string
	postfix *postfix
	dovecot *foreground
	sshd    *foreground

	closeOnce sync.Once
	closeErr  error
}

// Start builds a lab or fails the test. It skips the test when not root or
// when a server binary is missing, naming the Debian package to install.
// Everything it creates is removed when the test ends, even on failure.
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	SkipUnlessReady(t, opts)
	if opts.Clients <= 0 {
		opts.Clients = 1
	}
	if opts.Clients > 200 {
		t.Fatalf("start mail lab: %d clients: at most 200 fit the address plan", opts.Clients)
	}
	if len(opts.Users) == 0 {
		opts.Users = []User{{Name: "alice", Password: "correct-horse-battery"}}
	}
	lab := &Lab{opts: opts, suffix: randomSuffix(6)}
	// The namespaces first: t.Cleanup runs in reverse order, so Close
	// (registered next) stops the servers before testnet unmounts them.
	lab.server = testnet.NewNS(t, "mls")
	for i := 1; i <= opts.Clients; i++ {
		lab.clients = append(lab.clients, &Client{
			ns:    testnet.NewNS(t, fmt.Sprintf("mlc%d", i)),
			addr4: netip.AddrFrom4([4]byte{198, 18, byte(i), 2}),
			addr6: clientAddr6(i, 2),
		})
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close mail lab: %v", err)
		}
	})
	lab.link(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := lab.startServers(ctx); err != nil {
		t.Fatalf("start mail lab: %v", err)
	}
	return lab
}

// clientAddr6 is host h of client i's IPv6 link: fd00:25:0:i::h.
func clientAddr6(i int, h byte) netip.Addr {
	return netip.AddrFrom16([16]byte{0: 0xfd, 2: 0x00, 3: 0x25, 6: byte(i >> 8), 7: byte(i), 15: h})
}

// SkipUnlessReady skips the test when the lab cannot run here: not root, or
// a needed program is not installed.
func SkipUnlessReady(t testing.TB, opts Options) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the mail lab needs root (network namespaces, Postfix and Dovecot as root)")
	}
	type need struct{ path, pkg string }
	needs := []need{
		{"/usr/sbin/ip", "iproute2"},
		{"/usr/bin/nsenter", "util-linux"},
		{"/usr/sbin/postfix", "postfix"},
		{"/usr/sbin/dovecot", "dovecot-core"},
		{"/usr/lib/dovecot/imap-login", "dovecot-imapd"},
		{"/usr/lib/dovecot/pop3-login", "dovecot-pop3d"},
	}
	if opts.SSH {
		needs = append(needs, need{"/usr/sbin/sshd", "openssh-server"}, need{"/usr/bin/ssh-keygen", "openssh-client"})
	}
	for _, n := range needs {
		if _, err := os.Stat(n.path); err != nil {
			t.Skipf("the mail lab needs %s: apt-get install %s", n.path, n.pkg)
		}
	}
}

// link joins each client to the server with a veth pair and routes the
// service addresses through it.
func (l *Lab) link(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range []netip.Prefix{netip.PrefixFrom(serverAddr4, 32), netip.PrefixFrom(serverAddr6, 128)} {
		if err := ipCommand(ctx, "-n", l.server.Name, "addr", "add", a.String(), "dev", "lo"); err != nil {
			t.Fatalf("start mail lab: %v", err)
		}
	}
	for i, c := range l.clients {
		gw4 := netip.AddrFrom4([4]byte{198, 18, byte(i + 1), 1})
		gw6 := clientAddr6(i+1, 1)
		srv, _ := testnet.Veth(t, l.server, c.ns,
			[]netip.Prefix{netip.PrefixFrom(gw4, 24), netip.PrefixFrom(gw6, 64)},
			[]netip.Prefix{netip.PrefixFrom(c.addr4, 24), netip.PrefixFrom(c.addr6, 64)})
		l.links = append(l.links, srv.Name)
		// Through the gateway, not onto the link: Linux does not answer
		// neighbour solicitations for an IPv6 address held by another
		// interface (the server's loopback).
		for _, r := range [][]string{
			{"-n", c.ns.Name, "-4", "route", "add", serverAddr4.String() + "/32", "via", gw4.String()},
			{"-n", c.ns.Name, "-6", "route", "add", serverAddr6.String() + "/128", "via", gw6.String()},
		} {
			if err := ipCommand(ctx, r...); err != nil {
				t.Fatalf("start mail lab: %v", err)
			}
		}
	}
}

// startServers starts Postfix, Dovecot and, if asked, sshd.
func (l *Lab) startServers(ctx context.Context) error {
	// A short directory under /tmp, not t.TempDir(): Unix socket paths
	// (Dovecot's auth socket in Postfix's queue) must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "maillab-")
	if err != nil {
		return fmt.Errorf("create lab directory: %w", err)
	}
	l.dir = dir
	// Postfix and Dovecot drop privileges and must traverse it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	// Postfix first: Dovecot puts its auth socket into Postfix's queue.
	if l.postfix, err = startPostfix(ctx, l); err != nil {
		return err
	}
	if l.dovecot, err = startDovecot(ctx, l); err != nil {
		return err
	}
	if l.opts.SSH {
		if l.sshd, err = startSSHD(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// ipCommand runs `ip ARGS...` with its output in the error.
func ipCommand(ctx context.Context, args ...string) error {
	return runCombined(exec.CommandContext(ctx, "ip", args...))
}

// randomSuffix returns n hex characters from crypto/rand, to keep the
// Dovecot instance names of parallel labs apart.
func randomSuffix(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)[:n]
}

// Close stops the servers, kills anything left in the lab's namespaces and
// removes the lab directory; internal/testnet removes the namespaces and
// veth pairs when the test ends. Start registers Close with t.Cleanup; a
// test may call it earlier. It is safe to call more than once.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		if l.sshd != nil {
			errs = append(errs, l.sshd.stop())
		}
		if l.postfix != nil {
			errs = append(errs, l.postfix.stop())
		}
		if l.dovecot != nil {
			errs = append(errs, l.dovecot.stop())
		}
		// Whatever the servers left behind (a stuck child, a process a
		// test started in a namespace) must not keep a namespace alive.
		for _, ns := range l.namespaces() {
			errs = append(errs, killAllIn(ns, 5*time.Second))
		}
		if l.dir != "" {
			if err := os.RemoveAll(l.dir); err != nil {
				errs = append(errs, fmt.Errorf("remove lab directory: %w", err))
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// Mailbox is the Maildir into which Postfix delivers all mail to
// MailboxDomain; delivered messages appear in its new/ directory.
func (l *Lab) Mailbox() string { return filepath.Join(l.dir, "postfix", "mailbox", "inbox") }

// SendmailCommand is the lab Postfix's sendmail: it queues a message (from
// any namespace: it writes to the queue directory, no network) for the
// lab's Postfix to deliver.
func (l *Lab) SendmailCommand() []string {
	return []string{"/usr/sbin/sendmail", "-C", l.postfix.configDir, "-t", "-i"}
}

// Dir is the lab's private directory (configuration, queue, logs).
func (l *Lab) Dir() string { return l.dir }

// Users are the accounts Dovecot accepts.
func (l *Lab) Users() []User { return l.opts.Users }

// ServerAddr4 is the servers' IPv4 address, reachable from every client.
func (l *Lab) ServerAddr4() netip.Addr { return serverAddr4 }

// ServerAddr6 is the servers' IPv6 address, reachable from every client.
func (l *Lab) ServerAddr6() netip.Addr { return serverAddr6 }

// ServerNetns is the name of the server namespace (for `ip netns exec`).
func (l *Lab) ServerNetns() string { return l.server.Name }

// ServerNetnsPath is the server namespace's bind mount under /run/netns.
func (l *Lab) ServerNetnsPath() string { return l.server.Path }

// ServerNS is the server namespace itself, for internal/testnet helpers.
func (l *Lab) ServerNS() *testnet.NS { return l.server }

// ServerLinks are the server-side veth names, one per client, in client
// order: the interfaces an XDP program in the server namespace attaches to.
func (l *Lab) ServerLinks() []string { return l.links }

// Clients are the client namespaces, in order.
func (l *Lab) Clients() []*Client { return l.clients }

// Client is the i-th client, 1-based like its addresses.
func (l *Lab) Client(i int) *Client { return l.clients[i-1] }

// PostfixLog is the file Postfix's postlogd writes (maillog_file).
func (l *Lab) PostfixLog() string { return filepath.Join(l.dir, "log", "postfix.log") }

// DovecotLog is the file Dovecot writes all its log levels to.
func (l *Lab) DovecotLog() string { return filepath.Join(l.dir, "log", "dovecot.log") }

// SSHLog is the file sshd writes (-E); empty when Options.SSH is off.
func (l *Lab) SSHLog() string {
	if !l.opts.SSH {
		return ""
	}
	return filepath.Join(l.dir, "log", "sshd.log")
}

// namespaces are the server's and the clients', as far as they exist.
func (l *Lab) namespaces() []*testnet.NS {
	all := []*testnet.NS{l.server}
	for _, c := range l.clients {
		all = append(all, c.ns)
	}
	return all
}

// Processes lists the processes now running in the lab's namespaces.
func (l *Lab) Processes() ([]int, error) {
	var pids []int
	for _, ns := range l.namespaces() {
		p, err := pidsIn(ns)
		if err != nil {
			return nil, err
		}
		pids = append(pids, p...)
	}
	return pids, nil
}

// TLSCA is the file of the CA that signed Postfix's certificate (with
// Options.TLS), for clients that verify STARTTLS.
func (l *Lab) TLSCA() string { return l.tlsCA }
