package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/config"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "print the default configuration or check a config file",
		Subcommands: []*cli.Command{
			{
				Name:   "default",
				Usage:  "print the full default configuration, commented",
				Action: configDefault,
			},
			{
				Name:      "check",
				Usage:     "check a config file and explain every problem with its line",
				ArgsUsage: "[FILE]",
				Description: "FILE defaults to --config, then $PORTCULLIS_CONFIG, then " + config.DefaultPath + ".\n" +
					"Exits non-zero when the file has problems; `portcullis run` refuses such a file.",
				Action: configCheck,
			},
		},
	}
}

func configDefault(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	_, err := c.App.Writer.Write(config.DefaultTOML)
	return err
}

func configCheck(c *cli.Context) error {
	if c.NArg() > 1 {
		return fmt.Errorf("config check takes one file, got %d arguments", c.NArg())
	}
	path, explicit := c.Args().First(), true
	if path == "" {
		path = globalString(c, "config")
	}
	if path == "" {
		path = os.Getenv("PORTCULLIS_CONFIG")
	}
	if path == "" {
		path, explicit = config.DefaultPath, false
	}
	_, err := config.Load(path)
	if !explicit && errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(c.App.Writer, "%s does not exist: the built-in defaults apply (see `portcullis config default`)\n", path)
		return nil
	}
	var problems config.Errors
	if errors.As(err, &problems) {
		// One line each here; main would fold them into one.
		for _, p := range problems {
			fmt.Fprintln(c.App.Writer, p)
		}
		if len(problems) == 1 {
			return fmt.Errorf("%s has a problem", path)
		}
		return fmt.Errorf("%s has %d problems", path, len(problems))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: ok\n", path)
	return nil
}
