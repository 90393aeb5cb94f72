package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/logs"
	"github.com/portcullis-mail/portcullis/store"
	"github.com/portcullis-mail/portcullis/tests/maillab"
)

// The mail lab's accounts: alice is the legitimate user; attackers guess
// her password or name accounts that do not exist.
var (
	labAlice = maillab.User{Name: "alice", Password: "correct-horse-battery"}
	labBob   = maillab.User{Name: "bob", Password: "tr0ub4dor&3"}
)

// The mail ports a ban of scope all must close, and the lab's services on
// them.
var mailPorts = []uint16{maillab.SMTPPort, maillab.SubmissionPort, maillab.IMAPPort, maillab.POP3Port}

// daemonBaseConfig is the part of every test's configuration file: small
// kernel maps so that loading is quick, and the lab's log files read from
// their start, so that no line written between the daemon's start and its
// sources opening the files is skipped (the lab's start-up lines hold no
// logins).
const daemonBaseConfig = `
[daemon]
log_level = "debug"

[logs]
read_from_start = true
journal = false

[datapath.capacity]
bans = 65536
prefix_bans = 1024
allowlist = 1024
sources = 65536
`

// daemonLab is a mail lab whose server namespace runs `portcullis run`
// as a real process, with the XDP program on the server's links.
type daemonLab struct {
	t        *testing.T
	mail     *maillab.Lab
	pinDir   string
	stateDir string
	socket   string
	config   string

	// runs are every daemon started, in order; the last may be running.
	runs []*daemonProc
}

// daemonProc is one run of the daemon.
type daemonProc struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// newDaemonLab starts a mail lab with clients client namespaces and writes
// the daemon's configuration: the base plus extra TOML. The daemon is not
// started yet.
func newDaemonLab(t *testing.T, clients int, extra string) *daemonLab {
	t.Helper()
	maillab.SkipUnlessReady(t, maillab.Options{})
	testnet.RequireRoot(t)
	if portcullisBin == "" {
		t.Skip("the portcullis binary was not built (not root)")
	}
	if err := testnet.MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	l := &daemonLab{t: t, pinDir: newPinDir(t, "pc-d-")}
	l.mail = maillab.Start(t, maillab.Options{Clients: clients, Users: []maillab.User{labAlice, labBob}})

	dir := t.TempDir()
	l.stateDir = filepath.Join(dir, "state")
	l.config = filepath.Join(dir, "portcullis.toml")
	if err := os.WriteFile(l.config, []byte(daemonBaseConfig+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	// A short directory: unix socket paths are limited to 108 bytes and
	// t.TempDir's names are long.
	sockDir, err := os.MkdirTemp("", "pcd-")
	if err != nil {
		t.Fatal(err)
	}
	l.socket = filepath.Join(sockDir, "ctl.sock")

	// Registered after the lab, so it runs before the lab stops its
	// servers and removes its namespaces.
	t.Cleanup(func() {
		if d := l.current(); d != nil {
			if err := d.stop(syscall.SIGTERM); err != nil {
				t.Errorf("stop the daemon: %v", err)
			}
		}
		if t.Failed() {
			for i, d := range l.runs {
				t.Logf("daemon run %d stderr:\n%s", i+1, d.stderr.String())
			}
			l.logLoginLines()
		}
		if r := l.cli("detach", "--all", "--purge"); r.code != 0 && !strings.Contains(r.stderr, "not attached") {
			t.Errorf("portcullis detach --all --purge: exit %d: %s", r.code, r.stderr)
		}
		_ = os.RemoveAll(sockDir)
	})
	return l
}

// current is the running daemon, nil when none runs.
func (l *daemonLab) current() *daemonProc {
	if len(l.runs) == 0 {
		return nil
	}
	d := l.runs[len(l.runs)-1]
	select {
	case <-d.exited:
		return nil
	default:
		return d
	}
}

// start runs `portcullis run` in the server namespace (through nsenter
// --net, so the bpffs pins are the host's) and waits until it says it is
// running.
func (l *daemonLab) start() *daemonProc {
	l.t.Helper()
	args := []string{"--config", l.config, "--pin-dir", l.pinDir, "--state-dir", l.stateDir, "--socket", l.socket, "run"}
	for _, iface := range l.mail.ServerLinks() {
		args = append(args, "--iface", iface)
	}
	args = append(args, "--log", l.mail.PostfixLog(), "--log", l.mail.DovecotLog())
	// Not CommandContext: the daemon is stopped by signals the test sends.
	// nsenter execs the daemon in its own place, so the pid is the daemon's.
	cmd := l.mail.ServerNS().Command(context.Background(), portcullisBin, args...)
	d := &daemonProc{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.stderr, d.stderr
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start the daemon: %v", err)
	}
	l.runs = append(l.runs, d)
	go func() {
		d.err = cmd.Wait()
		close(d.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(d.stderr.String(), "msg=running") {
		select {
		case <-d.exited:
			l.t.Fatalf("the daemon exited before running (%v):\n%s", d.err, d.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("the daemon did not say it runs within 60s:\n%s", d.stderr.String())
		}
	}
	return d
}

// stop sends sig and waits for the daemon to exit, killing it after 15s.
// After SIGTERM the daemon must exit 0.
func (d *daemonProc) stop(sig syscall.Signal) error {
	_ = d.cmd.Process.Signal(sig) // it may have exited already
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("the daemon did not exit within 15s of %v", sig)
	}
	if sig == syscall.SIGTERM && d.err != nil {
		return fmt.Errorf("the daemon exited after SIGTERM with %v", d.err)
	}
	return nil
}

// cli runs the CLI in the server namespace with the lab's directories.
func (l *daemonLab) cli(args ...string) result {
	l.t.Helper()
	full := append([]string{"--config", l.config, "--pin-dir", l.pinDir, "--state-dir", l.stateDir, "--socket", l.socket}, args...)
	return runCLI(l.t, l.mail.ServerNS(), nil, full...)
}

// logLoginLines logs the servers' lines about logins, to tell after a
// failure what the servers saw and when.
func (l *daemonLab) logLoginLines() {
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(l.mail.PostfixLog()), "*.log*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var keep []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "auth") || strings.Contains(line, "connect from") {
				keep = append(keep, line)
			}
		}
		if len(keep) > 300 {
			keep = keep[len(keep)-300:]
		}
		l.t.Logf("%s (login lines, up to 300 last):\n%s", f, strings.Join(keep, "\n"))
	}
}

// source is one client address of the lab: a client namespace and one of
// its two addresses.
type source struct {
	name   string
	client *maillab.Client
	v6     bool
}

func (s source) addr() netip.Addr {
	if s.v6 {
		return s.client.Addr6()
	}
	return s.client.Addr4()
}

func (l *daemonLab) source(i int, v6 bool) source {
	fam := "ipv4"
	if v6 {
		fam = "ipv6"
	}
	return source{name: fmt.Sprintf("client %d %s", i, fam), client: l.mail.Client(i), v6: v6}
}

func (l *daemonLab) serverAddr(s source) netip.Addr {
	if s.v6 {
		return l.mail.ServerAddr6()
	}
	return l.mail.ServerAddr4()
}

// attemptTimeout bounds one login exchange. A handshake on a veth pair
// takes well under a millisecond; the bound only decides how long a
// dropped SYN is waited for.
const attemptTimeout = 1500 * time.Millisecond

// login makes one complete login of the i-th kind in the rotation SMTP AUTH
// PLAIN on 587, IMAP, POP3, SMTP AUTH LOGIN on 587, so that failures from
// one source mix the services. It reports whether the server accepted it,
// and dropped when the connection could not be made at all (the SYN was
// dropped or the address became unreachable).
func (l *daemonLab) login(s source, i int, user, pass string) (ok, dropped bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
	defer cancel()
	srv := l.serverAddr(s)
	switch i % 4 {
	case 0:
		ok, err = s.client.SMTPAuth(ctx, srv, maillab.AuthPlain, user, pass)
	case 1:
		ok, err = s.client.IMAPLogin(ctx, srv, user, pass)
	case 2:
		ok, err = s.client.POP3Login(ctx, srv, user, pass)
	default:
		ok, err = s.client.SMTPAuth(ctx, srv, maillab.AuthLogin, user, pass)
	}
	if err != nil && (droppedAtDial(err) || wentSilent(err)) {
		return false, true, nil
	}
	return ok, false, err
}

// fail makes the i-th failed login of an attack (see login) with a wrong
// password for alice or, every third time, an account that does not exist.
// dropped says the connection could not be made.
func (l *daemonLab) fail(s source, i int) (dropped bool) {
	l.t.Helper()
	user, pass := labAlice.Name, fmt.Sprintf("guess%d", i)
	if i%3 == 2 {
		user = "mallory"
	}
	ok, dropped, err := l.login(s, i, user, pass)
	if err != nil {
		l.t.Fatalf("%s: failed login %d: %v", s.name, i+1, err)
	}
	if ok {
		l.t.Fatalf("%s: failed login %d was accepted", s.name, i+1)
	}
	return dropped
}

// failNotDropped is fail for an attempt that must reach the server.
func (l *daemonLab) failNotDropped(s source, i int) {
	l.t.Helper()
	if l.fail(s, i) {
		l.t.Fatalf("%s: failed login %d: the connection was dropped before the source could be banned", s.name, i+1)
	}
}

// droppedAtDial reports whether err is a connect that never completed: a
// timeout (the SYN was dropped) or an unreachable host (with IPv6 a ban of
// scope all also drops neighbour solicitations).
func droppedAtDial(err error) bool {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return false
	}
	return op.Timeout() || errors.Is(err, syscall.EHOSTUNREACH)
}

// wentSilent reports whether err is a connection that was made but then
// heard nothing more until the deadline: what a ban that lands between the
// SYN and the login does to it. The servers' logs tell whether the login
// itself got through.
func wentSilent(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// probeTimeout is how long a bare connect may take before its SYN counts
// as dropped; the kernel's first SYN retransmission comes after a second.
const probeTimeout = 500 * time.Millisecond

// connects reports whether a TCP handshake from s to port completes (and
// closes it at once). A dropped one returns false; any other error fails
// the test.
func (l *daemonLab) connects(s source, port uint16) bool {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	c, err := s.client.NS().DialFrom(ctx, "tcp", netip.AddrPortFrom(s.addr(), 0), netip.AddrPortFrom(l.serverAddr(s), port))
	if err == nil {
		c.Close()
		return true
	}
	if droppedAtDial(err) {
		return false
	}
	l.t.Fatalf("%s: connect to port %d: %v", s.name, port, err)
	return false
}

// mustBeDropped asserts that s can connect to none of the mail ports.
func (l *daemonLab) mustBeDropped(s source, why string) {
	l.t.Helper()
	var wg sync.WaitGroup
	got := make([]bool, len(mailPorts))
	for i, port := range mailPorts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = l.connects(s, port)
		}()
	}
	wg.Wait()
	for i, port := range mailPorts {
		if got[i] {
			l.t.Errorf("%s: %s connected to port %d", why, s.name, port)
		}
	}
}

// waitDropped polls until a connect from s to port 25 is dropped, and
// returns when the first of two dropped connects in a row began. It fails the test after within.
// Port 25 is of class mx, whose rate limit (burst 60) no test comes near,
// so a drop there is a ban, not the auth class's rate limit.
func (l *daemonLab) waitDropped(s source, within time.Duration) time.Time {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for {
		// Two drops in a row: a ban holds, while a single lost SYN can
		// happen as the daemon (re)attaches.
		began := time.Now()
		if !l.connects(s, maillab.SMTPPort) && !l.connects(s, maillab.SMTPPort) {
			return began
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s could still connect %s later", s.name, within)
		}
	}
}

// Failed logins as the lab's servers log them: Postfix once per failed
// AUTH; Dovecot's login processes once per connection with the number of
// attempts made on it.
var (
	postfixFailureLine = regexp.MustCompile(`\[([0-9a-fA-F.:]+)\]: SASL (?:LOGIN|PLAIN) authentication failed`)
	dovecotFailureLine = regexp.MustCompile(`(?:imap|pop3)-login: .*auth failed, (\d+) attempts.* rip=([0-9a-fA-F.:]+),`)
)

// failuresLogged counts the failed logins the servers logged in files, per
// client address.
func failuresLogged(t *testing.T, files ...string) map[netip.Addr]int {
	t.Helper()
	out := map[netip.Addr]int{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatalf("read server log: %v", err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := postfixFailureLine.FindStringSubmatch(line); m != nil {
				if a, err := netip.ParseAddr(m[1]); err == nil {
					out[a]++
				}
			} else if m := dovecotFailureLine.FindStringSubmatch(line); m != nil {
				var n int
				_, _ = fmt.Sscan(m[1], &n)
				if a, err := netip.ParseAddr(m[2]); err == nil {
					out[a] += n
				}
			}
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
	}
	return out
}

// serverLogs are the lab's two live log files.
func (l *daemonLab) serverLogs() []string {
	return []string{l.mail.PostfixLog(), l.mail.DovecotLog()}
}

// waitLogged polls the server logs until want failures from each address
// are logged, and returns when that was seen. Postfix's postlogd and
// Dovecot's log process write asynchronously.
func (l *daemonLab) waitLogged(want map[netip.Addr]int, within time.Duration, files ...string) time.Time {
	l.t.Helper()
	if len(files) == 0 {
		files = l.serverLogs()
	}
	deadline := time.Now().Add(within)
	for {
		got := failuresLogged(l.t, files...)
		done := true
		for a, n := range want {
			if got[a] < n {
				done = false
			}
		}
		if done {
			return time.Now()
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("failed logins logged after %s: %v, want %v", within, got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// storeState is what the daemon recorded, read from its state directory.
type storeState struct {
	failures map[netip.Addr]int // failed logins (event attempts), per address
	events   map[netip.Addr]int // auth failure events (lines), per address
	bans     []store.Ban
}

// readStore opens the daemon's store (it may be running: the store is in
// WAL mode and this only reads) and returns what it holds.
func (l *daemonLab) readStore() storeState {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, l.stateDir)
	if err != nil {
		l.t.Fatalf("open the daemon's store: %v", err)
	}
	defer st.Close()
	evs, err := st.Events(ctx, store.EventFilter{})
	if err != nil {
		l.t.Fatal(err)
	}
	s := storeState{failures: map[netip.Addr]int{}, events: map[netip.Addr]int{}}
	for _, ev := range evs {
		if ev.Kind == logs.KindAuthFailure {
			s.failures[ev.Addr] += ev.Attempts
			s.events[ev.Addr]++
		}
	}
	if s.bans, err = st.Bans(ctx, store.BanFilter{}); err != nil {
		l.t.Fatal(err)
	}
	return s
}

// bansOf are the recorded bans of exactly one address.
func (s storeState) bansOf(a netip.Addr) []store.Ban {
	var out []store.Ban
	for _, b := range s.bans {
		if b.Prefix == netip.PrefixFrom(a, a.BitLen()) {
			out = append(out, b)
		}
	}
	return out
}

// waitStored polls the store until it holds want failures from each
// address.
func (l *daemonLab) waitStored(want map[netip.Addr]int, within time.Duration) storeState {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for {
		s := l.readStore()
		done := true
		for a, n := range want {
			if s.failures[a] < n {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer a process writes while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// in returns the lab for a subtest, so that its failures are reported
// there.
func (l *daemonLab) in(t *testing.T) *daemonLab {
	c := *l
	c.t = t
	return &c
}
