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
				Action: func(c *cli.Context) error {
					prefixes, err := parsePrefixes(c)
					if err != nil {
						return err
					}
					if handled, err := viaDaemon(c, daemon.Request{Command: "allow", Prefixes: prefixStrings(prefixes)}); handled {
						return err
					}
					m, err := openMaps(c)
					if err != nil {
						return err
					}
					defer m.Close()
					for _, p := range prefixes {
						if err := m.Allow(p); err != nil {
							return explainErr(err)
						}
						fmt.Fprintf(c.App.Writer, "allowed %s\n", p)
					}
					return nil
				},
			},
			{
				Name:      "del",
				Usage:     "remove exactly these entries from the allowlist",
				ArgsUsage: "ADDR|CIDR...",
				Action: func(c *cli.Context) error {
					prefixes, err := parsePrefixes(c)
					if err != nil {
						return err
					}
					if handled, err := viaDaemon(c, daemon.Request{Command: "disallow", Prefixes: prefixStrings(prefixes)}); handled {
						return err
					}
					m, err := openMaps(c)
					if err != nil {
						return err
					}
					defer m.Close()
					for _, p := range prefixes {
						if err := m.Disallow(p); err != nil {
							if errors.Is(err, maps.ErrNotFound) {
								return fmt.Errorf("%s is not in the allowlist (`portcullis allow list` shows it)", p)
							}
							return explainErr(err)
						}
						fmt.Fprintf(c.App.Writer, "removed %s from the allowlist\n", p)
					}
					return nil
				},
			},
			{
				Name:  "list",
				Usage: "list the allowlist",
				Flags: []cli.Flag{jsonFlag()},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					m, err := openMaps(c)
					if err != nil {
						return err
					}
					defer m.Close()
					list, err := m.Allowlist()
					if err != nil {
						return explainErr(err)
					}
					if c.Bool("json") {
						out := make([]string, 0, len(list))
						for _, p := range list {
							out = append(out, p.String())
						}
						return writeJSON(c.App.Writer, out)
					}
					if len(list) == 0 {
						fmt.Fprintln(c.App.Writer, "the allowlist is empty")
					}
					for _, p := range list {
						fmt.Fprintln(c.App.Writer, p)
					}
					return nil
				},
			},
		},
	}
}
