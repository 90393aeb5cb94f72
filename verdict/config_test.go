package verdict

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

func TestValidateListsEveryProblem(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // each must appear; nil: valid
	}{
		{name: "defaults are valid", change: func(*Config) {}},
		{name: "threshold of one is valid", change: func(c *Config) { c.Threshold = 1 }},
		{name: "zero config", change: func(c *Config) { *c = Config{} }, want: []string{
			"threshold: must be 1 to 255, is 0", "window: must be positive", "weights: no kind of event counts",
			"ban_time: must be positive", "factor: must be a finite number of at least 1", "recidive_bans", "recidive_window",
			"recidive_ban_time", "squad_sources", "squad_window", "squad_ban_time", "squad_bits_v4",
			"source_bits_v6", "squad_bits_v6", "max_sources",
		}},
		{name: "threshold too large for the ring", change: func(c *Config) { c.Threshold = 256 }, want: []string{"threshold: must be 1 to 255, is 256"}},
		{name: "success and negative weights", change: func(c *Config) {
			c.Weights[logs.KindAuthSuccess] = 1
			c.Weights[logs.KindDNSBL] = -1
		}, want: []string{"weights.auth_success: a successful login must not count", "weights.dnsbl: must be 0 to 255, is -1"}},
		{name: "a kind newer than the engine may be weighed", change: func(c *Config) { c.Weights["invalid_user"] = 1 }},
		{name: "scope mail without its services", change: func(c *Config) {
			c.Scope = ScopeMail
			c.MailServices = nil
		}, want: []string{"mail_services: scope mail needs"}},
		{name: "ceiling below the first ban", change: func(c *Config) { c.MaxBanTime = time.Minute }, want: []string{"max_ban_time: must be at least ban_time (1h0m0s), is 1m0s"}},
		{name: "squad as wide as a source", change: func(c *Config) { c.SquadBitsV6 = 64 }, want: []string{"squad_bits_v6: must be 16 to source_bits_v6-1 (63), is 64"}},
		{name: "unknown scope", change: func(c *Config) { c.Scope = 9 }, want: []string{"scope: unknown scope scope(9)"}},
		{name: "factor not a number", change: func(c *Config) { c.Factor = math.NaN() }, want: []string{"factor: must be a finite number of at least 1, is NaN"}},
		{name: "factor infinite", change: func(c *Config) { c.Factor = math.Inf(1) }, want: []string{"factor: must be a finite number of at least 1, is +Inf"}},
		{name: "negative history", change: func(c *Config) { c.HistoryTTL = -time.Hour }, want: []string{"history_ttl: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v\nmissing %q", err, w)
				}
			}
			if got := len(strings.Split(err.Error(), "\n")); got != len(tt.want) {
				t.Errorf("Validate() gave %d problems; want %d:\n%v", got, len(tt.want), err)
			}
		})
	}
}

func TestParseScope(t *testing.T) {
	for _, s := range []Scope{ScopeAll, ScopeMail} {
		if got, err := ParseScope(s.String()); err != nil || got != s {
			t.Errorf("ParseScope(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseScope("some"); err == nil {
		t.Error("ParseScope(some) succeeded")
	}
}
