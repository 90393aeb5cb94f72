package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// serveMetrics serves Prometheus text-format metrics at addr/metrics until
// ctx ends: the datapath's counters and map fill, each log source's
// progress, the store's last hour, and the alert channels' health.
func (d *Daemon) serveMetrics(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := d.writeMetrics(r.Context(), w); err != nil {
			d.log.Error("metrics", "err", err)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}

// metricWriter writes one family's HELP and TYPE once, then its samples.
type metricWriter struct {
	w    *bufio.Writer
	seen map[string]bool
}

func (m *metricWriter) sample(name, typ, help, labels string, v float64) {
	if !m.seen[name] {
		m.seen[name] = true
		fmt.Fprintf(m.w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	if labels != "" {
		labels = "{" + labels + "}"
	}
	fmt.Fprintf(m.w, "%s%s %s\n", name, labels, strconv.FormatFloat(v, 'g', -1, 64))
}

func label(k, v string) string { return k + "=" + strconv.Quote(v) }

func (d *Daemon) writeMetrics(ctx context.Context, out io.Writer) error {
	m := &metricWriter{w: bufio.NewWriter(out), seen: map[string]bool{}}
	defer m.w.Flush()
	m.sample("portcullis_up", "gauge", "1 while the daemon runs.", "", 1)

	ct, err := d.dp.Maps.Counters()
	if err != nil {
		return err
	}
	for _, v := range []struct {
		verdict string
		n       uint64
	}{{"passed", ct.Passed}, {"allowlisted", ct.Allowlisted}, {"dropped_ban", ct.DroppedBan}, {"dropped_rate", ct.DroppedRate}, {"dropped_geo", ct.DroppedGeo}} {
		m.sample("portcullis_packets_total", "counter", "Packets by the datapath's verdict.", label("verdict", v.verdict), float64(v.n))
	}
	m.sample("portcullis_syn_total", "counter", "SYNs to protected ports, by port class.", label("class", "mx"), float64(ct.SynMX))
	m.sample("portcullis_syn_total", "counter", "SYNs to protected ports, by port class.", label("class", "auth"), float64(ct.SynAuth))
	m.sample("portcullis_malformed_total", "counter", "Packets the datapath could not fully parse (passed).", "", float64(ct.Malformed))

	fill, err := d.dp.Maps.Fill()
	if err != nil {
		return err
	}
	for _, f := range fill {
		m.sample("portcullis_map_entries", "gauge", "Entries in a kernel map.", label("map", f.Name), float64(f.Entries))
		m.sample("portcullis_map_capacity", "gauge", "Capacity of a kernel map.", label("map", f.Name), float64(f.Capacity))
	}

	st, err := d.status(ctx)
	if err != nil {
		return err
	}
	m.sample("portcullis_start_time_seconds", "gauge", "When the daemon started (Unix time).", "", float64(st.Started.Unix()))
	for _, s := range st.Sources {
		l := label("source", s.Name)
		m.sample("portcullis_log_lines_total", "counter", "Log lines read, by source.", l, float64(s.Lines))
		m.sample("portcullis_log_events_total", "counter", "Events the parsers made, by source.", l, float64(s.Events))
		m.sample("portcullis_log_lag_bytes", "gauge", "Bytes a source has not read yet.", l, float64(s.LagBytes))
		m.sample("portcullis_log_lag_seconds", "gauge", "How long the unread bytes have waited.", l, s.LagSeconds)
		m.sample("portcullis_log_unmatched_total", "counter", "Lines that read like failed logins but that no rule reads, by source.", l, float64(s.Unmatched))
	}
	m.sample("portcullis_events_last_hour", "gauge", "Events stored in the last hour.", "", float64(st.EventsHour))
	m.sample("portcullis_bans_last_hour", "gauge", "Bans made in the last hour.", "", float64(st.BansHour))
	m.sample("portcullis_tracked_sources", "gauge", "Sources the verdict engine counts failures of.", "", float64(st.Tracked))
	m.sample("portcullis_evicted_sources_total", "counter", "Sources forgotten to bound memory.", "", float64(st.Evicted))

	if as := st.Alerts; as != nil {
		for _, c := range as.Channels {
			l := label("channel", c.Name)
			up := 1.0
			if c.Failing {
				up = 0
			}
			m.sample("portcullis_alert_channel_up", "gauge", "0 while an alert channel fails.", l, up)
			m.sample("portcullis_alert_sent_total", "counter", "Alerts a channel delivered.", l, float64(c.Sent))
			m.sample("portcullis_alert_failures_total", "counter", "Failed sends, by channel.", l, float64(c.Failed))
			m.sample("portcullis_alert_pending_retries", "gauge", "Sends waiting to be retried, by channel.", l, float64(c.Pending))
		}
		m.sample("portcullis_alerts_active", "gauge", "Alerts whose condition has not cleared.", "", float64(len(as.Active)))
	}
	return nil
}
