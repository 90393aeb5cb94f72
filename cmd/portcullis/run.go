package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/daemon"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "run the daemon: follow the mail logs and ban what they show (stopping it leaves enforcement on)",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "iface", Usage: "interface to protect (default: those of the default routes)"},
			&cli.StringSliceFlag{Name: "log", Usage: "log file or glob to follow (repeat; replaces [logs] files)"},
			&cli.BoolFlag{Name: "journal", Usage: "follow the systemd journal"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			// A bad configuration is refused before anything is touched,
			// and before the privilege check, so anyone can see why.
			load := func() (config.Config, error) { return loadConfig(c) }
			cfg, err := load()
			if err != nil {
				return err
			}
			if err := requireRoot(); err != nil {
				return err
			}
			log, err := daemonLogger(c, cfg.Daemon)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			err = daemon.Run(ctx, daemon.Options{Config: cfg, Reload: load, Logger: log})
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
}

// loadConfig reads the configuration file (--config, else the default path
// if it exists, else the embedded defaults) and applies the flags over it.
func loadConfig(c *cli.Context) (config.Config, error) {
	path := globalString(c, "config")
	cfg := config.Default()
	if path == "" {
		if _, err := os.Stat(config.DefaultPath); err == nil {
			path = config.DefaultPath
		}
	}
	if path != "" {
		var err error
		if cfg, err = config.Load(path); err != nil {
			return cfg, err
		}
	}
	if v := globalString(c, "pin-dir"); isSetAnywhere(c, "pin-dir") {
		cfg.Daemon.PinDir = v
	}
	if v := globalString(c, "state-dir"); isSetAnywhere(c, "state-dir") {
		cfg.Daemon.StateDir = v
	}
	if v := globalString(c, "socket"); isSetAnywhere(c, "socket") {
		cfg.Daemon.Socket = v
	}
	if c.IsSet("iface") {
		cfg.Daemon.Interfaces = c.StringSlice("iface")
	}
	if c.IsSet("log") {
		cfg.Logs.Files = c.StringSlice("log")
	}
	if c.Bool("journal") {
		cfg.Logs.Journal = config.JournalOn
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

// isSetAnywhere reports whether a global flag was given on the command line
// or through its environment variable.
func isSetAnywhere(c *cli.Context, name string) bool {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return true
		}
	}
	return false
}

func daemonLogger(c *cli.Context, d config.Daemon) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(d.LogLevel)); err != nil {
		return nil, fmt.Errorf("log_level %q: %w", d.LogLevel, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if d.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
}
