package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Webhook formats.
const (
	// FormatSlack is {"text": ...}, which Slack, Mattermost, Rocket.Chat
	// and Discord's Slack-compatible endpoint accept.
	FormatSlack = "slack"
	// FormatJSON is the Message itself as JSON, for programs.
	FormatJSON = "json"
)

// Webhook posts messages as JSON to a URL.
type Webhook struct {
	ChannelName string
	URL         string
	Format      string // FormatSlack or FormatJSON
	// Client is the HTTP client; nil means one with a 30s timeout.
	Client *http.Client
}

// Name is the channel's name.
func (w *Webhook) Name() string { return w.ChannelName }

// Type is "webhook".
func (w *Webhook) Type() string { return "webhook" }

// Send posts m; any status but 2xx is a failure.
func (w *Webhook) Send(ctx context.Context, m Message) error {
	var payload any = m
	if w.Format != FormatJSON {
		payload = map[string]string{"text": m.title() + "\n" + strings.TrimRight(m.Body, "\n")}
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("encode webhook payload: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "portcullis-alert")
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post to webhook: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %s: %s", resp.Status, strings.TrimSpace(string(snippet)))
	}
	return nil
}

// Log writes messages to the daemon's log. Every message goes there,
// whatever else happens to it.
type Log struct {
	Logger *slog.Logger
}

// Name is "log".
func (l *Log) Name() string { return "log" }

// Type is "log".
func (l *Log) Type() string { return "log" }

// Send logs m: critical at error level, the rest at warn, recoveries at info.
func (l *Log) Send(ctx context.Context, m Message) error {
	level := slog.LevelWarn
	switch {
	case m.Recovery:
		level = slog.LevelInfo
	case m.Severity == Critical:
		level = slog.LevelError
	}
	l.Logger.Log(ctx, level, "alert: "+m.Subject, "key", m.Key, "severity", m.Severity, "body", m.Body)
	return nil
}
