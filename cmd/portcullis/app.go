package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
)

// run builds the app and runs it; every error comes back here to be
// printed once by main.
func run(args []string, stdout, stderr io.Writer) error {
	app := newApp(stdout, stderr)
	return app.Run(flagsFirst(app, args))
}

// flagsFirst moves a command's flags before its positional arguments, since
// urfave/cli stops reading flags at the first argument and people type
// `portcullis ban 192.0.2.7 --for 2h`. Everything after "--" stays as it is.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	flags := app.Flags
	cmds := app.Commands
	i := 1
	// Walk global flags and the command path (command, subcommand).
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			out = append(out, a)
			if takesValue(flags, a) && !strings.Contains(a, "=") && i+1 < len(args) {
				out = append(out, args[i+1])
				i++
			}
			i++
			continue
		}
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			break
		}
		out = append(out, a)
		flags, cmds = next.Flags, next.Subcommands
		i++
		if len(cmds) == 0 {
			break
		}
	}
	var positional []string
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			out = append(out, a)
			if takesValue(flags, a) && !strings.Contains(a, "=") && i+1 < len(args) {
				out = append(out, args[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	return append(out, positional...)
}

// takesValue reports whether the flag named by arg (-x, --xx) reads the next
// argument as its value.
func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

func newApp(stdout, stderr io.Writer) *cli.App {
	commands := []*cli.Command{
		runCommand(),
		attachCommand(),
		detachCommand(),
		statusCommand(),
		banCommand(),
		unbanCommand(),
		bansCommand(),
		allowCommand(),
		ratelimitCommand(),
		statsCommand(),
		topCommand(),
		explainCommand(),
		geoCommand(),
		logsCommand(),
		configCommand(),
		historyCommand(),
		healthCommand(),
		alertCommand(),
	}
	for _, c := range commands {
		addGlobalFlags(c)
	}
	return &cli.App{
		Name:                 "portcullis",
		Usage:                "drop login-abuse traffic to a mail server in the kernel",
		Flags:                globalFlags(),
		Commands:             commands,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		// Errors are returned to main, which prints them once.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return fmt.Errorf("%w (see --help)", err)
		},
	}
}

// globalFlags are honoured before or after the command name.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    "config",
			Usage:   "configuration file (TOML)",
			EnvVars: []string{"PORTCULLIS_CONFIG"},
		},
		&cli.StringFlag{
			Name:    "state-dir",
			Usage:   "the daemon's state: its SQLite history and read positions",
			EnvVars: []string{"PORTCULLIS_STATE_DIR"},
			Value:   "/var/lib/portcullis",
		},
		&cli.StringFlag{
			Name:    "socket",
			Usage:   "the daemon's control socket",
			EnvVars: []string{"PORTCULLIS_SOCKET"},
			Value:   "/run/portcullis/portcullis.sock",
		},
		&cli.StringFlag{
			Name:    "pin-dir",
			Usage:   "bpffs directory holding the pinned program, maps and links",
			EnvVars: []string{"PORTCULLIS_PIN_DIR"},
			Value:   loader.DefaultPinDir,
		},
	}
}

// addGlobalFlags gives a command (and its subcommands) the global flags, so
// that `portcullis bans --pin-dir X` works as well as `portcullis --pin-dir X bans`.
func addGlobalFlags(c *cli.Command) {
	c.Flags = append(c.Flags, globalFlags()...)
	for _, sub := range c.Subcommands {
		addGlobalFlags(sub)
	}
}

// globalString returns a global flag's value from the innermost context
// that set it on the command line, else from the innermost that defines it
// (where its environment variable and default apply).
func globalString(c *cli.Context, name string) string {
	for _, ctx := range c.Lineage() {
		if slices.Contains(ctx.LocalFlagNames(), name) {
			return ctx.String(name)
		}
	}
	return c.String(name)
}

func pinDir(c *cli.Context) string { return globalString(c, "pin-dir") }

func logger(c *cli.Context) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// errNeedRoot is what a user sees instead of a bare EPERM.
var errNeedRoot = errors.New("this needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN to reach pinned maps); run it with sudo")

func requireRoot() error {
	if os.Geteuid() != 0 {
		return errNeedRoot
	}
	return nil
}

// openMaps opens the pinned maps for a command that reads or changes them.
func openMaps(c *cli.Context) (*maps.Maps, error) {
	if err := requireRoot(); err != nil {
		return nil, err
	}
	m, err := maps.Open(pinDir(c))
	if err != nil {
		return nil, explainErr(err)
	}
	return m, nil
}

// withMaps runs fn with the pinned maps open, for the commands that read or
// change them directly.
func withMaps(c *cli.Context, fn func(*maps.Maps) error) error {
	m, err := openMaps(c)
	if err != nil {
		return err
	}
	defer m.Close()
	return fn(m)
}

// explainErr turns kernel errnos into what a person can act on.
func explainErr(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w: %v", errNeedRoot, err)
	}
	return err
}

// oneLine keeps an error to one line, as every error of the CLI must be.
func oneLine(err error) string {
	s := err.Error()
	s = strings.ReplaceAll(s, "\n", "; ")
	return s
}

// noArgs refuses stray arguments, which would otherwise be ignored silently.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("%s takes no arguments, got %q", c.Command.FullName(), c.Args().First())
	}
	return nil
}
