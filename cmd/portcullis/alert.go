package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/alert"
)

func alertCommand() *cli.Command {
	return &cli.Command{
		Name:  "alert",
		Usage: "alert channels",
		Subcommands: []*cli.Command{{
			Name:  "test",
			Usage: "send a test message through each configured channel (or one) and report what each did",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "channel", Usage: "only the channel with this name"},
				&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			},
			Action: alertTest,
		}},
	}
}

type alertTestJSON struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func alertTest(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	if len(cfg.Alerts.Channels) == 0 {
		return fmt.Errorf("no alert channel is configured: add [[alerts.channel]] to the configuration (see `portcullis config default`)")
	}
	s := alert.SenderFor(cfg.Alerts, logger(c), "")
	results, err := s.Test(c.Context, c.String("channel"))
	if err != nil {
		return err
	}
	var out []alertTestJSON
	failed := 0
	for _, r := range results {
		j := alertTestJSON{Name: r.Name, Type: r.Type, OK: r.Err == nil}
		if r.Err != nil {
			j.Error = oneLine(r.Err)
			failed++
		}
		out = append(out, j)
	}
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, out); err != nil {
			return err
		}
	} else {
		w := table(c.App.Writer)
		for _, j := range out {
			state := "sent"
			if !j.OK {
				state = "FAILED: " + j.Error
			}
			fmt.Fprintf(w, "%s\t%s\t%s\n", j.Name, j.Type, state)
		}
		w.Flush()
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d alert channels failed", failed, len(out))
	}
	return nil
}

// printAlerts is the alerting part of `portcullis status`.
func printAlerts(w io.Writer, st *alert.Status) {
	if st == nil {
		return
	}
	if len(st.Channels) == 0 {
		fmt.Fprintf(w, "alerts:\tto the daemon's log only (no [[alerts.channel]] configured)\n")
	}
	for _, ch := range st.Channels {
		state := "ok"
		if ch.Failing {
			state = fmt.Sprintf("FAILING since %s: %s", ch.LastFailure.UTC().Format(time.RFC3339), ch.LastError)
		}
		fmt.Fprintf(w, "alert channel %s:\t%s, sent %d, failed %d, %d retries pending, %s\n", ch.Name, ch.Type, ch.Sent, ch.Failed, ch.Pending, state)
	}
	for _, a := range st.Active {
		fmt.Fprintf(w, "alert active:\t%s (since %s, %d held back)\n", a.Subject, a.Since.UTC().Format(time.RFC3339), a.Suppressed)
	}
}
