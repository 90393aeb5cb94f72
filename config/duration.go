package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a length of time written as in the config file: a number and
// a unit, or several, such as "90s", "10m", "1h30m", "7d" or "2w". Days and
// weeks are 24 and 168 hours (bans and retention are counted in them; a
// daylight-saving change does not make a ban an hour shorter).
type Duration time.Duration

// durationUnits are the units a Duration may use, largest first (String
// writes them in this order).
var durationUnits = []struct {
	name string
	d    time.Duration
}{
	{"w", 7 * 24 * time.Hour},
	{"d", 24 * time.Hour},
	{"h", time.Hour},
	{"m", time.Minute},
	{"s", time.Second},
	{"ms", time.Millisecond},
}

// ParseDuration reads a Duration: one or more number-and-unit pairs with
// units w, d, h, m, s and ms, e.g. "1d12h". "0" alone is zero.
func ParseDuration(s string) (Duration, error) {
	in := s
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, fmt.Errorf("invalid duration %q (want e.g. 90s, 10m, 1h, 7d or 2w)", in)
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("invalid duration %q (want e.g. 90s, 10m, 1h, 7d or 2w)", in)
		}
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: %w", in, err)
		}
		s = s[i:]
		j := 0
		for j < len(s) && (s[j] < '0' || s[j] > '9') {
			j++
		}
		unit := s[:j]
		s = s[j:]
		var d time.Duration
		for _, u := range durationUnits {
			if u.name == unit {
				d = u.d
			}
		}
		if d == 0 {
			return 0, fmt.Errorf("invalid duration %q: unknown unit %q (want w, d, h, m, s or ms)", in, unit)
		}
		if n > int64((1<<63-1)/d) || total+time.Duration(n)*d < total {
			return 0, fmt.Errorf("invalid duration %q: too long", in)
		}
		total += time.Duration(n) * d
	}
	return Duration(total), nil
}

// String writes d the way ParseDuration reads it, with the largest units
// first: "1w", "36h" is "1d12h".
func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	rest := time.Duration(d)
	if rest < 0 {
		// Never valid in a config; written so that it is visible.
		b.WriteByte('-')
		rest = -rest
	}
	for _, u := range durationUnits {
		// Weeks only when they are whole: "30d" reads better than "4w2d".
		if u.name == "w" && rest%u.d != 0 {
			continue
		}
		if n := rest / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			rest -= n * u.d
		}
	}
	if rest > 0 {
		fmt.Fprintf(&b, "%dns", rest)
	}
	return b.String()
}

// Std is d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// MarshalText writes d as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads d as ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func (d *Duration) decodeTOML(v any) error {
	s, ok := v.(string)
	if !ok {
		return fmt.Errorf("want a duration in quotes such as \"10m\", got %s", describe(v))
	}
	return d.UnmarshalText([]byte(s))
}
