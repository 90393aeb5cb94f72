package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/logs"
	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/store"
)

// defaultHistoryLimit keeps a bare `portcullis history` on a busy server to
// a screenful of pages rather than 400 days of events.
const defaultHistoryLimit = 1000

func historyCommand() *cli.Command {
	return &cli.Command{
		Name:  "history",
		Usage: "show the login failures and bans the daemon recorded",
		Description: "Reads the database in --state-dir without changing it, so it works while the daemon runs.\n" +
			"Events and bans are listed oldest first; with --limit, the newest N of each.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "since", Usage: "only the last DURATION: 90m, 24h, 7d, 2w"},
			&cli.StringFlag{Name: "ip", Usage: "only events from ADDR|CIDR, and bans that cover or fall in it"},
			&cli.IntFlag{Name: "limit", Value: defaultHistoryLimit, Usage: "at most the newest N events and N bans; 0 for all"},
			jsonFlag(),
		},
		Action: history,
	}
}

func history(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	var evf store.EventFilter
	var banf store.BanFilter
	if s := c.String("since"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			return fmt.Errorf("--since: %w", err)
		}
		evf.Since = time.Now().Add(-d)
		banf.Since = evf.Since
	}
	limit := c.Int("limit")
	if limit < 0 {
		return fmt.Errorf("--limit %d: give 0 (all) or more", limit)
	}
	evf.Limit = limit
	var within netip.Prefix
	if s := c.String("ip"); s != "" {
		p, err := maps.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("--ip: %w", err)
		}
		within = p
		evf.Within = p
		if p.IsSingleIP() {
			banf.Covering, banf.Limit = p.Addr(), limit
		}
		// For a wider prefix the bans that overlap it are picked below: the
		// store selects a ban by exact prefix or by an address it covers.
	} else {
		banf.Limit = limit
	}

	dir, err := stateDir(c)
	if err != nil {
		return err
	}
	st, err := store.OpenReadOnly(c.Context, dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, store.ErrNoSchema) {
		return fmt.Errorf("no history yet in %s: the daemon has not run", dir)
	}
	if err != nil {
		return err
	}
	defer st.Close()

	events, err := st.Events(c.Context, evf)
	if err != nil {
		return err
	}
	bans, err := st.Bans(c.Context, banf)
	if err != nil {
		return err
	}
	if within.IsValid() && !within.IsSingleIP() {
		bans = slices.DeleteFunc(bans, func(b store.Ban) bool { return !b.Prefix.Overlaps(within) })
		if limit > 0 && len(bans) > limit {
			bans = bans[len(bans)-limit:]
		}
	}
	if limit > 0 && (len(events) == limit || len(bans) == limit) {
		fmt.Fprintf(c.App.ErrWriter, "showing the newest %d events and %d bans at most; --limit 0 shows all\n", limit, limit)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, historyJSON(events, bans))
	}
	return printHistory(c, events, bans)
}

// stateDir is --state-dir (or $PORTCULLIS_STATE_DIR) when given, else the
// config file's daemon.state_dir, so that history reads where the daemon
// writes.
func stateDir(c *cli.Context) (string, error) {
	// urfave/cli marks the flag set in every command's context when the
	// environment sets it, so a value given on the command line is told
	// from the environment's by being different.
	env := os.Getenv("PORTCULLIS_STATE_DIR")
	for _, ctx := range c.Lineage() {
		if slices.Contains(ctx.LocalFlagNames(), "state-dir") {
			if dir := ctx.String("state-dir"); dir != "" && dir != env {
				return dir, nil
			}
		}
	}
	if env != "" {
		return env, nil
	}
	path, explicit := globalString(c, "config"), true
	if path == "" {
		path, explicit = config.DefaultPath, false
	}
	cfg, err := config.Load(path)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		return config.Default().Daemon.StateDir, nil
	}
	if err != nil {
		return "", fmt.Errorf("find the state directory: %w (or give --state-dir)", err)
	}
	return cfg.Daemon.StateDir, nil
}

func printHistory(c *cli.Context, events []logs.Event, bans []store.Ban) error {
	w := c.App.Writer
	const layout = "2006-01-02 15:04:05"
	if len(events) == 0 {
		fmt.Fprintln(w, "no events")
	} else {
		tw := table(w)
		fmt.Fprintln(tw, "TIME (UTC)\tSERVICE\tKIND\tADDRESS\tUSER\tATTEMPTS\tRULE")
		for _, ev := range events {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", ev.Time.UTC().Format(layout), dash(ev.Service), ev.Kind,
				ev.Addr, dash(ev.User), ev.Attempts, dash(ev.Rule))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(bans) == 0 {
		fmt.Fprintln(w, "no bans")
		return nil
	}
	tw := table(w)
	fmt.Fprintln(tw, "TIME (UTC)\tPREFIX\tSCOPE\tEXPIRES\tORIGIN\tEVIDENCE\tREASON\tLIFTED")
	for _, b := range bans {
		expires := "never"
		if !b.Expires.IsZero() {
			expires = b.Expires.UTC().Format(layout)
		}
		lifted := "-"
		if !b.LiftedAt.IsZero() {
			lifted = b.LiftedAt.UTC().Format(layout)
			if b.LiftReason != "" {
				lifted += " (" + b.LiftReason + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Start.UTC().Format(layout), b.Prefix, b.Scope, expires,
			b.Origin, strconv.Itoa(b.Evidence), dash(b.Reason), lifted)
	}
	return tw.Flush()
}

// dash stands in for an empty cell, which would shift the columns a reader
// (or awk) counts.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type historyEventJSON struct {
	Time     *string `json:"time"`
	Service  string  `json:"service"`
	Kind     string  `json:"kind"`
	Address  string  `json:"address"`
	User     string  `json:"user"`
	Attempts int     `json:"attempts"`
	Rule     string  `json:"rule"`
	File     string  `json:"file,omitempty"`
	Line     int64   `json:"line,omitempty"`
	Cursor   string  `json:"cursor,omitempty"`
}

type historyBanJSON struct {
	Start      *string `json:"start"`
	Prefix     string  `json:"prefix"`
	Scope      string  `json:"scope"`
	Expires    *string `json:"expires"` // null: permanent
	Origin     string  `json:"origin"`
	Reason     string  `json:"reason"`
	Evidence   int     `json:"evidence"`
	LiftedAt   *string `json:"lifted_at"`
	LiftReason string  `json:"lift_reason,omitempty"`
}

type historyOutJSON struct {
	Events []historyEventJSON `json:"events"`
	Bans   []historyBanJSON   `json:"bans"`
}

func historyJSON(events []logs.Event, bans []store.Ban) historyOutJSON {
	// Empty lists, not null: a script iterates without checking.
	out := historyOutJSON{Events: []historyEventJSON{}, Bans: []historyBanJSON{}}
	for _, ev := range events {
		out.Events = append(out.Events, historyEventJSON{
			Time: jsonTime(ev.Time), Service: ev.Service, Kind: string(ev.Kind), Address: ev.Addr.String(),
			User: ev.User, Attempts: ev.Attempts, Rule: ev.Rule,
			File: ev.Origin.File, Line: ev.Origin.Line, Cursor: ev.Origin.Cursor,
		})
	}
	for _, b := range bans {
		out.Bans = append(out.Bans, historyBanJSON{
			Start: jsonTime(b.Start), Prefix: b.Prefix.String(), Scope: string(b.Scope), Expires: jsonTime(b.Expires),
			Origin: string(b.Origin), Reason: b.Reason, Evidence: b.Evidence,
			LiftedAt: jsonTime(b.LiftedAt), LiftReason: b.LiftReason,
		})
	}
	return out
}
