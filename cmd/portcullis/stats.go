package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/maps"
)

type statsJSON struct {
	Passed      uint64 `json:"passed"`
	Allowlisted uint64 `json:"allowlisted"`
	DroppedBan  uint64 `json:"dropped_ban"`
	DroppedRate uint64 `json:"dropped_rate"`
	DroppedGeo  uint64 `json:"dropped_geo"`
	SynSeen     uint64 `json:"syn_seen"`
	SynSeenMX   uint64 `json:"syn_seen_mx"`
	SynSeenAuth uint64 `json:"syn_seen_auth"`
	Malformed   uint64 `json:"malformed"`
	NonIP       uint64 `json:"non_ip"`
	TrackFull   uint64 `json:"track_full"`
}

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "show the datapath's packet counters (since the maps were created)",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withMaps(c, func(m *maps.Maps) error {
				ct, err := m.Counters()
				if err != nil {
					return explainErr(err)
				}
				s := statsJSON{
					Passed: ct.Passed, Allowlisted: ct.Allowlisted, DroppedBan: ct.DroppedBan, DroppedRate: ct.DroppedRate,
					DroppedGeo: ct.DroppedGeo, SynSeen: ct.SynMX + ct.SynAuth, SynSeenMX: ct.SynMX, SynSeenAuth: ct.SynAuth,
					Malformed: ct.Malformed, NonIP: ct.NonIP, TrackFull: ct.TrackFull,
				}
				if c.Bool("json") {
					return writeJSON(c.App.Writer, s)
				}
				w := table(c.App.Writer)
				defer w.Flush()
				for _, row := range []struct {
					name string
					v    uint64
				}{
					{"passed", s.Passed}, {"allowlisted", s.Allowlisted}, {"dropped (ban)", s.DroppedBan},
					{"dropped (rate)", s.DroppedRate}, {"SYNs seen (mx)", s.SynSeenMX}, {"SYNs seen (auth)", s.SynSeenAuth},
					{"malformed", s.Malformed}, {"non-IP", s.NonIP}, {"untracked SYNs (source table full)", s.TrackFull},
				} {
					fmt.Fprintf(w, "%s\t%d\n", row.name, row.v)
				}
				return nil
			})
		},
	}
}

type sourceJSON struct {
	Source      string  `json:"source"`
	SynMX       uint64  `json:"syn_mx"`
	SynAuth     uint64  `json:"syn_auth"`
	Syn         uint64  `json:"syn"`
	DroppedMX   uint64  `json:"dropped_rate_mx"`
	DroppedAuth uint64  `json:"dropped_rate_auth"`
	Dropped     uint64  `json:"dropped_rate"`
	LastSeen    *string `json:"last_seen"`
}

func topCommand() *cli.Command {
	return &cli.Command{
		Name:  "top",
		Usage: "show the sources sending the most SYNs to the protected ports",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "n", Value: 20, Usage: "how many sources"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if c.Int("n") < 1 {
				return fmt.Errorf("--n must be at least 1")
			}
			return withMaps(c, func(m *maps.Maps) error {
				top, err := m.Top(c.Int("n"))
				if err != nil {
					return explainErr(err)
				}
				if c.Bool("json") {
					out := make([]sourceJSON, 0, len(top))
					for _, s := range top {
						out = append(out, sourceJSON{
							Source: s.Prefix.String(), SynMX: s.SYNs[0], SynAuth: s.SYNs[1], Syn: s.Total(),
							DroppedMX: s.Drops[0], DroppedAuth: s.Drops[1], Dropped: s.Drops[0] + s.Drops[1],
							LastSeen: jsonTime(s.LastSeen),
						})
					}
					return writeJSON(c.App.Writer, out)
				}
				if len(top) == 0 {
					fmt.Fprintln(c.App.Writer, "no SYNs to protected ports seen yet")
					return nil
				}
				now := time.Now()
				w := table(c.App.Writer)
				defer w.Flush()
				fmt.Fprintln(w, "SOURCE\tSYN MX\tSYN AUTH\tRATE-DROPPED\tLAST SEEN")
				for _, s := range top {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\n", s.Prefix, s.SYNs[0], s.SYNs[1], s.Drops[0]+s.Drops[1], ago(s.LastSeen, now))
				}
				return nil
			})
		},
	}
}
