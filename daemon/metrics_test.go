package daemon

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The daemon serves Prometheus metrics: the datapath's counters and map
// fill, each log's progress, and the alert channels' health, a failing one
// included.
func TestMetricsShowCountersLogsAndFailingChannels(t *testing.T) {
	h := newHarness(t)
	in := newInbox(t)
	h.alerting(t, in)
	h.cfg.Alerts.Health.Unmatched = 3
	h.cfg.Daemon.Metrics = "127.0.0.1:0"
	h.start()
	for i := 0; i < 5; i++ {
		h.appendLog(saslFailure("198.18.100.1"))
	}
	for i := 0; i < 3; i++ {
		h.appendLog(time.Now().Format(time.Stamp) + " mx newmta[9]: Authentication failure for 198.18.100.2")
	}
	waitBanned(t, h.maps(), netip.MustParsePrefix("198.18.100.1/32"))
	in.wait(t, "gap:files ["+h.log+"]", false)

	m := regexp.MustCompile(`msg="serving metrics" addr=(\S+)`).FindStringSubmatch(h.stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the daemon's log")
	}
	addr := netip.MustParseAddrPort(m[1])
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		// The daemon listens in the test namespace, where it started.
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return h.pair.Server.Dial(ctx, "tcp", addr)
		},
	}}
	resp, err := client.Get("http://" + addr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	for _, want := range []string{
		"# TYPE portcullis_packets_total counter",
		`portcullis_packets_total{verdict="dropped_ban"} `,
		`portcullis_map_entries{map="bans"} 1`,
		`portcullis_log_events_total{source="files [` + h.log + `]"} 5`,
		`portcullis_log_unmatched_total{source="files [` + h.log + `]"} 3`,
		`portcullis_alert_channel_up{channel="relay"} 0`,
		`portcullis_alert_channel_up{channel="chat"} 1`,
		"portcullis_up 1",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
}
