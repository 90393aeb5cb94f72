package alert

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hook is a real HTTP server that keeps what is posted to it; it answers
// 503 while down is set.
type hook struct {
	srv  *httptest.Server
	down atomic.Bool
	mu   sync.Mutex
	got  [][]byte
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.down.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got = append(h.got, b)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) texts(t *testing.T) []string {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, b := range h.got {
		var p struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &p); err != nil || p.Text == "" {
			t.Fatalf("webhook got %s, want a Slack payload {\"text\": ...}", b)
		}
		out = append(out, p.Text)
	}
	return out
}

// clock is a fake clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestWebhookFormats(t *testing.T) {
	h := newHook(t)
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	m := Message{Key: "stall:/var/log/mail.log", Severity: Critical, Subject: "log is not being read", Body: "300 bytes unread\n", At: at, Since: at.Add(-time.Minute), Host: "mx1"}
	for _, format := range []string{FormatSlack, FormatJSON} {
		if err := (&Webhook{ChannelName: "chat", URL: h.srv.URL, Format: format}).Send(context.Background(), m); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
	}
	var slack struct{ Text string }
	if err := json.Unmarshal(h.got[0], &slack); err != nil {
		t.Fatal(err)
	}
	if want := "[portcullis CRITICAL] mx1: log is not being read\n300 bytes unread"; slack.Text != want {
		t.Errorf("slack text %q, want %q", slack.Text, want)
	}
	var generic Message
	if err := json.Unmarshal(h.got[1], &generic); err != nil {
		t.Fatal(err)
	}
	if generic.Key != m.Key || generic.Severity != Critical || !generic.Since.Equal(m.Since) || generic.Body != m.Body || generic.Host != "mx1" {
		t.Errorf("json payload %+v, want the message %+v", generic, m)
	}
	h.down.Store(true)
	err := (&Webhook{URL: h.srv.URL}).Send(context.Background(), m)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "down for maintenance") {
		t.Errorf("send to a 503 webhook: %v, want the status and the server's words", err)
	}
}

func TestCooldownHoldsRepeatsAndCountsThem(t *testing.T) {
	h := newHook(t)
	clk := &clock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	s := NewSender(Options{Channels: []Channel{&Webhook{ChannelName: "chat", URL: h.srv.URL}}, Logger: quiet(), Now: clk.Now, Cooldown: time.Hour, Host: "mx1"})
	ctx := context.Background()
	m := Message{Key: "map:bans", Severity: Critical, Subject: "map bans is 95% full", Body: "95 of 100\n"}
	if r := s.Alert(ctx, m); r.Held || r.Delivered != "chat" {
		t.Fatalf("first alert: %+v, want delivered through chat", r)
	}
	for range 2 {
		clk.Add(10 * time.Minute)
		if r := s.Alert(ctx, m); !r.Held {
			t.Fatalf("repeat within the cool-down: %+v, want held", r)
		}
	}
	if n := len(h.texts(t)); n != 1 {
		t.Fatalf("%d messages within the cool-down, want 1", n)
	}
	clk.Add(41 * time.Minute)
	if r := s.Alert(ctx, m); r.Held {
		t.Fatal("after the cool-down the alert was held")
	}
	texts := h.texts(t)
	if len(texts) != 2 || !strings.Contains(texts[1], "2 more alerts like this were held back since 2026-12-04T10:00:00Z") {
		t.Fatalf("second message %q, want the count of the 2 held back", texts[len(texts)-1])
	}
	if st := s.Status(); len(st.Active) != 1 || st.Active[0].Key != "map:bans" || !st.Active[0].Since.Equal(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("active %+v, want map:bans since the first alert", st.Active)
	}
	clk.Add(5 * time.Minute)
	s.Alert(ctx, m) // held: counted into the recovery
	clk.Add(5 * time.Minute)
	if r := s.Clear(ctx, "map:bans", "50 of 100 now."); r.Delivered != "chat" {
		t.Fatalf("recovery: %+v", r)
	}
	texts = h.texts(t)
	last := texts[len(texts)-1]
	for _, want := range []string{"[portcullis RESOLVED] mx1: cleared: map bans is 95% full", "50 of 100 now.", "It had lasted 1h11m", "1 more alerts of it were held back"} {
		if !strings.Contains(last, want) {
			t.Errorf("recovery %q lacks %q", last, want)
		}
	}
	if r := s.Clear(ctx, "map:bans", "again"); !r.Held || len(h.texts(t)) != len(texts) {
		t.Error("a second clear sent another recovery")
	}
	if len(s.Status().Active) != 0 {
		t.Errorf("active after the recovery: %+v", s.Status().Active)
	}
}

// TestUnreachableChannelFallsBackAndRetries: the first channel is a port
// nothing listens on, then a webhook that answers 503; the message goes
// through the next channel at once, saying why, and the failed send is
// retried with a doubling backoff until it gets through.
func TestUnreachableChannelFallsBackAndRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	flaky, good := newHook(t), newHook(t)
	flaky.down.Store(true)
	clk := &clock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	s := NewSender(Options{
		Channels: []Channel{
			&SMTP{ChannelName: "relay", Address: deadAddr, From: "portcullis@mx1", To: []string{"postmaster@mx1"}},
			&Webhook{ChannelName: "flaky", URL: flaky.srv.URL},
			&Webhook{ChannelName: "chat", URL: good.srv.URL},
		},
		Logger: quiet(), Now: clk.Now, Backoff: 30 * time.Second, MaxBackoff: 2 * time.Minute, Host: "mx1",
	})
	ctx := context.Background()
	r := s.Alert(ctx, Message{Key: "xdp:eth0", Severity: Critical, Subject: "datapath off eth0", Body: "re-attached\n"})
	if r.Delivered != "chat" || len(r.Failed) != 2 || r.Failed[0].Name != "relay" || r.Failed[1].Name != "flaky" {
		t.Fatalf("result %+v, want relay and flaky failed, delivered through chat", r)
	}
	texts := good.texts(t)
	if len(texts) < 1 || !strings.Contains(texts[0], `Delivered through "chat" because channel "relay" failed`) || !strings.Contains(texts[0], "connection refused") {
		t.Fatalf("fallback message %q, want it to say which channel failed and why", texts)
	}
	// Each failed channel is reported once, through the others.
	var down []string
	for _, tx := range texts[1:] {
		if strings.Contains(tx, "is failing") {
			down = append(down, tx)
		}
	}
	if len(down) != 2 {
		t.Errorf("channel-failure alerts %q, want one for relay and one for flaky", down)
	}
	st := s.Status()
	if !st.Channels[0].Failing || st.Channels[0].Pending != 1 || !strings.Contains(st.Channels[0].LastError, "connection refused") {
		t.Errorf("relay status %+v, want failing with one retry pending", st.Channels[0])
	}

	attempts := func() int { return s.Status().Channels[1].Failed }
	before := attempts()
	clk.Add(29 * time.Second)
	s.RetryDue(ctx)
	if attempts() != before {
		t.Fatal("retried before the backoff ended")
	}
	clk.Add(time.Second)
	s.RetryDue(ctx)
	if attempts() != before+1 {
		t.Fatalf("flaky failed %d times after the first backoff, want %d", attempts(), before+1)
	}
	clk.Add(59 * time.Second) // the second wait is twice the first
	s.RetryDue(ctx)
	if attempts() != before+1 {
		t.Fatal("retried before the doubled backoff ended")
	}
	flaky.down.Store(false)
	clk.Add(time.Second)
	s.RetryDue(ctx)
	got := flaky.texts(t)
	if len(got) < 1 || !strings.Contains(got[0], "datapath off eth0") || strings.Contains(got[0], "Delivered through") {
		t.Fatalf("flaky got %q after it came back, want the retried alert as it was first sent", got)
	}
	if st := s.Status().Channels[1]; st.Failing || st.Pending != 0 {
		t.Errorf("flaky status %+v, want working, nothing pending", st)
	}
	all := strings.Join(append(got, good.texts(t)...), "\n")
	if !strings.Contains(all, `cleared: alert channel "flaky" is failing`) {
		t.Errorf("no recovery for the flaky channel in %q", all)
	}
	if st := s.Status().Channels[0]; !st.Failing || st.Pending < 1 {
		t.Errorf("relay status %+v, want still failing and pending", st)
	}
}

func TestTestReportsEachChannel(t *testing.T) {
	good := newHook(t)
	s := NewSender(Options{Channels: []Channel{
		&Sendmail{ChannelName: "local", Command: []string{"/nonexistent/sendmail", "-t", "-i"}, From: "p", To: []string{"root"}},
		&Webhook{ChannelName: "chat", URL: good.srv.URL},
	}, Logger: quiet()})
	res, err := s.Test(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Err == nil || res[1].Err != nil {
		t.Fatalf("results %+v, want local failed and chat sent", res)
	}
	if texts := good.texts(t); len(texts) != 1 || !strings.Contains(texts[0], `alert channel "chat" (webhook)`) {
		t.Errorf("chat got %q", texts)
	}
	if _, err := s.Test(context.Background(), "nosuch"); err == nil {
		t.Error("test of an unknown channel succeeded")
	}
}

func TestCooldownStateSurvivesRuns(t *testing.T) {
	h := newHook(t)
	path := t.TempDir() + "/state.json"
	clk := &clock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	run := func() Result {
		s := NewSender(Options{Channels: []Channel{&Webhook{ChannelName: "chat", URL: h.srv.URL}}, Logger: quiet(), Now: clk.Now, StatePath: path})
		return s.Alert(context.Background(), Message{Key: "health:daemon", Subject: "dead"})
	}
	if r := run(); r.Held {
		t.Fatal("first run held the alert")
	}
	clk.Add(time.Minute)
	if r := run(); !r.Held {
		t.Fatal("the next run a minute later sent it again: the cool-down did not survive")
	}
}

func TestDigestSumsTheDay(t *testing.T) {
	h := newHook(t)
	clk := &clock{now: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)}
	s := NewSender(Options{Channels: []Channel{&Webhook{ChannelName: "chat", URL: h.srv.URL}}, Logger: quiet(), Now: clk.Now, Host: "mx1"})
	ctx := context.Background()
	for range 3 {
		s.Alert(ctx, Message{Key: "attack:failures", Subject: "failed-login spike"})
		clk.Add(20 * time.Minute)
	}
	clk.Add(25 * time.Hour)
	s.Alert(ctx, Message{Key: "map:bans", Subject: "map bans is 91% full"})
	s.Digest(ctx, "Last 24 hours: 12 failed-login attempts from 2 distinct sources; 1 bans.")
	texts := h.texts(t)
	d := texts[len(texts)-1]
	for _, want := range []string{"[portcullis INFO] mx1: daily digest", "12 failed-login attempts from 2 distinct sources", "map bans is 91% full: sent 1, held back 0"} {
		if !strings.Contains(d, want) {
			t.Errorf("digest %q lacks %q", d, want)
		}
	}
	if strings.Contains(d, "failed-login spike") {
		t.Errorf("digest %q counts alerts older than a day", d)
	}
}
