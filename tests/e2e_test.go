// Package tests holds the end-to-end tests: the real CLI binary drives the
// real kernel datapath on a veth pair between two network namespaces, and
// real TCP clients find out what it drops.
package tests

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/internal/testnet"
)

func TestBanDropsAndUnbanRestores(t *testing.T) {
	inEachFamily(t, func(t *testing.T, l *lab, f family) {
		l.mustConnect(f, portSubmission, "before the ban")

		l.ok("ban", l.client(f).String(), "--reason", "e2e brute force")
		for _, port := range []uint16{portSubmission, portMX, portOpen} {
			l.mustNotConnect(f, port, "banned with scope all")
		}
		bans := l.bans()
		want := netip.PrefixFrom(l.client(f), f.bits).String()
		if len(bans) != 1 || bans[0].Prefix != want || bans[0].Scope != "all" || bans[0].Reason != "e2e brute force" {
			t.Fatalf("bans = %+v, want one of %s, scope all", bans, want)
		}
		if bans[0].Expires == nil {
			t.Error("a ban without --for or --permanent never expires, want the default duration")
		} else if exp, err := time.Parse(time.RFC3339, *bans[0].Expires); err != nil || !exp.After(time.Now()) {
			t.Errorf("expires = %q (%v), want an RFC 3339 time in the future", *bans[0].Expires, err)
		}
		if bans[0].Hits == 0 {
			t.Error("the ban dropped SYNs but counts no hits")
		}
		if st := l.stats(); st.DroppedBan == 0 {
			t.Errorf("stats after dropped connects: %+v, want dropped_ban > 0", st)
		}

		l.ok("unban", l.client(f).String())
		l.mustConnectAgain(f, portSubmission, "after unban")
		l.mustConnectAgain(f, portOpen, "after unban")
		if bans := l.bans(); len(bans) != 0 {
			t.Errorf("bans after unban: %+v", bans)
		}
	})
}

func TestPrefixBanCoversTheClient(t *testing.T) {
	inEachFamily(t, func(t *testing.T, l *lab, f family) {
		bits := 24
		if f.bits == 128 {
			bits = 64
		}
		p := netip.PrefixFrom(l.client(f), bits).Masked()
		l.ok("ban", p.String(), "--permanent")
		l.mustNotConnect(f, portSubmission, "client inside a banned "+p.String())
		bans := l.bans()
		if len(bans) != 1 || bans[0].Prefix != p.String() || bans[0].Expires != nil {
			t.Errorf("bans = %+v, want %s permanent (expires null)", bans, p)
		}
		l.ok("unban", p.String())
		l.mustConnectAgain(f, portSubmission, "after unban of the prefix")
	})
}

func TestMailScopeBanSparesOtherPorts(t *testing.T) {
	inEachFamily(t, func(t *testing.T, l *lab, f family) {
		l.ok("ban", l.client(f).String(), "--scope", "mail")
		l.mustNotConnect(f, portSubmission, "banned with scope mail")
		l.mustNotConnect(f, portMX, "banned with scope mail")
		l.mustConnect(f, portOpen, "banned with scope mail, to an unprotected port")
		if e := l.explain(l.client(f), portOpen); e.Action != "pass" {
			t.Errorf("explain to the unprotected port: %+v, want pass", e)
		}
		if e := l.explain(l.client(f), portSubmission); e.Action != "drop" || e.Rule != "ban" {
			t.Errorf("explain to 587: %+v, want drop by ban", e)
		}
	})
}

func TestSYNBurstOverRateLimitIsDropped(t *testing.T) {
	inEachFamily(t, func(t *testing.T, l *lab, f family) {
		l.ok("ratelimit", "--class", "auth", "--rate", "60/min", "--burst", "3")
		before := l.stats()

		// One token a second, three at once. Each dropped attempt
		// waits short of the kernel's first SYN retransmission (1s), so
		// it is one SYN and the bucket cannot refill during the burst.
		const attempts = 6
		const timeout = 150 * time.Millisecond
		var got []bool
		start := time.Now()
		for range attempts {
			got = append(got, l.connectsWithin(f, portSubmission, timeout))
		}
		elapsed := time.Since(start)
		t.Logf("connects %v in %s", got, elapsed.Round(time.Millisecond))
		dropped := 0
		for i, ok := range got {
			if i < 3 && !ok {
				t.Errorf("connect %d of the burst of 3 failed", i+1)
			}
			if !ok {
				dropped++
			}
		}
		// The burst took under a second, so at most one token came back.
		if elapsed < time.Second && dropped < attempts-3-1 {
			t.Errorf("%d of %d connects dropped in %s, want at least %d (connects: %v)", dropped, attempts, elapsed, attempts-4, got)
		}
		if got[3] {
			t.Errorf("connect 4 went through right after a burst of 3 (connects: %v)", got)
		}

		after := l.stats()
		if after.DroppedRate-before.DroppedRate < uint64(dropped) {
			t.Errorf("dropped_rate rose from %d to %d, want at least %d more", before.DroppedRate, after.DroppedRate, dropped)
		}
		if after.SynSeen-before.SynSeen < attempts {
			t.Errorf("syn_seen rose from %d to %d, want at least %d more", before.SynSeen, after.SynSeen, attempts)
		}
		// The mx class keeps its own, untouched bucket.
		l.mustConnect(f, portMX, "mx while auth is rate limited")

		var top []sourceJSON
		l.okJSON(&top, "top", "--json")
		src := netip.PrefixFrom(l.client(f), f.bits)
		if f.bits == 128 {
			src = netip.PrefixFrom(l.client(f), 64).Masked() // IPv6 sources share a bucket per /64
		}
		found := false
		for _, s := range top {
			if s.Source == src.String() {
				found = true
				if s.SynAuth < attempts || s.Dropped < uint64(dropped) {
					t.Errorf("top reports %+v, want at least %d auth SYNs and %d drops", s, attempts, dropped)
				}
			}
		}
		if !found {
			t.Errorf("top = %+v, want the client %s", top, src)
		}
	})
}

func TestBansSurviveCLIExitAndReattach(t *testing.T) {
	inEachFamily(t, func(t *testing.T, l *lab, f family) {
		first := l.status()
		if len(first.Attached) != 1 {
			t.Fatalf("status after attach: %+v, want one attachment", first.Attached)
		}
		l.ok("ban", l.client(f).String(), "--permanent")
		// Every CLI run above has exited: only pinned state is left.
		l.mustNotConnect(f, portSubmission, "banned, no process running")

		out := l.attach()
		if !strings.Contains(out, "already attached") {
			t.Errorf("second attach says %q, want already attached", out)
		}
		second := l.status()
		if len(second.Attached) != 1 || second.Attached[0].LinkID != first.Attached[0].LinkID {
			t.Errorf("attachments after a second attach: %+v, want only link %d", second.Attached, first.Attached[0].LinkID)
		}
		if second.Program.ProgramID != first.Program.ProgramID {
			t.Errorf("program changed from %d to %d on re-attach of the same build", first.Program.ProgramID, second.Program.ProgramID)
		}
		if got := l.xdpProgID(); got != second.Program.ProgramID {
			t.Errorf("netlink reports program %d on %s, want %d", got, l.iface, second.Program.ProgramID)
		}
		entries, err := os.ReadDir(filepath.Join(l.pinDir, "links"))
		if err != nil || len(entries) != 1 {
			t.Errorf("pinned links: %v (%v), want one", entries, err)
		}
		if bans := l.bans(); len(bans) != 1 {
			t.Errorf("bans after re-attach: %+v, want the one ban", bans)
		}
		l.mustNotConnect(f, portSubmission, "banned, after a second attach")
	})
}

func TestExpiringBanLiftsWithoutUserspace(t *testing.T) {
	inEachFamily(t, func(t *testing.T, l *lab, f family) {
		banned := time.Now()
		l.ok("ban", l.client(f).String(), "--for", "2s")
		if l.connectsWithin(f, portSubmission, 500*time.Millisecond) {
			t.Fatal("client connected right after a 2s ban")
		}
		// No portcullis process runs from here on: the kernel alone
		// must stop enforcing once the ban's time is up.
		deadline := banned.Add(15 * time.Second)
		for !l.connectsWithin(f, portSubmission, 250*time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("a 2s ban still drops after %s", time.Since(banned).Round(time.Millisecond))
			}
		}
		lifted := time.Since(banned)
		t.Logf("a 2s ban lifted after %s", lifted.Round(time.Millisecond))
		if lifted < 1500*time.Millisecond {
			t.Errorf("a 2s ban lifted after only %s", lifted)
		}
		// The expired ban is still listed until something collects it,
		// but it drops nothing.
		if e := l.explain(l.client(f), portSubmission); e.Action != "pass" {
			t.Errorf("explain after expiry: %+v, want pass", e)
		}
	})
}

func TestExplainAsksTheKernelAndSpendsNothing(t *testing.T) {
	inEachFamily(t, func(t *testing.T, l *lab, f family) {
		l.ok("ratelimit", "--class", "auth", "--rate", "60/min", "--burst", "3")

		// Another address of the same family, banned; the client is not.
		other := netip.MustParseAddr("198.18.0.77")
		if f.bits == 128 {
			other = netip.MustParseAddr("fd00:77::1")
		}
		l.ok("ban", other.String())
		if e := l.explain(other, portSubmission); e.Action != "drop" || e.Rule != "ban" {
			t.Errorf("explain %s (banned): %+v, want drop by ban", other, e)
		}
		e := l.explain(l.client(f), portSubmission)
		if e.Action != "pass" || e.Class != "auth" {
			t.Errorf("explain %s (not banned): %+v, want pass in class auth", l.client(f), e)
		}
		if e.Tokens == nil || *e.Tokens != 3 {
			t.Errorf("explain reports tokens %v, want a full bucket of 3", e.Tokens)
		}
		before := l.stats()

		for range 100 {
			l.ok("explain", l.client(f).String(), "--port", fmt.Sprint(portSubmission))
		}
		// Only the SYN counters: neighbour discovery and the like may
		// pass meanwhile.
		after := l.stats()
		if after.SynSeen != before.SynSeen || after.DroppedRate != before.DroppedRate || after.DroppedBan != before.DroppedBan {
			t.Errorf("explaining changed the counters: %+v, then %+v", before, after)
		}
		if e := l.explain(l.client(f), portSubmission); e.Tokens == nil || *e.Tokens != 3 {
			t.Errorf("after 100 explains the bucket holds %v tokens, want 3", e.Tokens)
		}
		for i := range 3 {
			if !l.connects(f, portSubmission) {
				t.Errorf("connect %d of 3 failed after 100 explains: explain spent tokens", i+1)
			}
		}
	})
}

func TestBadInputIsOneLineError(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.attach()
	tests := []struct {
		args []string
		want []string // substrings of the error
	}{
		{[]string{"ban", "300.1.1.1"}, []string{"300.1.1.1"}},
		{[]string{"ban", "10.0.0.1/24"}, []string{"10.0.0.1/24", "host bits"}},
		{[]string{"ban", "fe80::1%eth0"}, []string{"fe80::1%eth0"}},
		{[]string{"ban", "198.18.0.0/33"}, []string{"198.18.0.0/33"}},
		{[]string{"ban", "198.18.0.9", "--for", "soon"}, []string{"soon"}},
		{[]string{"ban", "198.18.0.9", "--scope", "web"}, []string{"web"}},
		{[]string{"unban", "not-an-address"}, []string{"not-an-address"}},
		{[]string{"unban", "198.18.0.200"}, []string{"198.18.0.200", "not banned"}},
		{[]string{"explain", "300.1.1.1"}, []string{"300.1.1.1"}},
		{[]string{"allow", "add", "198.18.0.1/33"}, []string{"198.18.0.1/33"}},
		{[]string{"ratelimit", "--class", "auth", "--rate", "fast"}, []string{"fast"}},
		{[]string{"ratelimit", "--class", "web", "--rate", "5/min"}, []string{"web"}},
		{[]string{"attach", "--iface", "pcnosuch0"}, []string{"pcnosuch0", "no such interface"}},
		{[]string{"attach", "--iface", l.iface, "--mode", "offload"}, []string{"offload"}},
		{[]string{"detach", "--iface", "pcnosuch0"}, []string{"pcnosuch0", "not attached"}},
		{[]string{"frobnicate"}, []string{"frobnicate"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			msg := l.in(t).fails(tt.args...)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
	// None of it changed anything.
	if bans := l.bans(); len(bans) != 0 {
		t.Errorf("bans after bad input: %+v", bans)
	}
	if st := l.status(); len(st.Attached) != 1 {
		t.Errorf("attachments after bad input: %+v", st.Attached)
	}
}

func TestNothingAttachedIsAnError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		loaded bool
		args   []string
		want   string
	}{
		{"detach an interface, never loaded", false, []string{"detach", "--iface", "pcx0"}, "not attached"},
		{"detach all, never loaded", false, []string{"detach", "--all"}, "not attached"},
		{"detach all with purge, never loaded", false, []string{"detach", "--all", "--purge"}, "not attached"},
		{"detach all, loaded but detached", true, []string{"detach", "--all"}, "not attached"},
		{"attach an unknown interface, never loaded", false, []string{"attach", "--iface", "pcnosuch0"}, "pcnosuch0"},
		{"bans, never loaded", false, []string{"bans"}, "attach"},
		{"stats, never loaded", false, []string{"stats"}, "attach"},
		{"explain, never loaded", false, []string{"explain", "198.18.0.1"}, "attach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := newLab(t)
			if tt.loaded {
				l.attach()
				l.ok("detach", "--iface", l.iface)
				if id := l.xdpProgID(); id != 0 {
					t.Fatalf("program %d still on %s after detach", id, l.iface)
				}
			}
			msg := l.fails(tt.args...)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not say %q", msg, tt.want)
			}
		})
	}
}

func TestIncompatiblePinDirIsRefused(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	if err := os.Mkdir(l.pinDir, 0o700); err != nil {
		t.Fatal(err)
	}
	id := l.pinIncompatibleBans()
	msg := l.fails("attach", "--iface", l.iface)
	for _, w := range []string{"incompatible", "detach --all --purge"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
	if id := l.xdpProgID(); id != 0 {
		t.Errorf("program %d attached from an incompatible pin directory", id)
	}
	if got := l.pinnedMapID(bpf.MapBans); got != id {
		t.Errorf("the incompatible map was replaced: id %d, want %d", got, id)
	}
	// The remedy the message names works.
	l.ok("detach", "--all", "--purge")
	l.attach()
	l.mustConnect(families[0], portSubmission, "after purge and attach")
}

// Every command that reads or writes the maps must say what is wrong with
// a pin directory an incompatible build made, and what to do, rather than
// fail on a record size or, worse, answer from maps it cannot read.
func TestIncompatibleMapsAreNamedByEveryCommand(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.attach()
	id := l.pinIncompatibleBans()
	tests := [][]string{
		{"attach", "--iface", l.iface},
		{"ban", "198.18.0.9"},
		{"unban", "198.18.0.9"},
		{"bans"},
		{"status"},
		{"explain", "198.18.0.9"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			msg := l.in(t).fails(args...)
			for _, w := range []string{"incompatible", "detach --all --purge"} {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
	if got := l.pinnedMapID(bpf.MapBans); got != id {
		t.Errorf("the incompatible map was replaced: id %d, want %d", got, id)
	}
}

func TestDetachAllPurgeRemovesEverything(t *testing.T) {
	inEachFamily(t, func(t *testing.T, l *lab, f family) {
		l.ok("ban", l.client(f).String(), "--permanent")
		l.ok("allow", "add", "198.18.9.0/24")
		l.mustNotConnect(f, portSubmission, "banned")

		out := l.ok("detach", "--all", "--purge")
		if !strings.Contains(out, "detached from "+l.iface) {
			t.Errorf("detach says %q", out)
		}
		if _, err := os.Stat(l.pinDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pin directory still there after purge (stat: %v)", err)
		}
		if id := l.xdpProgID(); id != 0 {
			t.Errorf("program %d still on %s after purge", id, l.iface)
		}
		l.mustConnectAgain(f, portSubmission, "after purge")
		l.fails("bans")

		// A fresh attach starts from nothing.
		if out := l.attach(); !strings.Contains(out, "attached to "+l.iface) || strings.Contains(out, "already") {
			t.Errorf("attach after purge says %q, want a new attachment", out)
		}
		if bans := l.bans(); len(bans) != 0 {
			t.Errorf("bans after purge and a fresh attach: %+v", bans)
		}
	})
}

func TestPinDirFromEnvOrAfterTheCommand(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.attach()
	l.ok("ban", "198.18.0.99")
	tests := []struct {
		name string
		env  []string
		args []string
	}{
		{"flag before the command", nil, []string{"--pin-dir", l.pinDir, "bans", "--json"}},
		{"flag after the command", nil, []string{"bans", "--pin-dir", l.pinDir, "--json"}},
		{"environment", []string{"PORTCULLIS_PIN_DIR=" + l.pinDir}, []string{"bans", "--json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := l.in(t).runEnv(tt.env, tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, `"198.18.0.99/32"`) {
				t.Errorf("bans from %s: %s", l.pinDir, r.stdout)
			}
		})
	}
}

func TestAllowlistWinsOverBan(t *testing.T) {
	inEachFamily(t, func(t *testing.T, l *lab, f family) {
		l.ok("allow", "add", l.client(f).String())
		l.ok("ban", l.client(f).String())
		before := l.stats()
		l.mustConnect(f, portSubmission, "banned but allowlisted")
		if e := l.explain(l.client(f), portSubmission); e.Action != "pass" || e.Rule != "allowlist" {
			t.Errorf("explain: %+v, want pass by allowlist", e)
		}
		if after := l.stats(); after.Allowlisted <= before.Allowlisted {
			t.Errorf("allowlisted counter did not rise: %d, then %d", before.Allowlisted, after.Allowlisted)
		}
		l.ok("allow", "del", l.client(f).String())
		l.mustNotConnect(f, portSubmission, "banned, allowlist entry removed")
	})
}

// An IPv4-mapped IPv6 address is the IPv4 address: banning it bans the
// IPv4 client and is listed in IPv4 form.
func TestMappedAddressBansTheIPv4Client(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	l.attach()
	v4 := families[0]
	tests := []struct{ arg, listed string }{
		{"::ffff:" + l.client(v4).String(), l.client(v4).String() + "/32"},
		{"::ffff:198.18.0.0/120", "198.18.0.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			l := l.in(t)
			l.ok("ban", tt.arg)
			bans := l.bans()
			if len(bans) != 1 || bans[0].Prefix != tt.listed {
				t.Errorf("bans = %+v, want %s", bans, tt.listed)
			}
			l.mustNotConnect(v4, portSubmission, "banned as "+tt.arg)
			l.ok("unban", tt.arg)
			l.mustConnectAgain(v4, portSubmission, "unbanned as "+tt.arg)
		})
	}
}

func TestAttachSeveralInterfaces(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	// A second link between the same namespaces, on its own subnet.
	client2, server2 := netip.MustParseAddr("198.19.0.1"), netip.MustParseAddr("198.19.0.2")
	_, second := testnet.Veth(t, l.pair.Client, l.pair.Server,
		[]netip.Prefix{netip.PrefixFrom(client2, 24)}, []netip.Prefix{netip.PrefixFrom(server2, 24)})
	out := l.ok("attach", "--iface", l.iface, "--iface", second.Name)
	for _, iface := range []string{l.iface, second.Name} {
		if !strings.Contains(out, "attached to "+iface) {
			t.Errorf("attach says %q, want %s attached", out, iface)
		}
	}
	if st := l.status(); len(st.Attached) != 2 {
		t.Fatalf("status: %+v, want two attachments", st.Attached)
	}
	dst2 := netip.AddrPortFrom(server2, portSubmission)
	l.ok("ban", client2.String())
	if l.dial(client2, dst2, dialTimeout) {
		t.Error("banned client connected over the second interface")
	}
	l.ok("detach", "--iface", second.Name)
	if st := l.status(); len(st.Attached) != 1 || st.Attached[0].Iface != l.iface {
		t.Errorf("status after detaching %s: %+v, want only %s", second.Name, st.Attached, l.iface)
	}
	deadline := time.Now().Add(reconnectWithin)
	for !l.dial(client2, dst2, dialTimeout) {
		if time.Now().After(deadline) {
			t.Fatalf("client could not connect over the detached %s", second.Name)
		}
	}
	// The first interface still enforces.
	l.ok("ban", l.client(families[0]).String())
	l.mustNotConnect(families[0], portSubmission, "banned, first interface still attached")
}

// A second `attach` from a newer build upgrades the program in place: here
// the pinned program and the one in the link are swapped for a stand-in
// that passes everything, as an older build's would be, and attach must put
// this build's back into the same link, bans kept.
func TestAttachUpgradesAnotherBuildInPlace(t *testing.T) {
	inEachFamily(t, func(t *testing.T, l *lab, f family) {
		l.ok("ban", l.client(f).String(), "--permanent")
		before := l.status()
		if len(before.Attached) != 1 {
			t.Fatalf("status: %+v, want one attachment", before.Attached)
		}

		older, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: "portcullis", Type: ebpf.XDP, AttachType: ebpf.AttachXDP, License: "MIT",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2 /* XDP_PASS */), asm.Return()},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer older.Close()
		lk, err := link.LoadPinnedLink(filepath.Join(l.pinDir, "links", l.iface), nil)
		if err != nil {
			t.Fatal(err)
		}
		err = lk.Update(older)
		lk.Close()
		if err != nil {
			t.Fatal(err)
		}
		progPin := filepath.Join(l.pinDir, "portcullis")
		if err := os.Remove(progPin); err != nil {
			t.Fatal(err)
		}
		if err := older.Pin(progPin); err != nil {
			t.Fatal(err)
		}
		l.mustConnectAgain(f, portSubmission, "the stand-in passes everything")

		l.attach()
		after := l.status()
		if after.Program.ProgramID == before.Program.ProgramID {
			t.Errorf("program id %d unchanged: want a newly loaded program", after.Program.ProgramID)
		}
		if got := l.xdpProgID(); got != after.Program.ProgramID {
			t.Errorf("%s runs program %d, want the pinned %d", l.iface, got, after.Program.ProgramID)
		}
		if len(after.Attached) != 1 || after.Attached[0].LinkID != before.Attached[0].LinkID {
			t.Errorf("attachments %+v, want link %d updated in place", after.Attached, before.Attached[0].LinkID)
		}
		if bans := l.bans(); len(bans) != 1 {
			t.Errorf("bans after the upgrade: %+v, want the one ban", bans)
		}
		l.mustNotConnect(f, portSubmission, "banned, after the upgrade")
	})
}
