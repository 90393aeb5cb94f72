// Package maillab runs a real Postfix and Dovecot (and optionally sshd) in a
// private network namespace, with client namespaces joined to it by veth
// pairs, so tests can make real login attempts and read the real log lines
// they produce.
//
// Topology: the server namespace holds the service addresses 198.18.0.1 and
// fd00::1 on its loopback. Client i (1-based) is joined by its own veth pair:
// 198.18.i.1/24 and fd00:0:0:i::1/64 on the server side, 198.18.i.2/24 and
// fd00:0:0:i::2/64 on the client side, and the client routes only the
// service addresses through the pair. Nothing is added to the root namespace.
package maillab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
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
}

// The service addresses every lab's servers listen on; each lab has its own
// namespace, so they never collide.
var (
	serverAddr4 = netip.AddrFrom4([4]byte{198, 18, 0, 1})
	serverAddr6 = netip.AddrFrom16([16]byte{0: 0xfd, 15: 1})
)

// Lab is a running mail lab. Close (registered with t.Cleanup by Start)
// stops every server and removes the namespaces.
type Lab struct {
	opts    Options
	dir     string
	suffix  string
	server  *namespace
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
func Start(t testing.TB, opts Options) *Lab {
	t.Helper()
	SkipUnlessReady(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lab, err := start(ctx, opts)
	if lab != nil {
		t.Cleanup(func() {
			if err := lab.Close(); err != nil {
				t.Errorf("close mail lab: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("start mail lab: %v", err)
	}
	return lab
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

// start does the work of Start. On error it returns the partial lab, if
// any, so the caller can still Close it.
func start(ctx context.Context, opts Options) (*Lab, error) {
	if opts.Clients <= 0 {
		opts.Clients = 1
	}
	if opts.Clients > 200 {
		return nil, fmt.Errorf("%d clients: at most 200 fit the address plan", opts.Clients)
	}
	if len(opts.Users) == 0 {
		opts.Users = []User{{Name: "alice", Password: "correct-horse-battery"}}
	}
	// A short directory under /tmp, not t.TempDir(): Unix socket paths
	// (Dovecot's auth socket in Postfix's queue) must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "maillab-")
	if err != nil {
		return nil, fmt.Errorf("create lab directory: %w", err)
	}
	// Postfix and Dovecot drop privileges and must traverse it.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", dir, err)
	}
	lab := &Lab{opts: opts, dir: dir, suffix: randomSuffix(6)}
	if err := lab.buildNetwork(ctx); err != nil {
		return lab, err
	}
	// Postfix first: Dovecot puts its auth socket into Postfix's queue.
	if lab.postfix, err = startPostfix(ctx, lab); err != nil {
		return lab, err
	}
	if lab.dovecot, err = startDovecot(ctx, lab); err != nil {
		return lab, err
	}
	if opts.SSH {
		if lab.sshd, err = startSSHD(ctx, lab); err != nil {
			return lab, err
		}
	}
	return lab, nil
}

func (l *Lab) buildNetwork(ctx context.Context) error {
	var err error
	l.server, err = newNamespace(ctx, "pcl-srv-"+l.suffix)
	if err != nil {
		return err
	}
	for _, a := range []string{serverAddr4.String() + "/32", serverAddr6.String() + "/128"} {
		if err := ipCommand(ctx, "-n", l.server.name, "addr", "add", a, "dev", "lo"); err != nil {
			return err
		}
	}
	for i := 1; i <= l.opts.Clients; i++ {
		c := &Client{
			index: i,
			addr4: netip.AddrFrom4([4]byte{198, 18, byte(i), 2}),
			addr6: netip.AddrFrom16([16]byte{0: 0xfd, 7: byte(i), 15: 2}),
		}
		c.ns, err = newNamespace(ctx, fmt.Sprintf("pcl-c%d-%s", i, l.suffix))
		l.clients = append(l.clients, c)
		if err != nil {
			return err
		}
		srvLink := fmt.Sprintf("pcs%d-%s", i, l.suffix)
		cliLink := fmt.Sprintf("pcc%d-%s", i, l.suffix)
		gw4 := netip.AddrFrom4([4]byte{198, 18, byte(i), 1})
		gw6 := netip.AddrFrom16([16]byte{0: 0xfd, 7: byte(i), 15: 1})
		// Both ends are created directly inside their namespaces.
		steps := [][]string{
			{"-n", l.server.name, "link", "add", srvLink, "type", "veth", "peer", "name", cliLink, "netns", c.ns.name},
			{"-n", l.server.name, "addr", "add", gw4.String() + "/24", "dev", srvLink},
			{"-n", l.server.name, "addr", "add", gw6.String() + "/64", "dev", srvLink, "nodad"},
			{"-n", l.server.name, "link", "set", srvLink, "up"},
			{"-n", c.ns.name, "addr", "add", c.addr4.String() + "/24", "dev", cliLink},
			{"-n", c.ns.name, "addr", "add", c.addr6.String() + "/64", "dev", cliLink, "nodad"},
			{"-n", c.ns.name, "link", "set", cliLink, "up"},
			{"-n", c.ns.name, "route", "add", serverAddr4.String() + "/32", "via", gw4.String()},
			{"-n", c.ns.name, "-6", "route", "add", serverAddr6.String() + "/128", "via", gw6.String()},
		}
		for _, s := range steps {
			if err := ipCommand(ctx, s...); err != nil {
				return err
			}
		}
		l.links = append(l.links, srvLink)
	}
	return nil
}

// Close stops the servers, kills anything left in the lab's namespaces,
// deletes them and the lab directory. It is safe to call more than once.
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
		for _, c := range l.clients {
			if c.ns != nil {
				errs = append(errs, c.ns.remove())
			}
		}
		if l.server != nil {
			errs = append(errs, l.server.remove())
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

// Dir is the lab's private directory (configuration, queue, logs).
func (l *Lab) Dir() string { return l.dir }

// Users are the accounts Dovecot accepts.
func (l *Lab) Users() []User { return l.opts.Users }

// ServerAddr4 is the servers' IPv4 address, reachable from every client.
func (l *Lab) ServerAddr4() netip.Addr { return serverAddr4 }

// ServerAddr6 is the servers' IPv6 address, reachable from every client.
func (l *Lab) ServerAddr6() netip.Addr { return serverAddr6 }

// ServerNetns is the name of the server namespace (for `ip netns exec`).
func (l *Lab) ServerNetns() string { return l.server.name }

// ServerNetnsPath is the server namespace's bind mount under /run/netns.
func (l *Lab) ServerNetnsPath() string { return l.server.path() }

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

// ServerCommand returns a command that runs inside the server namespace,
// for tests that start more programs there (the daemon under test).
func (l *Lab) ServerCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	return l.server.command(ctx, name, args...)
}

// ServerDo runs fn on a thread inside the server namespace.
func (l *Lab) ServerDo(fn func() error) error { return l.server.do(fn) }

// Processes lists the processes now running in the lab's namespaces.
func (l *Lab) Processes() ([]int, error) {
	all := []*namespace{l.server}
	for _, c := range l.clients {
		all = append(all, c.ns)
	}
	var pids []int
	for _, ns := range all {
		p, err := ns.pids()
		if err != nil {
			return nil, err
		}
		pids = append(pids, p...)
	}
	return pids, nil
}
