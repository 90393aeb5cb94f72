package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/alert"
	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/store"
)

// inbox is a real HTTP server taking the daemon's alerts as JSON webhooks.
type inbox struct {
	URL  string
	mu   sync.Mutex
	msgs []alert.Message
}

func newInbox(t *testing.T) *inbox {
	in := &inbox{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m alert.Message
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		in.mu.Lock()
		in.msgs = append(in.msgs, m)
		in.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	in.URL = srv.URL
	return in
}

// wait returns the first message with key (and, when recovery is set, the
// first recovery of it), or fails the test after 10s.
func (in *inbox) wait(t *testing.T, key string, recovery bool) alert.Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		in.mu.Lock()
		for _, m := range in.msgs {
			if m.Key == key && m.Recovery == recovery {
				in.mu.Unlock()
				return m
			}
		}
		var keys []string
		for _, m := range in.msgs {
			keys = append(keys, m.Key)
		}
		in.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no alert %q (recovery %v) within 10s; got %v", key, recovery, keys)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closedAddr is a loopback port nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// alerting makes the daemon check every 100ms and send to an unreachable
// SMTP relay first, then to in.
func (h *harness) alerting(t *testing.T, in *inbox) {
	h.cfg.Alerts.CheckInterval = config.Duration(100 * time.Millisecond)
	h.cfg.Alerts.Channels = []config.AlertChannel{
		{Name: "relay", Type: "smtp", Address: closedAddr(t)},
		{Name: "chat", Type: "webhook", URL: in.URL, Format: "json"},
	}
}

func TestRemovedLinkIsReattachedAndAlerted(t *testing.T) {
	h := newHarness(t)
	in := newInbox(t)
	h.alerting(t, in)
	h.start()
	iface := h.pair.ServerLink.Name

	if err := loader.Detach(h.cfg.Daemon.PinDir, iface); err != nil {
		t.Fatal(err)
	}
	m := in.wait(t, "xdp:"+iface, false)
	if !strings.Contains(m.Subject, "re-attached") || !strings.Contains(m.Body, "its XDP link was removed") {
		t.Errorf("alert %q: %q, want it to say the link was removed and re-attached", m.Subject, m.Body)
	}
	err := h.pair.Server.Do(func() error {
		atts, err := loader.Attachments(h.cfg.Daemon.PinDir)
		if err != nil {
			return err
		}
		if len(atts) != 1 || atts[0].Iface != iface || atts[0].Stale {
			return fmt.Errorf("attachments %+v, want %s attached again", atts, iface)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The unreachable relay was tried first: the alert came through chat
	// saying so, and status shows the relay failing with a retry pending.
	if !strings.Contains(m.Body, `channel "relay" failed`) {
		t.Errorf("alert body %q does not say the relay failed", m.Body)
	}
	in.wait(t, "channel:relay", false)
	resp, err := Call(context.Background(), h.cfg.Daemon.Socket, Request{Command: "status"})
	if err != nil {
		t.Fatal(err)
	}
	chs := resp.Status.Alerts.Channels
	if len(chs) != 2 || !chs[0].Failing || chs[0].Pending < 1 || !strings.Contains(chs[0].LastError, "connection refused") || chs[1].Sent < 1 || chs[1].Failing {
		t.Errorf("status alert channels %+v, want relay failing with a retry pending, chat sending", chs)
	}
}

func TestFullBanMapAlerts(t *testing.T) {
	h := newHarness(t)
	in := newInbox(t)
	h.alerting(t, in)
	h.cfg.Datapath.Capacity.Bans = 16
	h.start()

	m := h.maps()
	var bans []maps.Ban
	for i := range 15 {
		bans = append(bans, maps.Ban{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 32), Scope: maps.ScopeAll, Reason: "fill"})
	}
	if err := m.AddBans(bans); err != nil {
		t.Fatal(err)
	}
	got := in.wait(t, "map:bans", false)
	if !strings.Contains(got.Subject, "kernel map bans is 93% full (15 of 16)") {
		t.Errorf("capacity alert %q", got.Subject)
	}

	// Two more sources earn bans; the map takes only one.
	for _, addr := range []string{"198.51.100.1", "198.51.100.2"} {
		for range 5 {
			h.appendLog(saslFailure(addr))
		}
	}
	k := in.wait(t, "kernel:update", false)
	if !strings.Contains(k.Body, "map is full") {
		t.Errorf("kernel update alert %q, want it to say the map is full", k.Body)
	}

	// Room again: the capacity alert clears.
	for _, b := range bans {
		if err := m.DeleteBan(b.Prefix); err != nil {
			t.Fatal(err)
		}
	}
	in.wait(t, "map:bans", true)
}

func TestUncleanRestartAndFailedReloadAlert(t *testing.T) {
	h := newHarness(t)
	in := newInbox(t)
	h.cfg.Alerts.CheckInterval = config.Duration(100 * time.Millisecond)
	h.cfg.Alerts.Channels = []config.AlertChannel{{Name: "chat", Type: "webhook", URL: in.URL, Format: "json"}}
	// The daemon before this one died: its last heartbeat is not clean.
	if err := os.MkdirAll(h.cfg.Daemon.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), h.cfg.Daemon.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(alert.Heartbeat{PID: 99999, At: time.Now().Add(-time.Minute)})
	if err := st.SetMeta(context.Background(), alert.HeartbeatKey, string(b)); err != nil {
		t.Fatal(err)
	}
	st.Close()
	var bad atomic.Bool
	bad.Store(true)
	h.reload = func() (config.Config, error) {
		if bad.Load() {
			return config.Config{}, fmt.Errorf("portcullis.toml:3: verdict.window: invalid duration")
		}
		return h.cfg, nil
	}
	h.start()

	if m := in.wait(t, "daemon:unclean", false); !strings.Contains(m.Body, "pid 99999") {
		t.Errorf("unclean-exit alert %q, want the dead daemon's pid", m.Body)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := in.wait(t, "config:reload", false); !strings.Contains(m.Body, "verdict.window: invalid duration") {
		t.Errorf("reload alert %q, want the config error", m.Body)
	}
	bad.Store(false)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	in.wait(t, "config:reload", true)
}

// Lines that read like failed logins but that no rule reads (a changed log
// format) are reported, so the daemon never goes blind quietly.
func TestUnreadableFailureLinesAreAlerted(t *testing.T) {
	h := newHarness(t)
	in := newInbox(t)
	h.alerting(t, in)
	h.cfg.Alerts.Health.Unmatched = 5
	h.start()
	for i := 0; i < 6; i++ {
		// Postfix 9.9 (say) writes its SASL failures in a new shape.
		h.appendLog(time.Now().Format(time.Stamp) + " mx postfix/smtpd[9]: SASL authentication failure for client 198.18.99.9 (user alice)")
	}
	m := in.wait(t, "gap:files ["+h.log+"]", false)
	if !strings.Contains(m.Subject, "no rule reads them") || !strings.Contains(m.Body, "198.18.99.9") || !strings.Contains(m.Body, "portcullis logs test") {
		t.Errorf("alert %q:\n%s\nwant the count, the latest line and the command to look closer", m.Subject, m.Body)
	}
	if _, err := h.maps().LookupBan(netip.MustParsePrefix("198.18.99.9/32")); err == nil {
		t.Errorf("an unread line banned its source")
	}
}

// The running daemon raises the attack alerts from what it sees: a
// failed-login spike and a ban storm from its log, and a SYN spike from the
// kernel's counters of real SYNs sent across the veth pair.
func TestDaemonRaisesAttackAlerts(t *testing.T) {
	h := newHarness(t)
	in := newInbox(t)
	h.alerting(t, in)
	a := &h.cfg.Alerts.Attack
	a.FailuresPerMinute, a.MinFailures = 8, 1
	a.BanStorm = 2
	a.SYNsPerMinute, a.SourceSYNsPerMinute = 5, 0
	h.cfg.Datapath.RateLimit.MX.PerMinute = 0 // count the SYNs, drop none
	h.start()

	for i := 0; i < 5; i++ {
		h.appendLog(saslFailure("198.18.101.1"), saslFailure("198.18.101.2"))
	}
	spike := in.wait(t, "attack:failures", false)
	if !strings.Contains(spike.Body, "2 distinct sources") && !strings.Contains(spike.Subject, "2 sources") {
		t.Errorf("the spike does not read as two machines:\n%s\n%s", spike.Subject, spike.Body)
	}
	in.wait(t, "attack:banstorm", false)

	// SYNs from the client namespace to port 25 of the server (nothing
	// listens: each is a SYN, answered by a reset).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		if c, err := h.pair.Client.Dial(ctx, "tcp", netip.AddrPortFrom(h.pair.ServerAddr4, 25)); err == nil {
			c.Close()
		}
	}
	syn := in.wait(t, "attack:syn", false)
	if !strings.Contains(syn.Body, h.pair.ClientAddr4.String()) {
		t.Errorf("the SYN spike does not name its source %s:\n%s", h.pair.ClientAddr4, syn.Body)
	}
}
