package maillab_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/tests/maillab"
)

// TestFailedLoginsAreLogged makes n failed logins of every kind and one
// successful login of every kind from one client over IPv4 and IPv6, and
// checks each server logged one line (or attempt count) per attempt.
func TestFailedLoginsAreLogged(t *testing.T) {
	const n = 4
	var steps []step
	for _, ipv6 := range []bool{false, true} {
		for _, k := range []struct{ service, what string }{
			{"smtp-submission", "AUTH LOGIN, wrong password"},
			{"smtp-submission", "AUTH PLAIN, unknown user"},
			{"imap", "LOGIN, wrong password"},
			{"pop3", "USER/PASS, unknown user"},
		} {
			user := alice.Name
			if strings.Contains(k.what, "unknown user") {
				user = "mallory"
			}
			port := map[string]int{"smtp-submission": 587, "imap": 143, "pop3": 110}[k.service]
			steps = append(steps,
				step{Client: 1, IPv6: ipv6, Service: k.service, Port: port, What: k.what, User: user, pass: "wrong", Conns: n, PerConn: 1},
				step{Client: 1, IPv6: ipv6, Service: k.service, Port: port, What: strings.Split(k.what, ",")[0] + ", success", User: alice.Name, pass: alice.Password, Conns: 1, PerConn: 1, Accepted: true},
			)
		}
	}
	lab := maillab.Start(t, maillab.Options{Users: []maillab.User{alice}, AuthVerbose: true})
	r := newRunner(t, lab, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	for _, s := range steps {
		if err := r.run(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	files := map[string]string{"postfix": lab.PostfixLog(), "dovecot": lab.DovecotLog()}
	counts := expectations(steps, true)
	if bad := waitForCounts(files, counts, 10*time.Second); len(bad) > 0 {
		t.Fatalf("the logs do not match the attempts:\n%s", strings.Join(bad, "\n"))
	}
	t.Logf("%d logins in %v, logs complete %v later", len(steps)/2*(n+1), elapsed.Round(time.Millisecond), (time.Since(start) - elapsed).Round(time.Millisecond))
	// Each client address appears in the logs: IPv4 and IPv6 really were
	// used, not one family twice.
	for _, path := range []string{lab.PostfixLog(), lab.DovecotLog()} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{lab.Client(1).Addr4().String(), lab.Client(1).Addr6().String()} {
			if !strings.Contains(string(b), a) {
				t.Errorf("%s never mentions client address %s", path, a)
			}
		}
	}
}

// TestCloseLeavesNoProcesses checks that closing a lab stops Postfix,
// Dovecot and sshd and every process they forked.
func TestCloseLeavesNoProcesses(t *testing.T) {
	_, err := os.Stat("/usr/sbin/sshd")
	withSSH := err == nil
	lab := maillab.Start(t, maillab.Options{SSH: withSSH})
	pids, err := lab.Processes()
	if err != nil {
		t.Fatal(err)
	}
	// pgrep's own view of the server namespace, as a cross-check of the
	// /proc scan behind Processes.
	out, err := exec.Command("pgrep", "--nslist", "net", "--ns", strconv.Itoa(pids[0]), "").CombinedOutput()
	if err != nil {
		t.Fatalf("pgrep --ns %d: %v: %s", pids[0], err, out)
	}
	names := map[string]bool{}
	for _, pid := range pids {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil {
			names[strings.TrimSpace(string(comm))] = true
		}
		if !strings.Contains("\n"+string(out), "\n"+strconv.Itoa(pid)+"\n") {
			t.Errorf("pgrep --ns does not list pid %d (%s)", pid, strings.TrimSpace(string(comm)))
		}
	}
	// Dovecot starts imap-login, pop3-login and auth on the first
	// connection; these run from the start.
	want := []string{"master", "qmgr", "postlogd", "dovecot", "anvil", "log", "config"}
	if withSSH {
		want = append(want, "sshd")
	}
	for _, w := range want {
		if !names[w] {
			t.Errorf("no %s process in the lab (have %v)", w, names)
		}
	}
	starts := map[int]string{}
	for _, pid := range pids {
		starts[pid], _ = startTime(pid)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	for pid, start := range starts {
		// A pid may have been reused since; the start time tells. A
		// zombie has exited: its parent is init once the master is gone,
		// and reaping is init's job (this sandbox's init is slow at it).
		if s, state := startTime(pid); s != "" && s == start && state != "Z" {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			t.Errorf("pid %d survived Close: %s", pid, b)
		}
	}
	if _, err := os.Stat(lab.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lab directory %s still there after Close: %v", lab.Dir(), err)
	}
	out, err = exec.Command("pgrep", "-f", lab.Dir()).CombinedOutput()
	if err == nil {
		t.Errorf("processes still name %s after Close:\n%s", lab.Dir(), out)
	}
}

// startTime returns fields 22 (start time) and 3 (state) of
// /proc/PID/stat, or "" when pid does not exist.
func startTime(pid int) (start, state string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", ""
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return "", ""
	}
	return fields[19], fields[0]
}

// TestLabsRunSideBySide starts two labs at once, as parallel test
// packages do, and logs in to both.
func TestLabsRunSideBySide(t *testing.T) {
	for i := range 2 {
		t.Run(fmt.Sprintf("lab%d", i), func(t *testing.T) {
			t.Parallel()
			lab := maillab.Start(t, maillab.Options{})
			u := lab.Users()[0]
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, login := range []func() (bool, error){
				func() (bool, error) { return lab.Client(1).IMAPLogin(ctx, lab.ServerAddr4(), u.Name, u.Password) },
				func() (bool, error) {
					return lab.Client(1).SMTPAuth(ctx, lab.ServerAddr6(), maillab.AuthPlain, u.Name, u.Password)
				},
			} {
				ok, err := login()
				if err != nil || !ok {
					t.Fatalf("login: accepted=%v err=%v", ok, err)
				}
			}
		})
	}
}

// TestDroppedIsAnErrorRejectedIsNot checks the contract later tests rely
// on: a refused login is (false, nil), a connection that cannot be made is
// an error, within the caller's deadline.
func TestDroppedIsAnErrorRejectedIsNot(t *testing.T) {
	lab := maillab.Start(t, maillab.Options{Clients: 2})
	ctx := context.Background()
	u := lab.Users()[0]
	ok, err := lab.Client(1).POP3Login(ctx, lab.ServerAddr4(), u.Name, "wrong")
	if ok || err != nil {
		t.Fatalf("wrong password: accepted=%v err=%v, want false, nil", ok, err)
	}
	// Cut client 1's link on the server side: its packets now vanish, as
	// they will when XDP drops them.
	if out, err := lab.ServerNS().Command(ctx, "ip", "link", "set", lab.ServerLinks()[0], "down").CombinedOutput(); err != nil {
		t.Fatalf("set %s down: %v: %s", lab.ServerLinks()[0], err, out)
	}
	for _, login := range []struct {
		name string
		fn   func(context.Context) (bool, error)
	}{
		{"smtp", func(ctx context.Context) (bool, error) {
			return lab.Client(1).SMTPAuth(ctx, lab.ServerAddr4(), maillab.AuthLogin, u.Name, "wrong")
		}},
		{"imap", func(ctx context.Context) (bool, error) {
			return lab.Client(1).IMAPLogin(ctx, lab.ServerAddr6(), u.Name, "wrong")
		}},
	} {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		start := time.Now()
		ok, err := login.fn(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s over a dead link: accepted=%v, want an error", login.name, ok)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s over a dead link took %v, want about the 1s deadline", login.name, d)
		}
	}
	// The other client is unaffected.
	ok, err = lab.Client(2).IMAPLogin(ctx, lab.ServerAddr4(), u.Name, u.Password)
	if !ok || err != nil {
		t.Fatalf("client 2 login: accepted=%v err=%v, want true, nil", ok, err)
	}
}
