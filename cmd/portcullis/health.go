package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/alert"
	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/store"
)

// exitStatus ends the program with a code and nothing more on stderr: the
// command has already said what it had to.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func healthCommand() *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "check from outside that the daemon is alive and reading its logs; one line, exit 0 OK, 1 WARNING, 2 CRITICAL (Nagios style)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "alert", Usage: "send an alert through the configured channels for each problem (and a recovery when it clears)"},
			&cli.DurationFlag{Name: "stale", Usage: "a heartbeat older than this is a dead or hung daemon (default: [alerts.health] stale)"},
			&cli.DurationFlag{Name: "stall", Usage: "a log behind and not advancing this long is stalled (default: [alerts.health] stall)"},
		},
		Action: health,
	}
}

func health(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	// A check that cannot run says so in its one line, as Nagios UNKNOWN.
	cfg, err := loadConfig(c)
	if err == nil {
		var dir string
		if dir, err = stateDir(c); err == nil {
			return checkAndAlert(c, cfg, dir)
		}
	}
	fmt.Fprintf(c.App.Writer, "PORTCULLIS UNKNOWN - %s\n", oneLine(err))
	return exitStatus(alert.UNKNOWN)
}

func checkAndAlert(c *cli.Context, cfg config.Config, dir string) error {
	lim := alert.HealthLimits{Stale: time.Duration(cfg.Alerts.Health.Stale), Stall: time.Duration(cfg.Alerts.Health.Stall)}
	if c.IsSet("stale") {
		lim.Stale = c.Duration("stale")
	}
	if c.IsSet("stall") {
		lim.Stall = c.Duration("stall")
	}
	report := checkHealth(c, dir, lim)
	fmt.Fprintln(c.App.Writer, report.Summary)
	if c.Bool("alert") {
		sendHealthAlerts(c, cfg.Alerts, dir, report)
	}
	if report.Code != alert.OK {
		return exitStatus(report.Code)
	}
	return nil
}

// checkHealth reads the heartbeat from the store (read-only, never waiting
// for the daemon) and judges it against the logs.
func checkHealth(c *cli.Context, dir string, lim alert.HealthLimits) alert.HealthReport {
	st, err := store.OpenReadOnly(c.Context, dir)
	if err != nil {
		return unreadable(dir, err)
	}
	defer st.Close()
	v, _, found, err := st.Meta(c.Context, alert.HeartbeatKey)
	if err != nil {
		return unreadable(dir, err)
	}
	var hb alert.Heartbeat
	if found {
		if err := json.Unmarshal([]byte(v), &hb); err != nil {
			return unreadable(dir, fmt.Errorf("heartbeat: %w", err))
		}
	}
	return alert.CheckHealth(hb, found, time.Now(), lim, alert.RealFiles())
}

func unreadable(dir string, err error) alert.HealthReport {
	return alert.HealthReport{
		Code:    alert.CRITICAL,
		Summary: fmt.Sprintf("PORTCULLIS CRITICAL - cannot read the daemon's state in %s: %s", dir, oneLine(err)),
		Findings: []alert.Message{{Key: "health:state", Severity: alert.Critical,
			Subject: "the daemon's state cannot be read",
			Body:    fmt.Sprintf("portcullis health cannot read %s: %v\nThe daemon may never have run, or its store is damaged.\nLook closer: ls -l %s; systemctl status portcullis\n", dir, err, dir)}},
	}
}

// sendHealthAlerts sends one alert per finding and a recovery for each
// health alert that cleared. The cool-down state lives in the state
// directory, since this runs once a minute.
func sendHealthAlerts(c *cli.Context, cfg config.Alerts, dir string, report alert.HealthReport) {
	s := alert.SenderFor(cfg, logger(c), filepath.Join(dir, "health-alerts.json"))
	if len(cfg.Channels) == 0 {
		fmt.Fprintln(c.App.ErrWriter, "portcullis: no [[alerts.channel]] is configured: the alert goes to this log only")
	}
	now := map[string]bool{}
	for _, m := range report.Findings {
		now[m.Key] = true
		s.Alert(c.Context, m)
	}
	for _, k := range s.Keys("health:") {
		if !now[k] {
			s.Clear(c.Context, k, report.Summary)
		}
	}
	// One quick retry: this process is gone before a backoff would end,
	// and the next run a minute later sends again if it is still wrong.
	s.RetryDue(c.Context)
}
