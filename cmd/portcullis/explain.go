package main

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/loader"
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
	Reason      string   `json:"reason"`
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
				Allowlisted: e.Allowlisted, RateLimit: toRateJSON(e.RateLimit), Reason: reasonFor(e),
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

// reasonFor turns the kernel's answer into one sentence.
func reasonFor(e loader.Explanation) string {
	now := time.Now()
	switch e.Rule {
	case "ban", "ban-prefix":
		b := e.Ban
		exp := "permanent"
		if !b.Expires.IsZero() {
			exp = "expires " + until(b.Expires, now)
		}
		return fmt.Sprintf("banned by %s (scope %s, %s, %s, reason %q, %d hits)", b.Prefix, b.Scope, exp, b.Origin, b.Reason, b.Hits)
	case "allowlist":
		return fmt.Sprintf("would be dropped, but %s is allowlisted by %s: the allowlist wins", e.Addr, e.AllowedBy)
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
	return s
}
