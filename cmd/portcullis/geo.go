package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/daemon"
	"github.com/portcullis-mail/portcullis/geo"
	"github.com/portcullis-mail/portcullis/maps"
)

func geoCommand() *cli.Command {
	return &cli.Command{
		Name:  "geo",
		Usage: "country policy: look addresses up, show what the kernel holds",
		Subcommands: []*cli.Command{
			{
				Name:      "lookup",
				Usage:     "the country of each ADDR and what each port class's policy does with it",
				ArgsUsage: "ADDR...",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "db", Usage: "read this .mmdb file directly (no daemon or config needed)"},
					jsonFlag(),
				},
				Action: geoLookup,
			},
			{
				Name:   "status",
				Usage:  "the loaded database, and prefixes and drops per country in the kernel",
				Flags:  []cli.Flag{jsonFlag()},
				Action: geoStatus,
			},
		},
	}
}

// geoClasses are the classes in the order users read them.
var geoClasses = []maps.Class{maps.ClassMX, maps.ClassAuth, maps.ClassNone}

type geoVerdictJSON struct {
	Policy string `json:"policy"`
	Action string `json:"action"` // pass or drop
}

type geoLookupJSON struct {
	Addr     string                    `json:"addr"`
	Country  string                    `json:"country"` // "" when the database does not place it
	Policies map[string]geoVerdictJSON `json:"policies"`
}

func geoLookup(c *cli.Context) error {
	if c.NArg() == 0 {
		return errors.New("give one or more addresses: portcullis geo lookup [--db FILE] ADDR...")
	}
	var addrs []netip.Addr
	for _, s := range c.Args().Slice() {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("%q is not an IP address", s)
		}
		addrs = append(addrs, a.Unmap())
	}
	// With --db the config is optional: its policies are shown if it reads.
	cfg, err := loadConfig(c)
	path := c.String("db")
	if err != nil {
		if path == "" {
			return err
		}
		cfg = config.Default()
	}
	if path == "" {
		path = cfg.Geo.Database
	}
	if path == "" {
		return errors.New("no geo database: give --db FILE or set [geo] database in the config")
	}
	db, err := geo.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	policies := daemon.GeoPolicies(cfg.Geo)
	var out []geoLookupJSON
	for _, a := range addrs {
		country, err := db.Country(a)
		if err != nil {
			return err
		}
		r := geoLookupJSON{Addr: a.String(), Country: country, Policies: map[string]geoVerdictJSON{}}
		for _, cl := range geoClasses {
			p := policies[cl]
			v := geoVerdictJSON{Policy: p.String(), Action: "pass"}
			if p.Active() && p.Drops(country) {
				v.Action = "drop"
			}
			r.Policies[daemon.GeoClassName(cl)] = v
		}
		out = append(out, r)
	}
	if c.Bool("json") {
		return writeJSON(c.App.Writer, out)
	}
	w := table(c.App.Writer)
	fmt.Fprintln(w, "ADDR\tCOUNTRY\tMX\tAUTH\tALL")
	for _, r := range out {
		country := r.Country
		if country == "" {
			country = "unknown"
		}
		fmt.Fprintf(w, "%s\t%s", r.Addr, country)
		for _, cl := range geoClasses {
			v := r.Policies[daemon.GeoClassName(cl)]
			cell := v.Action
			if v.Policy != "none" {
				cell += " (" + v.Policy + ")"
			}
			fmt.Fprintf(w, "\t%s", cell)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

type geoCountryJSON struct {
	Country string `json:"country"`
	IPv4    int    `json:"ipv4_prefixes"`
	IPv6    int    `json:"ipv6_prefixes"`
	Drops   string `json:"drops"` // the classes its prefixes are dropped for
	Dropped uint64 `json:"dropped"`
}

type geoStatusJSON struct {
	// Database is what the daemon loaded; without a running daemon, the
	// config's database as it is on disk now (FromConfig).
	Database   *geo.Info         `json:"database"`
	FromConfig bool              `json:"from_config,omitempty"`
	Loaded     *string           `json:"loaded,omitempty"`
	Policies   map[string]string `json:"policies,omitempty"`
	On         bool              `json:"on"`
	Set        int               `json:"set"`
	Bytes      uint64            `json:"bytes"`
	Countries  []geoCountryJSON  `json:"countries"`
}

func geoStatus(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	return withMaps(c, func(m *maps.Maps) error {
		ks, err := m.GeoStatus()
		if err != nil {
			return err
		}
		out := geoStatusJSON{On: ks.On, Set: ks.Set, Bytes: ks.Bytes, Countries: []geoCountryJSON{}}
		for _, cs := range ks.Countries {
			out.Countries = append(out.Countries, geoCountryJSON{Country: cs.Country, IPv4: cs.IPv4, IPv6: cs.IPv6, Drops: cs.Drop.String(), Dropped: cs.Dropped})
		}
		resp, err := daemon.Call(c.Context, globalString(c, "socket"), daemon.Request{Command: "status"})
		switch {
		case err == nil && resp.Status != nil && resp.Status.Geo != nil:
			g := resp.Status.Geo
			info := g.Info
			out.Database, out.Loaded, out.Policies = &info, jsonTime(g.Loaded), g.Policies
		case err == nil:
			// The daemon runs without a database.
		case errors.Is(err, daemon.ErrNotRunning):
			cfg, cerr := loadConfig(c)
			if cerr == nil && cfg.Geo.Database != "" {
				if db, oerr := geo.Open(cfg.Geo.Database); oerr == nil {
					info := db.Info()
					db.Close()
					out.Database, out.FromConfig = &info, true
					out.Policies = map[string]string{}
					for cl, p := range daemon.GeoPolicies(cfg.Geo) {
						out.Policies[daemon.GeoClassName(cl)] = p.String()
					}
				}
			}
		default:
			return explainErr(err)
		}
		if c.Bool("json") {
			return writeJSON(c.App.Writer, out)
		}
		w := table(c.App.Writer)
		if out.Database == nil {
			fmt.Fprintln(w, "database:\tnone loaded")
		} else {
			d := out.Database
			fmt.Fprintf(w, "database:\t%s\n", d.Path)
			fmt.Fprintf(w, "type:\t%s (%s shape), built %s\n", d.Type, d.Shape, d.Built.Format(time.DateOnly))
			if out.FromConfig {
				fmt.Fprintln(w, "loaded:\tthe daemon is not running; this is the config's database as it is now")
			} else if out.Loaded != nil {
				fmt.Fprintf(w, "loaded:\t%s\n", *out.Loaded)
			}
			var ps []string
			for _, cl := range geoClasses {
				name := daemon.GeoClassName(cl)
				ps = append(ps, name+": "+out.Policies[name])
			}
			fmt.Fprintf(w, "policy:\t%s\n", strings.Join(ps, "; "))
		}
		state := "off (no policy in the kernel)"
		if out.On {
			state = fmt.Sprintf("on, tries set %d, %.1f MiB of kernel memory", out.Set, float64(out.Bytes)/(1<<20))
		}
		fmt.Fprintf(w, "kernel:\t%s\n", state)
		if err := w.Flush(); err != nil {
			return err
		}
		if len(out.Countries) == 0 {
			return nil
		}
		fmt.Fprintln(c.App.Writer)
		w = table(c.App.Writer)
		fmt.Fprintln(w, "COUNTRY\tIPV4\tIPV6\tDROPS\tDROPPED")
		for _, cs := range out.Countries {
			fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%d\n", cs.Country, cs.IPv4, cs.IPv6, cs.Drops, cs.Dropped)
		}
		return w.Flush()
	})
}
