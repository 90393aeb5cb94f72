package main

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/daemon"
	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/store"
)

// parsePrefixes reads every argument before anything is changed, so a typo
// in the third address changes nothing.
func parsePrefixes(c *cli.Context) ([]netip.Prefix, error) {
	if c.NArg() == 0 {
		return nil, errors.New("give at least one address or CIDR prefix")
	}
	var out []netip.Prefix
	for _, s := range c.Args().Slice() {
		p, err := maps.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func banCommand() *cli.Command {
	return &cli.Command{
		Name:      "ban",
		Usage:     "drop everything (or mail only) from addresses or prefixes",
		ArgsUsage: "ADDR|CIDR...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "for", Value: "1h", Usage: "how long: 90s, 15m, 2h, 7d, 2w"},
			&cli.BoolFlag{Name: "permanent", Usage: "never expire"},
			&cli.StringFlag{Name: "scope", Value: "all", Usage: "all: every packet; mail: packets to the protected ports"},
			&cli.StringFlag{Name: "reason", Value: "manual", Usage: "why, shown in bans and kept with the ban"},
		},
		Action: func(c *cli.Context) error {
			prefixes, err := parsePrefixes(c)
			if err != nil {
				return err
			}
			scope, err := maps.ParseScope(c.String("scope"))
			if err != nil {
				return err
			}
			var expires time.Time
			if c.Bool("permanent") {
				if c.IsSet("for") {
					return errors.New("give --for or --permanent, not both")
				}
			} else {
				d, err := parseDuration(c.String("for"))
				if err != nil {
					return err
				}
				expires = time.Now().Add(d)
			}
			req := daemon.Request{Command: "ban", Prefixes: prefixStrings(prefixes), Scope: scope.String(), Permanent: c.Bool("permanent"), Reason: c.String("reason")}
			if !expires.IsZero() {
				req.Seconds = int64(time.Until(expires).Round(time.Second) / time.Second)
			}
			if handled, err := viaDaemon(c, req); handled {
				return err
			}
			return withMaps(c, func(m *maps.Maps) error {
				now := time.Now()
				bans := make([]maps.Ban, len(prefixes))
				var recs []store.Ban
				for i, p := range prefixes {
					bans[i] = maps.Ban{Prefix: p, Scope: scope, Origin: maps.OriginManual, Reason: c.String("reason"), Expires: expires}
					recs = append(recs, store.Ban{Prefix: p, Scope: store.Scope(scope.String()), Origin: store.OriginManual, Reason: c.String("reason"), Start: now, Expires: expires})
				}
				if err := m.AddBans(bans); err != nil {
					return explainErr(err)
				}
				if err := recordOffline(c, store.Batch{Bans: recs}); err != nil {
					return err
				}
				for _, b := range bans {
					until := "permanently"
					if !b.Expires.IsZero() {
						until = "until " + b.Expires.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(c.App.Writer, "banned %s (scope %s) %s\n", b.Prefix, b.Scope, until)
					if by, ok, err := m.AllowedBy(b.Prefix.Addr()); err == nil && ok {
						fmt.Fprintf(c.App.Writer, "note: %s is allowlisted by %s; the allowlist wins, so this ban drops nothing until that entry goes\n", b.Prefix, by)
					}
				}
				return nil
			})
		},
	}
}

func unbanCommand() *cli.Command {
	return &cli.Command{
		Name:      "unban",
		Usage:     "lift the ban of exactly these addresses or prefixes",
		ArgsUsage: "ADDR|CIDR...",
		Action: func(c *cli.Context) error {
			prefixes, err := parsePrefixes(c)
			if err != nil {
				return err
			}
			if handled, err := viaDaemon(c, daemon.Request{Command: "unban", Prefixes: prefixStrings(prefixes)}); handled {
				return err
			}
			return withMaps(c, func(m *maps.Maps) error {
				for _, p := range prefixes {
					if err := recordOffline(c, store.Batch{Lifts: []store.Lift{{Prefix: p, At: time.Now(), Reason: "manual unban"}}}); err != nil {
						return err
					}
					if err := m.DeleteBan(p); err != nil {
						if errors.Is(err, maps.ErrNotFound) {
							return fmt.Errorf("%s is not banned (`portcullis bans` lists the bans)", p)
						}
						return explainErr(err)
					}
					fmt.Fprintf(c.App.Writer, "unbanned %s\n", p)
				}
				return nil
			})
		},
	}
}

type banJSON struct {
	Prefix  string  `json:"prefix"`
	Scope   string  `json:"scope"`
	Reason  string  `json:"reason"`
	Origin  string  `json:"origin"`
	Starts  *string `json:"starts"`
	Expires *string `json:"expires"`
	Active  bool    `json:"active"`
	Hits    uint64  `json:"hits"`
}

func bansCommand() *cli.Command {
	return &cli.Command{
		Name:  "bans",
		Usage: "list the bans in the kernel",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withMaps(c, func(m *maps.Maps) error {
				bans, err := m.Bans()
				if err != nil {
					return explainErr(err)
				}
				now := time.Now()
				if c.Bool("json") {
					out := make([]banJSON, 0, len(bans))
					for _, b := range bans {
						out = append(out, banJSON{
							Prefix: b.Prefix.String(), Scope: b.Scope.String(), Reason: b.Reason, Origin: b.Origin.String(),
							Starts: jsonTime(b.Starts), Expires: jsonTime(b.Expires), Active: b.ActiveAt(now), Hits: b.Hits,
						})
					}
					return writeJSON(c.App.Writer, out)
				}
				if len(bans) == 0 {
					fmt.Fprintln(c.App.Writer, "no bans")
					return nil
				}
				w := table(c.App.Writer)
				defer w.Flush()
				fmt.Fprintln(w, "PREFIX\tSCOPE\tEXPIRES\tHITS\tORIGIN\tREASON")
				for _, b := range bans {
					exp := "never"
					switch {
					case !b.Starts.IsZero() && now.Before(b.Starts):
						exp = "starts " + until(b.Starts, now)
					case !b.Expires.IsZero():
						exp = until(b.Expires, now)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", b.Prefix, b.Scope, exp, b.Hits, b.Origin, b.Reason)
				}
				return nil
			})
		},
	}
}
