package tests

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/store"
	"github.com/portcullis-mail/portcullis/tests/maillab"
)

// The end-to-end tests of `portcullis run` with a real Postfix and Dovecot
// (issue 4): real failed logins from client namespaces, the daemon reading
// the servers' log files and the XDP program on the server's links.

// TestDaemonBansOnFifthFailureWithinASecond: after a source's 5th failed
// login (SMTP AUTH on 587 through Dovecot SASL, IMAP and POP3 mixed), its
// next connection to any mail port fails within 1 second of the failure
// being logged, while a legitimate user in another namespace keeps logging
// in before, during and after.
func TestDaemonBansOnFifthFailureWithinASecond(t *testing.T) {
	t.Parallel()
	// The legitimate user logs in over and over; the rate limit is not
	// under test here.
	l := newDaemonLab(t, 3, `
[datapath.rate_limit.auth]
per_minute = 60000
burst = 10000
`)
	l.start()
	legit := l.keepLoggingIn(l.source(3, false), l.source(3, true))
	legit.waitOK(t, 2, 10*time.Second, "before the attack")

	for _, s := range []source{l.source(1, false), l.source(2, true)} {
		t.Run(s.name, func(t *testing.T) {
			l := l.in(t)
			for i := range 4 {
				l.failNotDropped(s, i)
			}
			legit.waitOK(t, 1, 10*time.Second, "during the attack on "+s.name)
			l.failNotDropped(s, 4)
			logged := l.waitLogged(map[netip.Addr]int{s.addr(): 5}, 10*time.Second)
			dropped := l.waitDropped(s, 5*time.Second)
			elapsed := dropped.Sub(logged)
			t.Logf("%s: first dropped connect began %s after the 5th failure was seen in the log", s.name, elapsed)
			if elapsed > time.Second {
				t.Errorf("%s: a connect after the 5th failure got through until %s after it was logged, want at most 1s", s.name, elapsed)
			}
			l.mustBeDropped(s, "after 5 failed logins")

			st := l.readStore()
			bans := st.bansOf(s.addr())
			if len(bans) != 1 {
				t.Fatalf("%s: %d bans recorded, want 1: %+v", s.name, len(bans), bans)
			}
			if b := bans[0]; b.Origin != store.OriginLog || b.Scope != store.ScopeAll || b.Evidence != 5 {
				t.Errorf("%s: ban recorded as %+v, want origin log, scope all, evidence 5", s.name, b)
			}
			if got := st.failures[s.addr()]; got != 5 {
				t.Errorf("%s: %d failed logins recorded, want 5", s.name, got)
			}
		})
	}
	legit.waitOK(t, 2, 10*time.Second, "after both attackers were banned")
	legit.stop(t)
}

// TestDaemonStopsTheSeedIncident replays the incident that made the
// product: two machines trying logins at a steady pace. Compressed 60
// times (3 a minute becomes 3 a second, the 10 minute window 10 seconds,
// the hour's ban a minute), each must be stopped after 5 attempts, not the
// 100 it would go on to make.
func TestDaemonStopsTheSeedIncident(t *testing.T) {
	t.Parallel()
	l := newDaemonLab(t, 2, `
[verdict]
window = "10s"
ban = "1m"
`)
	l.start()
	const (
		pace     = time.Second / 3
		attempts = 100
		// After its first dropped attempt an attacker tries this many more
		// times, to show that it stays stopped.
		moreAfterDrop = 3
	)
	attackers := []source{l.source(1, false), l.source(2, true)}
	answered := make([]int, len(attackers))
	var wg sync.WaitGroup
	for k, s := range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(pace)
			defer tick.Stop()
			drops := 0
			for i := 0; i < attempts && drops <= moreAfterDrop; i++ {
				began := time.Now()
				ok, dropped, err := l.login(s, i, labAlice.Name, fmt.Sprintf("guess%d", i))
				switch {
				case err != nil:
					t.Errorf("%s: attempt %d (began %s): %v", s.name, i+1, began.UTC().Format("15:04:05.000"), err)
					return
				case ok:
					t.Errorf("%s: attempt %d was accepted", s.name, i+1)
					return
				case dropped:
					drops++
				default:
					answered[k]++
				}
				<-tick.C
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := map[netip.Addr]int{}
	for _, s := range attackers {
		want[s.addr()] = 5
	}
	l.waitLogged(want, 10*time.Second)
	st := l.waitStored(want, 10*time.Second)
	logged := failuresLogged(t, l.serverLogs()...)
	for k, s := range attackers {
		// The server's own log is the count that matters (below). On the
		// client's side the 5th exchange races the ban it causes: the
		// reply may be cut off, so that attempt can look dropped.
		if answered[k] < 4 || answered[k] > 5 {
			t.Errorf("%s: the server answered %d attempts, want 5 (or 4 when the ban cut off the 5th reply)", s.name, answered[k])
		}
		if got := logged[s.addr()]; got != 5 {
			t.Errorf("%s: the server logged %d failed logins, want 5", s.name, got)
		}
		if got := st.failures[s.addr()]; got != 5 {
			t.Errorf("%s: the daemon recorded %d failed logins, want 5", s.name, got)
		}
		if bans := st.bansOf(s.addr()); len(bans) != 1 || bans[0].Expires.Sub(bans[0].Start) != time.Minute {
			t.Errorf("%s: bans recorded %+v, want one of a minute", s.name, bans)
		}
	}
}

// TestDaemonKilledDuringAttack: SIGKILL while a second source attacks.
// With no daemon the kernel keeps dropping the banned source and keeps the
// rate limit; the attack goes on in the logs; the restarted daemon catches
// up from its saved positions with every failure counted exactly once and
// every source banned exactly once.
func TestDaemonKilledDuringAttack(t *testing.T) {
	t.Parallel()
	const burst = 10
	l := newDaemonLab(t, 3, fmt.Sprintf(`
[datapath.rate_limit.auth]
per_minute = 60
burst = %d
`, burst))
	d := l.start()
	first, second, prober := l.source(1, false), l.source(2, true), l.source(3, false)

	for i := range 5 {
		l.failNotDropped(first, i)
	}
	l.waitDropped(first, 5*time.Second)

	// The second attack: the daemon dies after its third failure is
	// logged, and it goes on to 7 failures, more than the threshold, with
	// nobody reading the logs.
	const secondFailures = 7
	for i := range 3 {
		l.failNotDropped(second, i)
	}
	// Killed once the three are committed: the restarted daemon must still
	// count them, or the attacker gets 5 more attempts after every crash.
	third := map[netip.Addr]int{second.addr(): 3}
	l.waitLogged(third, 10*time.Second)
	if st := l.waitStored(third, 10*time.Second); st.failures[second.addr()] != 3 {
		t.Fatalf("%s: %d failed logins recorded before the kill, want 3", second.name, st.failures[second.addr()])
	}
	if err := d.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < secondFailures; i++ {
		l.failNotDropped(second, i)
	}
	l.mustBeDropped(first, "with the daemon killed")

	// The rate limit holds without the daemon: a burst of connects from a
	// source that never failed a login gets burst of them through (and a
	// token or two refilled meanwhile), no more.
	// All at once, so that the bucket refills (a token a second) as
	// little as possible meanwhile.
	const tries = 2 * burst
	results := make(chan bool, tries)
	for range tries {
		go func() { results <- l.connects(prober, maillab.SubmissionPort) }()
	}
	through := 0
	for range tries {
		if <-results {
			through++
		}
	}
	t.Logf("rate limit with the daemon dead: %d of %d connects got through (burst %d)", through, tries, burst)
	if through < burst || through > burst+2 {
		t.Errorf("rate limit with the daemon dead: %d of %d connects got through, want %d to %d", through, tries, burst, burst+2)
	}

	l.start()
	l.waitDropped(second, 10*time.Second)
	l.mustBeDropped(first, "after the restart")
	l.mustBeDropped(second, "after the restart")
	want := map[netip.Addr]int{first.addr(): 5, second.addr(): secondFailures}
	l.waitLogged(want, 10*time.Second)
	l.waitStored(want, 10*time.Second)
	// A clean stop, so that nothing is in flight while the store is read.
	if err := l.current().stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st := l.readStore()
	logged := failuresLogged(t, l.serverLogs()...)
	for a, n := range want {
		if logged[a] != n {
			t.Errorf("%s: the server logged %d failed logins, want %d", a, logged[a], n)
		}
		if st.failures[a] != n {
			t.Errorf("%s: the daemon recorded %d failed logins in %d events, want %d (none lost, none counted twice)", a, st.failures[a], st.events[a], n)
		}
		if bans := st.bansOf(a); len(bans) != 1 {
			t.Errorf("%s: %d bans recorded, want exactly 1: %+v", a, len(bans), bans)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inForce := map[netip.Prefix]int{}
	s, err := store.Open(ctx, l.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bans, err := s.BansInForce(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bans {
		inForce[b.Prefix]++
	}
	for p, n := range inForce {
		if n != 1 {
			t.Errorf("%s: %d bans in force, want 1", p, n)
		}
	}
	if len(inForce) != 2 {
		t.Errorf("bans in force: %v, want the two attackers'", inForce)
	}
}

// TestDaemonRestoresBansAfterReboot simulates a reboot: the daemon stops,
// `detach --all --purge` removes the program and every pinned map, and the
// next start puts the unexpired bans back in the kernel before it reads a
// log line.
func TestDaemonRestoresBansAfterReboot(t *testing.T) {
	t.Parallel()
	l := newDaemonLab(t, 3, "")
	d := l.start()
	banned := []source{l.source(1, false), l.source(2, true)}
	for _, s := range banned {
		for i := range 5 {
			l.failNotDropped(s, i)
		}
		l.waitDropped(s, 5*time.Second)
	}
	if err := d.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := l.cli("detach", "--all", "--purge"); r.code != 0 {
		t.Fatalf("portcullis detach --all --purge: exit %d: %s", r.code, r.stderr)
	}
	if entries, err := os.ReadDir(l.pinDir); err == nil && len(entries) > 0 {
		t.Fatalf("%s still holds %d pins after the purge", l.pinDir, len(entries))
	}
	// Nothing drops them now: the "reboot" really took the bans away. (With
	// IPv6, the client's neighbour entry may need a moment to recover.)
	for _, s := range banned {
		deadline := time.Now().Add(reconnectWithin)
		for !l.connects(s, 587) {
			if time.Now().After(deadline) {
				t.Fatalf("%s cannot connect with nothing attached", s.name)
			}
		}
	}

	d = l.start()
	for _, s := range banned {
		l.mustBeDropped(s, "right after the restart")
	}
	// A new attack after the restart: its ban is the first log line's
	// consequence, and must come after the restore.
	late := l.source(3, false)
	for i := range 5 {
		l.failNotDropped(late, i)
	}
	l.waitDropped(late, 5*time.Second)

	out := d.stderr.String()
	restored := strings.Index(out, `msg="restored bans to the kernel" bans=2`)
	running := strings.Index(out, "msg=running")
	firstBan := strings.Index(out, "msg=ban ")
	switch {
	case restored < 0:
		t.Errorf("the restarted daemon did not say it restored 2 bans:\n%s", out)
	case running < restored:
		t.Errorf("the daemon ran its log sources before restoring the bans:\n%s", out)
	case firstBan < 0 || firstBan < restored:
		t.Errorf("want the restore before the first ban from the logs:\n%s", out)
	}
	if !strings.Contains(out, "prefix="+late.addr().String()+"/32") {
		t.Errorf("the restarted daemon logged no ban of %s:\n%s", late.addr(), out)
	}
	// The CLI sees the same through the daemon's socket.
	r := l.cli("bans", "--json")
	if r.code != 0 {
		t.Fatalf("portcullis bans: exit %d: %s", r.code, r.stderr)
	}
	for _, s := range append(banned, late) {
		if p := netip.PrefixFrom(s.addr(), s.addr().BitLen()).String(); !strings.Contains(r.stdout, `"`+p+`"`) {
			t.Errorf("portcullis bans does not list %s: %s", p, r.stdout)
		}
	}
	if bans := l.readStore().bans; len(bans) != 3 {
		t.Errorf("%d bans recorded, want 3 (none duplicated by the restore): %+v", len(bans), bans)
	}
}

// TestDaemonLosesNothingToLogRotation: both logs are renamed mid-attack,
// the servers write a little more to the renamed files, then reopen their
// logs; every failed login becomes an event exactly once.
func TestDaemonLosesNothingToLogRotation(t *testing.T) {
	t.Parallel()
	// No bans: the attack must go on through the rotation.
	l := newDaemonLab(t, 2, `
[verdict]
threshold = 255
`)
	l.start()
	attackers := []source{l.source(1, false), l.source(2, true)}
	const before, between, after = 6, 4, 6
	n := 0
	attack := func(count int) {
		for range count {
			for _, s := range attackers {
				l.failNotDropped(s, n)
			}
			n++
		}
	}
	attack(before)
	l.waitLogged(map[netip.Addr]int{attackers[0].addr(): before, attackers[1].addr(): before}, 10*time.Second)

	rotated := []string{l.mail.PostfixLog() + ".1", l.mail.DovecotLog() + ".1"}
	for i, live := range l.serverLogs() {
		if err := os.Rename(live, rotated[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Still written to the renamed files: the servers hold them open.
	attack(between)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.mail.ReopenLogs(ctx); err != nil {
		t.Fatal(err)
	}
	attack(after)

	total := before + between + after
	want := map[netip.Addr]int{attackers[0].addr(): total, attackers[1].addr(): total}
	files := append(l.serverLogs(), rotated...)
	l.waitLogged(want, 10*time.Second, files...)
	// The new files must really be new, or nothing was rotated.
	if inNew := failuresLogged(t, l.serverLogs()...); inNew[attackers[0].addr()] == 0 {
		t.Fatalf("no failed login was logged to the reopened files: %v", inNew)
	}
	l.waitStored(want, 10*time.Second)
	if err := l.current().stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st := l.readStore()
	for a, n := range want {
		if st.failures[a] != n {
			t.Errorf("%s: the daemon recorded %d failed logins in %d events, want %d", a, st.failures[a], st.events[a], n)
		}
	}
}

// legitUser logs in with the right password over and over from its
// sources, each service in turn, until stopped.
type legitUser struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	ok   int
	errs []string
}

// keepLoggingIn starts a legitimate user's logins; the test stops them
// with stop (also done at cleanup).
func (l *daemonLab) keepLoggingIn(sources ...source) *legitUser {
	ctx, cancel := context.WithCancel(context.Background())
	u := &legitUser{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(u.done)
		for i := 0; ctx.Err() == nil; i++ {
			for _, s := range sources {
				ok, dropped, err := l.login(s, i, labAlice.Name, labAlice.Password)
				u.mu.Lock()
				switch {
				case err != nil:
					u.errs = append(u.errs, fmt.Sprintf("%s login %d: %v", s.name, i+1, err))
				case dropped:
					u.errs = append(u.errs, fmt.Sprintf("%s login %d: connection dropped", s.name, i+1))
				case !ok:
					u.errs = append(u.errs, fmt.Sprintf("%s login %d: refused", s.name, i+1))
				default:
					u.ok++
				}
				u.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond): // a person's pace, not a flood
			}
		}
	}()
	l.t.Cleanup(func() {
		cancel()
		<-u.done
	})
	return u
}

// waitOK waits until n more logins have succeeded, failing the test on a
// failed one or after within.
func (u *legitUser) waitOK(t *testing.T, n int, within time.Duration, when string) {
	t.Helper()
	u.mu.Lock()
	target := u.ok + n
	u.mu.Unlock()
	deadline := time.Now().Add(within)
	for {
		u.mu.Lock()
		ok, errs := u.ok, append([]string(nil), u.errs...)
		u.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("the legitimate user failed %s: %s", when, strings.Join(errs, "; "))
		}
		if ok >= target {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the legitimate user made %d of %d logins %s within %s", ok-(target-n), n, when, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends the logins and fails the test if any did not succeed.
func (u *legitUser) stop(t *testing.T) {
	t.Helper()
	u.cancel()
	<-u.done
	if len(u.errs) > 0 {
		t.Errorf("the legitimate user failed: %s", strings.Join(u.errs, "; "))
	}
	t.Logf("the legitimate user logged in %d times", u.ok)
}
