package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Channel is one way to reach a person.
type Channel interface {
	// Name is the configured name; Type is sendmail, smtp, webhook or log.
	Name() string
	Type() string
	// Send delivers one message or says why it could not.
	Send(ctx context.Context, m Message) error
}

// Options configure a Sender.
type Options struct {
	// Channels in order of preference: a message goes to the first that
	// takes it. The log always gets it as well.
	Channels []Channel
	Logger   *slog.Logger
	// Cooldown is how long repeats of one key are held back; 0 means 1h.
	Cooldown time.Duration
	// Backoff is the first wait before a failed send is tried again; it
	// doubles up to MaxBackoff, and a send still failing after GiveUp is
	// dropped (the log has it). Zero values mean 30s, 30m and 24h.
	Backoff, MaxBackoff, GiveUp time.Duration
	// Now returns the time; nil means time.Now.
	Now func() time.Time
	// StatePath, when set, keeps the cool-down state in a file, so that a
	// program run once a minute (`portcullis health --alert`) holds back
	// repeats across runs.
	StatePath string
	// Host names the machine in messages; empty means the hostname.
	Host string
}

// Sender delivers alerts through its channels with cool-down, recovery
// messages, fallback and retries. It is safe for concurrent use.
type Sender struct {
	opts Options
	log  *Log

	mu      sync.Mutex
	keys    map[string]*keyState
	pending []retry
	stats   map[string]*ChannelStatus
	recent  []record
}

// keyState is what the Sender remembers of one alert key.
type keyState struct {
	Subject    string    `json:"subject"`
	First      time.Time `json:"first"`      // when the condition was first seen
	Last       time.Time `json:"last"`       // when it was last sent
	Suppressed int       `json:"suppressed"` // held back since Last
	Once       bool      `json:"once,omitempty"`
}

type retry struct {
	ch       Channel
	msg      Message
	attempts int
	next     time.Time
	first    time.Time
}

type record struct {
	At      time.Time
	Key     string
	Subject string
	Held    bool
}

// ChannelStatus is how one channel has fared, for `portcullis status`.
type ChannelStatus struct {
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	Sent        int       `json:"sent"`
	Failed      int       `json:"failed"`
	Pending     int       `json:"pending_retries"`
	Failing     bool      `json:"failing"`
	LastError   string    `json:"last_error,omitempty"`
	LastFailure time.Time `json:"last_failure,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
}

// Active is an alert whose condition has not cleared.
type Active struct {
	Key        string    `json:"key"`
	Subject    string    `json:"subject"`
	Since      time.Time `json:"since"`
	LastSent   time.Time `json:"last_sent"`
	Suppressed int       `json:"suppressed"`
}

// Status is the Sender's state.
type Status struct {
	Channels []ChannelStatus `json:"channels"`
	Active   []Active        `json:"active"`
}

// Result says what became of one message.
type Result struct {
	// Held is set when the message was held back by the cool-down.
	Held bool
	// Delivered names the channel that took it; empty when none did.
	Delivered string
	// Failed lists the channels that failed, with why.
	Failed []ChannelResult
}

// ChannelResult is one channel's answer.
type ChannelResult struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Err  error  `json:"-"`
}

// ErrUndelivered means no channel took a message (the log still has it).
var ErrUndelivered = errors.New("no alert channel delivered the message")

// NewSender makes a Sender. A state file that cannot be read is reported
// and started afresh: losing a cool-down costs a repeated alert, never a
// missed one.
func NewSender(opts Options) *Sender {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Cooldown <= 0 {
		opts.Cooldown = time.Hour
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 30 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Minute
	}
	if opts.GiveUp <= 0 {
		opts.GiveUp = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Host == "" {
		opts.Host = hostname()
	}
	s := &Sender{opts: opts, log: &Log{Logger: opts.Logger}, keys: map[string]*keyState{}, stats: map[string]*ChannelStatus{}}
	for _, ch := range opts.Channels {
		s.stats[ch.Name()] = &ChannelStatus{Name: ch.Name(), Type: ch.Type()}
	}
	if opts.StatePath != "" {
		b, err := os.ReadFile(opts.StatePath)
		if err == nil {
			err = json.Unmarshal(b, &s.keys)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			opts.Logger.Warn("alert state unreadable; starting afresh", "path", opts.StatePath, "err", err)
			s.keys = map[string]*keyState{}
		}
	}
	return s
}

// Alert sends m unless its key was sent within the cool-down, in which case
// it is counted and the next message of that key says how many were held
// back. Since, when zero, becomes the time the key was first raised.
func (s *Sender) Alert(ctx context.Context, m Message) Result {
	now := s.opts.Now()
	s.mu.Lock()
	m.At, m.Host = now, s.opts.Host
	st := s.keys[m.Key]
	if st == nil {
		st = &keyState{First: now}
		if !m.Since.IsZero() {
			st.First = m.Since
		}
		s.keys[m.Key] = st
	}
	if m.Since.IsZero() {
		m.Since = st.First
	}
	st.Subject, st.Once = m.Subject, m.Once
	if !st.Last.IsZero() && now.Sub(st.Last) < s.opts.Cooldown {
		st.Suppressed++
		s.remember(record{At: now, Key: m.Key, Subject: m.Subject, Held: true})
		s.saveLocked()
		s.mu.Unlock()
		return Result{Held: true}
	}
	if st.Suppressed > 0 {
		m.Body = strings.TrimRight(m.Body, "\n") + fmt.Sprintf("\n\n%d more alerts like this were held back since %s (cool-down %s).\n",
			st.Suppressed, st.Last.UTC().Format(time.RFC3339), s.opts.Cooldown)
	}
	st.Last, st.Suppressed = now, 0
	s.remember(record{At: now, Key: m.Key, Subject: m.Subject})
	s.saveLocked()
	s.mu.Unlock()
	return s.deliver(ctx, m, "", true)
}

// Clear says that the condition of key has cleared: if an alert of that
// key was sent, a recovery message follows (never held back); if none was,
// nothing is sent.
func (s *Sender) Clear(ctx context.Context, key, body string) Result {
	now := s.opts.Now()
	s.mu.Lock()
	st := s.keys[key]
	if st == nil {
		s.mu.Unlock()
		return Result{Held: true}
	}
	delete(s.keys, key)
	s.saveLocked()
	s.mu.Unlock()
	if st.Last.IsZero() || st.Once {
		return Result{Held: true}
	}
	m := Message{Key: key, Severity: Info, Recovery: true, Since: st.First, At: now, Host: s.opts.Host,
		Subject: "cleared: " + st.Subject}
	m.Body = fmt.Sprintf("%s\nIt had lasted %s (since %s).\n", strings.TrimRight(body, "\n"), ago(now.Sub(st.First)), st.First.UTC().Format(time.RFC3339))
	if st.Suppressed > 0 {
		m.Body += fmt.Sprintf("%d more alerts of it were held back by the cool-down.\n", st.Suppressed)
	}
	s.mu.Lock()
	s.remember(record{At: now, Key: key, Subject: m.Subject})
	s.mu.Unlock()
	return s.deliver(ctx, m, "", true)
}

// Raised reports whether key has an alert whose condition has not cleared.
func (s *Sender) Raised(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[key]
	return ok
}

// Digest sends a summary of the last 24 hours: summary (what the caller
// counted) and the alerts sent and held back.
func (s *Sender) Digest(ctx context.Context, summary string) Result {
	now := s.opts.Now()
	s.mu.Lock()
	type tally struct {
		subject    string
		sent, held int
	}
	var order []string
	by := map[string]*tally{}
	for _, r := range s.recent {
		if now.Sub(r.At) > 24*time.Hour {
			continue
		}
		t := by[r.Key]
		if t == nil {
			t = &tally{}
			by[r.Key] = t
			order = append(order, r.Key)
		}
		t.subject = r.Subject
		if r.Held {
			t.held++
		} else {
			t.sent++
		}
	}
	s.mu.Unlock()
	var b strings.Builder
	b.WriteString(strings.TrimRight(summary, "\n"))
	b.WriteString("\n\nAlerts in the last 24 hours:\n")
	if len(order) == 0 {
		b.WriteString("  none\n")
	}
	for _, k := range order {
		t := by[k]
		fmt.Fprintf(&b, "  %s: sent %d, held back %d\n", t.subject, t.sent, t.held)
	}
	m := Message{Key: "digest", Severity: Info, Subject: "daily digest", Body: b.String(), At: now, Host: s.opts.Host, Since: now.Add(-24 * time.Hour)}
	return s.deliver(ctx, m, "", true)
}

// Test sends a test message through every channel (or only the one named)
// with no fallback and no retry, and reports each channel's answer.
func (s *Sender) Test(ctx context.Context, name string) ([]ChannelResult, error) {
	now := s.opts.Now()
	m := Message{Key: "test", Severity: Info, Subject: "test message", At: now, Since: now, Host: s.opts.Host,
		Body: "This is a test of portcullis's alert channels (`portcullis alert test`). No action is needed.\n"}
	var out []ChannelResult
	for _, ch := range s.channels() {
		if name != "" && ch.Name() != name {
			continue
		}
		m.Body = fmt.Sprintf("This is a test of portcullis's alert channel %q (%s), sent by `portcullis alert test`. No action is needed.\n", ch.Name(), ch.Type())
		err := ch.Send(ctx, m)
		s.account(ch, err)
		out = append(out, ChannelResult{Name: ch.Name(), Type: ch.Type(), Err: err})
	}
	if name != "" && len(out) == 0 {
		return nil, fmt.Errorf("no alert channel named %q", name)
	}
	return out, nil
}

// deliver logs m and sends it through the first channel that takes it,
// skipping the channel named skip. A failed channel's send is queued for
// retry when retry is set.
func (s *Sender) deliver(ctx context.Context, m Message, skip string, retryFailed bool) Result {
	_ = s.log.Send(ctx, m)
	var res Result
	chs := s.channels()
	orig := m
	for _, ch := range chs {
		if ch.Name() == skip {
			continue
		}
		m = orig
		if len(res.Failed) > 0 {
			var notes []string
			for _, f := range res.Failed {
				notes = append(notes, fmt.Sprintf("channel %q failed (%v)", f.Name, f.Err))
			}
			m.Body = strings.TrimRight(m.Body, "\n") + "\n\nDelivered through " + fmt.Sprintf("%q", ch.Name()) + " because " + strings.Join(notes, "; ") + "; it is retried with backoff.\n"
		}
		err := ch.Send(ctx, m)
		newlyFailing := s.account(ch, err)
		if err == nil {
			res.Delivered = ch.Name()
			break
		}
		s.opts.Logger.Error("alert channel failed; trying the next", "channel", ch.Name(), "key", m.Key, "err", err)
		res.Failed = append(res.Failed, ChannelResult{Name: ch.Name(), Type: ch.Type(), Err: err})
		if retryFailed {
			now := s.opts.Now()
			s.mu.Lock()
			s.pending = append(s.pending, retry{ch: ch, msg: orig, attempts: 1, first: now, next: now.Add(s.opts.Backoff)})
			s.stats[ch.Name()].Pending++
			s.mu.Unlock()
		}
		if newlyFailing && skip == "" {
			defer s.channelDown(ctx, ch, err)
		}
	}
	if res.Delivered == "" && len(chs) > 0 {
		s.opts.Logger.Error("alert undelivered: every channel failed; retrying with backoff", "key", m.Key, "subject", m.Subject)
	}
	return res
}

// channelDown tells a person, through the other channels, that one failed.
func (s *Sender) channelDown(ctx context.Context, ch Channel, err error) {
	now := s.opts.Now()
	key := "channel:" + ch.Name()
	s.mu.Lock()
	if _, ok := s.keys[key]; ok {
		s.mu.Unlock()
		return
	}
	s.keys[key] = &keyState{Subject: fmt.Sprintf("alert channel %q is failing", ch.Name()), First: now, Last: now}
	s.saveLocked()
	s.mu.Unlock()
	m := Message{Key: key, Severity: Warning, Since: now, At: now, Host: s.opts.Host,
		Subject: fmt.Sprintf("alert channel %q is failing", ch.Name()),
		Body: fmt.Sprintf("Alert channel %q (%s) failed: %v\nMessages for it are retried with backoff; until it works they go to the next channel.\nCheck it with: portcullis alert test --channel %s\n",
			ch.Name(), ch.Type(), err, ch.Name())}
	s.deliver(ctx, m, ch.Name(), false)
}

// account records a channel's answer; it reports whether the channel has
// just started failing.
func (s *Sender) account(ch Channel, err error) (newlyFailing bool) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats[ch.Name()]
	if st == nil {
		return false
	}
	if err != nil {
		st.Failed++
		st.LastError, st.LastFailure = err.Error(), now
		newlyFailing = !st.Failing
		st.Failing = true
		return newlyFailing
	}
	st.Sent++
	st.LastSuccess = now
	st.Failing = false
	return false
}

// RetryDue sends the failed messages whose backoff has passed.
func (s *Sender) RetryDue(ctx context.Context) {
	now := s.opts.Now()
	s.mu.Lock()
	var due []retry
	keep := s.pending[:0]
	for _, r := range s.pending {
		if now.Before(r.next) {
			keep = append(keep, r)
			continue
		}
		due = append(due, r)
		s.stats[r.ch.Name()].Pending--
	}
	s.pending = keep
	s.mu.Unlock()
	for _, r := range due {
		err := r.ch.Send(ctx, r.msg)
		s.account(r.ch, err)
		if err == nil {
			s.opts.Logger.Info("alert delivered on retry", "channel", r.ch.Name(), "key", r.msg.Key, "attempts", r.attempts+1)
			s.recovered(ctx, r.ch)
			continue
		}
		if now.Sub(r.first) >= s.opts.GiveUp {
			s.opts.Logger.Error("alert dropped after retrying", "channel", r.ch.Name(), "key", r.msg.Key, "attempts", r.attempts+1, "err", err)
			continue
		}
		wait := s.opts.Backoff << min(r.attempts, 20)
		r.attempts++
		r.next = now.Add(min(wait, s.opts.MaxBackoff))
		s.mu.Lock()
		s.pending = append(s.pending, r)
		s.stats[r.ch.Name()].Pending++
		s.mu.Unlock()
	}
}

// recovered sends the recovery of a channel that failed and works again.
func (s *Sender) recovered(ctx context.Context, ch Channel) {
	key := "channel:" + ch.Name()
	if s.Raised(key) {
		s.Clear(ctx, key, fmt.Sprintf("Alert channel %q (%s) delivers again.", ch.Name(), ch.Type()))
	}
}

// Run retries failed sends until ctx ends, checking every interval.
func (s *Sender) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.RetryDue(ctx)
		}
	}
}

// Status reports the channels and the alerts not yet cleared.
func (s *Sender) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st Status
	for _, ch := range s.opts.Channels {
		st.Channels = append(st.Channels, *s.stats[ch.Name()])
	}
	for k, v := range s.keys {
		if v.Once {
			continue
		}
		st.Active = append(st.Active, Active{Key: k, Subject: v.Subject, Since: v.First, LastSent: v.Last, Suppressed: v.Suppressed})
	}
	sort.Slice(st.Active, func(i, j int) bool { return st.Active[i].Key < st.Active[j].Key })
	return st
}

func (s *Sender) channels() []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.opts.Channels)
}

// SetChannels replaces the channels (a reloaded configuration); cool-down
// state and pending retries stay.
func (s *Sender) SetChannels(chs []Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Channels = chs
	for _, ch := range chs {
		if s.stats[ch.Name()] == nil {
			s.stats[ch.Name()] = &ChannelStatus{Name: ch.Name(), Type: ch.Type()}
		}
	}
}

// Keys lists the raised keys that start with prefix.
func (s *Sender) Keys(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Sender) remember(r record) {
	s.recent = append(s.recent, r)
	if len(s.recent) > 2000 {
		s.recent = slices.Delete(s.recent, 0, len(s.recent)-1000)
	}
}

// saveLocked writes the cool-down state when it is kept in a file.
func (s *Sender) saveLocked() {
	if s.opts.StatePath == "" {
		return
	}
	b, _ := json.Marshal(s.keys)
	tmp := s.opts.StatePath + ".tmp"
	err := os.MkdirAll(filepath.Dir(s.opts.StatePath), 0o700)
	if err == nil {
		err = os.WriteFile(tmp, b, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, s.opts.StatePath)
	}
	if err != nil {
		s.opts.Logger.Warn("save alert state", "path", s.opts.StatePath, "err", err)
	}
}
