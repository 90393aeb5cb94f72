package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/maps"
)

type rateJSON struct {
	PerMinute uint32 `json:"per_minute"` // 0: no limit
	Burst     uint32 `json:"burst"`
}

func toRateJSON(r maps.RateLimit) rateJSON { return rateJSON{PerMinute: r.PerMinute, Burst: r.Burst} }

func (r rateJSON) String() string {
	if r.PerMinute == 0 {
		return "no rate limit"
	}
	return fmt.Sprintf("%d SYNs/min per source, burst %d", r.PerMinute, r.Burst)
}

// parseRate reads "30/min", "2/s", "600/h", a bare number (per minute), or
// "off".
func parseRate(s string) (uint32, error) {
	if s == "off" || s == "0" {
		return 0, nil
	}
	num, unit, _ := strings.Cut(s, "/")
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("invalid rate %q (examples: 30/min, 2/s, 600/h, off)", s)
	}
	switch unit {
	case "", "min", "m":
		return uint32(n), nil
	case "s", "sec":
		if n > 1<<32/60 {
			break
		}
		return uint32(n * 60), nil
	case "h", "hour":
		if n < 60 {
			return 0, fmt.Errorf("rate %q is below 1/min, the finest the datapath keeps", s)
		}
		return uint32(n / 60), nil
	}
	return 0, fmt.Errorf("invalid rate %q (examples: 30/min, 2/s, 600/h, off)", s)
}

func ratelimitCommand() *cli.Command {
	return &cli.Command{
		Name:  "ratelimit",
		Usage: "show or set the per-source SYN rate limit of a port class",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "class", Usage: "mx or auth (default: show both)"},
			&cli.StringFlag{Name: "rate", Usage: "new rate: 30/min, 2/s, off"},
			&cli.UintFlag{Name: "burst", Usage: "new burst: SYNs a source may send at once"},
			jsonFlag(),
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			classes := maps.Classes()
			if c.IsSet("class") {
				cl, err := maps.ParseClass(c.String("class"))
				if err != nil {
					return err
				}
				classes = []maps.Class{cl}
			}
			setting := c.IsSet("rate") || c.IsSet("burst")
			if setting && !c.IsSet("class") {
				return fmt.Errorf("say which class to change: --class mx or --class auth")
			}
			var rate uint32
			if c.IsSet("rate") {
				var err error
				if rate, err = parseRate(c.String("rate")); err != nil {
					return err
				}
			}
			return withMaps(c, func(m *maps.Maps) error {
				if setting {
					cur, err := m.RateLimit(classes[0])
					if err != nil {
						return explainErr(err)
					}
					if c.IsSet("rate") {
						cur.PerMinute = rate
					}
					if c.IsSet("burst") {
						cur.Burst = uint32(c.Uint("burst"))
					}
					if cur.PerMinute > 0 && cur.Burst == 0 {
						return fmt.Errorf("a rate limit needs --burst of at least 1")
					}
					if err := m.SetRateLimit(classes[0], cur); err != nil {
						return explainErr(err)
					}
				}
				out := map[string]rateJSON{}
				for _, cl := range classes {
					r, err := m.RateLimit(cl)
					if err != nil {
						return explainErr(err)
					}
					out[cl.String()] = toRateJSON(r)
				}
				if c.Bool("json") {
					return writeJSON(c.App.Writer, out)
				}
				for _, cl := range classes {
					fmt.Fprintf(c.App.Writer, "%s: %s\n", cl, out[cl.String()])
				}
				return nil
			})
		},
	}
}
