package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/daemon"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
)

type explainJSON struct {
	Addr        string   `json:"addr"`
	Port        uint16   `json:"port"`
	Class       string   `json:"class"`
	Action      string   `json:"action"`
	Rule        string   `json:"rule"`
	Allowlisted bool     `json:"allowlisted"`
	AllowedBy   string   `json:"allowed_by,omitempty"`
	Ban         *banJSON `json:"ban,omitempty"`
	RateLimit   rateJSON `json:"rate_limit"`
	Tokens      *uint32  `json:"tokens,omitempty"`
	Geo         *geoJSON `json:"geo,omitempty"`
	Reason      string   `json:"reason"`
}

// geoJSON is the geo step of an explanation: the source's country as the
// kernel's tries place it, the classes they drop it for, and the policy of
// the port's class as the configuration words it.
type geoJSON struct {
	Country string `json:"country"` // a code, "other" or "unknown"
	Drops   string `json:"drops"`
	Policy  string `json:"policy,omitempty"`
}

func explainCommand() *cli.Command {
	return &cli.Command{
		Name:      "explain",
		Usage:     "say what the datapath does with a SYN from ADDR, and why (asks the kernel program; spends nothing)",
		ArgsUsage: "ADDR",
		Flags: []cli.Flag{
			&cli.UintFlag{Name: "port", Value: 587, Usage: "destination port"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("give one address: portcullis explain ADDR [--port 587]")
			}
			addr, err := netip.ParseAddr(c.Args().First())
			if err != nil || addr.Zone() != "" {
				return fmt.Errorf("%q is not an IP address", c.Args().First())
			}
			if c.Uint("port") > 65535 {
				return fmt.Errorf("port %d is out of range", c.Uint("port"))
			}
			if err := requireRoot(); err != nil {
				return err
			}
			d, err := loader.Open(pinDir(c))
			if err != nil {
				return explainErr(err)
			}
			defer d.Close()
			e, err := d.Explain(addr, uint16(c.Uint("port")))
			if err != nil {
				return explainErr(err)
			}
			out := explainJSON{
				Addr: e.Addr.String(), Port: e.Port, Class: e.Class.String(), Action: e.Action, Rule: e.Rule,
				Allowlisted: e.Allowlisted, RateLimit: toRateJSON(e.RateLimit),
			}
			if e.AllowedBy.IsValid() {
				out.AllowedBy = e.AllowedBy.String()
			}
			if e.Ban != nil {
				b := e.Ban
				out.Ban = &banJSON{Prefix: b.Prefix.String(), Scope: b.Scope.String(), Reason: b.Reason, Origin: b.Origin.String(),
					Starts: jsonTime(b.Starts), Expires: jsonTime(b.Expires), Active: true, Hits: b.Hits}
			}
			if e.Limited {
				out.Tokens = &e.Tokens
			}
			if e.Geo {
				out.Geo = &geoJSON{Country: e.GeoCountry, Drops: e.GeoDrop.String(), Policy: explainGeoPolicy(c, e.Class)}
			}
			out.Reason = reasonFor(e, out.Geo)
			if c.Bool("json") {
				return writeJSON(c.App.Writer, out)
			}
			fmt.Fprintf(c.App.Writer, "%s -> port %d (%s): %s\n", e.Addr, e.Port, e.Class, upper(e.Action))
			fmt.Fprintf(c.App.Writer, "  %s\n", out.Reason)
			return nil
		},
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// reasonFor turns the kernel's answer into one sentence; g is the geo
// step, when the program took it.
func reasonFor(e loader.Explanation, g *geoJSON) string {
	now := time.Now()
	switch e.Rule {
	case "geo":
		return fmt.Sprintf("dropped by geo policy: %s, policy %s", geoPlace(g), g.Policy)
	case "ban", "ban-prefix":
		b := e.Ban
		exp := "permanent"
		if !b.Expires.IsZero() {
			exp = "expires " + until(b.Expires, now)
		}
		return fmt.Sprintf("banned by %s (scope %s, %s, %s, reason %q, %d hits)", b.Prefix, b.Scope, exp, b.Origin, b.Reason, b.Hits)
	case "allowlist":
		s := fmt.Sprintf("would be dropped, but %s is allowlisted by %s: the allowlist wins", e.Addr, e.AllowedBy)
		if g != nil {
			s += fmt.Sprintf(" (geo: %s, policy %s)", geoPlace(g), g.Policy)
		}
		return s
	case "rate-limit":
		return fmt.Sprintf("rate limited: the source's %s bucket is empty (%s)", e.Class, toRateJSON(e.RateLimit))
	}
	if e.Class.String() == "none" {
		return fmt.Sprintf("port %d is not protected, and no ban of scope all covers %s", e.Port, e.Addr)
	}
	s := "no ban covers it"
	if e.Limited {
		s += fmt.Sprintf("; %d of %d tokens left in its %s bucket (%s)", e.Tokens, e.RateLimit.Burst, e.Class, toRateJSON(e.RateLimit))
	} else {
		s += fmt.Sprintf("; class %s has no rate limit", e.Class)
	}
	if e.Allowlisted {
		s += fmt.Sprintf("; allowlisted by %s", e.AllowedBy)
	}
	if g != nil {
		s += fmt.Sprintf("; geo: %s, policy %s passes it", geoPlace(g), g.Policy)
	}
	return s
}

// geoPlace says where the kernel's tries place a source.
func geoPlace(g *geoJSON) string {
	switch g.Country {
	case maps.CountryOther:
		return "in a country no policy names"
	case maps.CountryUnknown:
		return "not placed by the database"
	}
	return "country " + g.Country
}

// explainGeoPolicy is the configured geo policy that applies to a port of
// class c: the class's own, and the all policy, which sees every packet.
// The kernel holds masks, not the lists, so the words come from the
// configuration; without one, the kernel's masks are all there is.
func explainGeoPolicy(c *cli.Context, class maps.Class) string {
	cfg, err := loadConfig(c)
	if err != nil {
		return "(config unreadable: " + oneLine(err) + ")"
	}
	ps := daemon.GeoPolicies(cfg.Geo)
	var parts []string
	if class != maps.ClassNone && ps[class].Active() {
		parts = append(parts, class.String()+": "+ps[class].String())
	}
	if ps[maps.ClassNone].Active() {
		parts = append(parts, "all: "+ps[maps.ClassNone].String())
	}
	if len(parts) == 0 {
		return "none for " + class.String()
	}
	return strings.Join(parts, "; ")
}
