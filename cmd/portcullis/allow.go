package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/daemon"
	"github.com/portcullis-mail/portcullis/maps"
)

func allowCommand() *cli.Command {
	return &cli.Command{
		Name:  "allow",
		Usage: "manage the allowlist: sources that are never dropped",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "never drop these addresses or prefixes",
				ArgsUsage: "ADDR|CIDR...",
				Action:    func(c *cli.Context) error { return changeAllowlist(c, true) },
			},
			{
				Name:      "del",
				Usage:     "remove exactly these entries from the allowlist",
				ArgsUsage: "ADDR|CIDR...",
				Action:    func(c *cli.Context) error { return changeAllowlist(c, false) },
			},
			{
				Name:  "list",
				Usage: "list the allowlist",
				Flags: []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					return withMaps(c, func(m *maps.Maps) error {
						list, err := m.Allowlist()
						if err != nil {
							return explainErr(err)
						}
						if c.Bool("json") {
							return writeJSON(c.App.Writer, prefixStrings(list))
						}
						if len(list) == 0 {
							fmt.Fprintln(c.App.Writer, "the allowlist is empty")
						}
						for _, p := range list {
							fmt.Fprintln(c.App.Writer, p)
						}
						return nil
					})
				},
			},
		},
	}
}

// changeAllowlist adds or removes entries, through the daemon when it runs.
func changeAllowlist(c *cli.Context, add bool) error {
	prefixes, err := parsePrefixes(c)
	if err != nil {
		return err
	}
	cmd := "disallow"
	if add {
		cmd = "allow"
	}
	if handled, err := viaDaemon(c, daemon.Request{Command: cmd, Prefixes: prefixStrings(prefixes)}); handled {
		return err
	}
	return withMaps(c, func(m *maps.Maps) error {
		for _, p := range prefixes {
			if add {
				if err := m.Allow(p); err != nil {
					return explainErr(err)
				}
				fmt.Fprintf(c.App.Writer, "allowed %s\n", p)
				continue
			}
			if err := m.Disallow(p); err != nil {
				if errors.Is(err, maps.ErrNotFound) {
					return fmt.Errorf("%s is not in the allowlist (`portcullis allow list` shows it)", p)
				}
				return explainErr(err)
			}
			fmt.Fprintf(c.App.Writer, "removed %s from the allowlist\n", p)
		}
		return nil
	})
}
