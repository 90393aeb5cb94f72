package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/daemon"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
)

func attachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "load the XDP program (reusing what is pinned) and attach it to interfaces",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "iface", Usage: "interface to protect (repeat for several)", Required: true},
			&cli.StringFlag{Name: "mode", Value: "auto", Usage: "auto (native, else generic), native or generic"},
			&cli.UintFlag{Name: "max-bans", Usage: "capacity of the exact ban map when it is created (default 1000000)"},
			&cli.UintFlag{Name: "max-prefix-bans", Usage: "capacity of the prefix ban map when it is created (default 65536)"},
			&cli.UintFlag{Name: "max-allow", Usage: "capacity of the allowlist when it is created (default 4096)"},
			&cli.UintFlag{Name: "max-sources", Usage: "sources tracked for rate limits and top (default 1000000)"},
		},
		Action: func(c *cli.Context) error {
			if err := requireRoot(); err != nil {
				return err
			}
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q (interfaces go with --iface)", c.Args().First())
			}
			mode, err := loader.ParseMode(c.String("mode"))
			if err != nil {
				return err
			}
			// A typo must not create and pin a datapath (and its maps'
			// memory) that then protects nothing.
			for _, iface := range c.StringSlice("iface") {
				if _, err := net.InterfaceByName(iface); err != nil {
					return fmt.Errorf("interface %q: no such interface", iface)
				}
			}
			d, err := loader.Load(loader.Options{
				PinDir: pinDir(c),
				Logger: logger(c),
				Capacity: loader.Capacity{
					Bans:       uint32(c.Uint("max-bans")),
					PrefixBans: uint32(c.Uint("max-prefix-bans")),
					Allowlist:  uint32(c.Uint("max-allow")),
					Sources:    uint32(c.Uint("max-sources")),
				},
			})
			if err != nil {
				return explainErr(err)
			}
			defer d.Close()
			for _, iface := range c.StringSlice("iface") {
				a, created, err := d.Attach(iface, mode)
				if err != nil {
					return explainErr(err)
				}
				if created {
					fmt.Fprintf(c.App.Writer, "attached to %s (%s)\n", a.Iface, a.Mode)
				} else {
					fmt.Fprintf(c.App.Writer, "already attached to %s (%s)\n", a.Iface, a.Mode)
				}
			}
			return nil
		},
	}
}

func detachCommand() *cli.Command {
	return &cli.Command{
		Name:      "detach",
		Usage:     "stop enforcing on interfaces; bans stay pinned unless --purge",
		ArgsUsage: " ",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "iface", Usage: "interface to detach from (repeat for several)"},
			&cli.BoolFlag{Name: "all", Usage: "detach from every interface"},
			&cli.BoolFlag{Name: "purge", Usage: "with --all: also remove the pinned program and maps, that is every ban"},
		},
		Action: func(c *cli.Context) error {
			if err := requireRoot(); err != nil {
				return err
			}
			ifaces := c.StringSlice("iface")
			switch {
			case c.Bool("all") && len(ifaces) > 0:
				return errors.New("give --iface or --all, not both")
			case c.Bool("purge") && !c.Bool("all"):
				return errors.New("--purge removes every ban and goes with --all only")
			case c.Bool("all"):
				done, err := loader.DetachAll(pinDir(c), c.Bool("purge"))
				for _, iface := range done {
					fmt.Fprintf(c.App.Writer, "detached from %s\n", iface)
				}
				if err != nil {
					return explainErr(err)
				}
				if c.Bool("purge") {
					fmt.Fprintf(c.App.Writer, "removed %s and every ban in it\n", pinDir(c))
				}
				return nil
			case len(ifaces) == 0:
				return errors.New("say which interface: --iface IFACE, or --all")
			}
			for _, iface := range ifaces {
				if err := loader.Detach(pinDir(c), iface); err != nil {
					return explainErr(err)
				}
				fmt.Fprintf(c.App.Writer, "detached from %s\n", iface)
			}
			return nil
		},
	}
}

type statusJSON struct {
	PinDir      string              `json:"pin_dir"`
	Program     loader.Info         `json:"program"`
	Attached    []loader.Attachment `json:"attached"`
	Maps        []maps.Fill         `json:"maps"`
	Counters    maps.Counters       `json:"counters"`
	RateLimits  map[string]rateJSON `json:"rate_limits"`
	Ports       map[string][]uint16 `json:"ports"`
	Daemon      *daemon.Status      `json:"daemon"` // null when it is not running
	GeneratedAt string              `json:"generated_at"`
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show attached interfaces, the program, map fill and counters",
		Flags: []cli.Flag{jsonFlag()},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return withMaps(c, func(m *maps.Maps) error {
				var err error
				st := statusJSON{PinDir: pinDir(c), RateLimits: map[string]rateJSON{}, Ports: map[string][]uint16{}, GeneratedAt: time.Now().UTC().Format(time.RFC3339)}
				if st.Program, err = loader.ProgramInfo(st.PinDir); err != nil {
					return err
				}
				if st.Attached, err = loader.Attachments(st.PinDir); err != nil {
					return err
				}
				if st.Maps, err = m.Fill(); err != nil {
					return err
				}
				if st.Counters, err = m.Counters(); err != nil {
					return err
				}
				ports, err := m.PortClasses()
				if err != nil {
					return err
				}
				for _, cl := range maps.Classes() {
					rl, err := m.RateLimit(cl)
					if err != nil {
						return err
					}
					st.RateLimits[cl.String()] = toRateJSON(rl)
					st.Ports[cl.String()] = ports[cl]
				}
				resp, err := daemon.Call(c.Context, globalString(c, "socket"), daemon.Request{Command: "status"})
				if err != nil && !errors.Is(err, daemon.ErrNotRunning) {
					return explainErr(err)
				}
				st.Daemon = resp.Status
				if c.Bool("json") {
					return writeJSON(c.App.Writer, st)
				}
				printStatus(c, st)
				return nil
			})
		},
	}
}

func printStatus(c *cli.Context, st statusJSON) {
	w := table(c.App.Writer)
	defer w.Flush()
	fmt.Fprintf(w, "pin dir:\t%s\n", st.PinDir)
	fmt.Fprintf(w, "program:\tid %d, tag %s\n", st.Program.ProgramID, st.Program.Tag)
	if len(st.Attached) == 0 {
		fmt.Fprintf(w, "attached:\tnowhere: NOT ENFORCING (run `portcullis attach --iface IFACE`)\n")
	}
	for _, a := range st.Attached {
		if a.Stale {
			fmt.Fprintf(w, "attached:\t%s: STALE, the interface is gone or was re-created (run `portcullis attach --iface %s`)\n", a.Iface, a.Iface)
			continue
		}
		fmt.Fprintf(w, "attached:\t%s (ifindex %d, %s, link %d)\n", a.Iface, a.Ifindex, a.Mode, a.LinkID)
	}
	for _, f := range st.Maps {
		fmt.Fprintf(w, "map %s:\t%d of %d (%.1f%%), %.1f MiB of kernel memory\n", f.Name, f.Entries, f.Capacity, 100*float64(f.Entries)/float64(max(f.Capacity, 1)), float64(f.Bytes)/(1<<20))
	}
	for _, cl := range maps.Classes() {
		r := st.RateLimits[cl.String()]
		fmt.Fprintf(w, "class %s:\tports %v, %s\n", cl, st.Ports[cl.String()], r)
	}
	ct := st.Counters
	fmt.Fprintf(w, "packets:\tpassed %d, allowlisted %d, dropped by ban %d, dropped by rate %d\n", ct.Passed, ct.Allowlisted, ct.DroppedBan, ct.DroppedRate)
	fmt.Fprintf(w, "SYNs seen:\tmx %d, auth %d\n", ct.SynMX, ct.SynAuth)
	fmt.Fprintf(w, "malformed:\t%d\n", ct.Malformed)
	printDaemon(w, st.Daemon)
}

func printDaemon(w io.Writer, d *daemon.Status) {
	if d == nil {
		fmt.Fprintf(w, "daemon:\tnot running: nothing new is banned, the kernel keeps enforcing what it has (start it: `portcullis run` or `systemctl start portcullis`)\n")
		return
	}
	now := time.Now()
	fmt.Fprintf(w, "daemon:\tpid %d, up %s, heartbeat %s\n", d.PID, humanDuration(now.Sub(d.Started)), ago(d.Heartbeat, now))
	for _, s := range d.Sources {
		lag := "caught up"
		if s.LagBytes > 0 {
			lag = fmt.Sprintf("%d bytes (%s) behind", s.LagBytes, humanDuration(time.Duration(s.LagSeconds*float64(time.Second))))
		}
		fmt.Fprintf(w, "log %s:\t%d lines, %d events, last event %s, %s\n", s.Name, s.Lines, s.Events, ago(s.LastEvent, now), lag)
		if s.Error != "" {
			fmt.Fprintf(w, "log %s:\tERROR %s\n", s.Name, s.Error)
		}
	}
	fmt.Fprintf(w, "last hour:\t%d events, %d bans\n", d.EventsHour, d.BansHour)
	fmt.Fprintf(w, "sources tracked:\t%d (%d evicted, stalest first, to bound memory)\n", d.Tracked, d.Evicted)
	if d.LastError != "" {
		fmt.Fprintf(w, "last error:\t%s\n", d.LastError)
	}
	printAlerts(w, d.Alerts)
}
