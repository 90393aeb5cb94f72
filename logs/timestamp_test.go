package logs

import (
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no zoneinfo: %v", err)
	}
	jan2 := time.Date(2027, 1, 2, 10, 0, 0, 0, time.UTC)
	dec5 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	leap := time.Date(2029, 1, 15, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		now  time.Time
		loc  *time.Location
		in   string
		want time.Time
		rest string
	}{
		{"rfc3164 space-padded", dec5, time.UTC, "Dec  4 19:40:01 host x", time.Date(2026, 12, 4, 19, 40, 1, 0, time.UTC), "host x"},
		{"rfc3164 zero-padded", dec5, time.UTC, "Dec 04 19:40:01 imap-login: x", time.Date(2026, 12, 4, 19, 40, 1, 0, time.UTC), "imap-login: x"},
		{"rfc3164 squeezed", dec5, time.UTC, "Dec 4 19:40:01 host x", time.Date(2026, 12, 4, 19, 40, 1, 0, time.UTC), "host x"},
		{"december line read in january is last year", jan2, time.UTC, "Dec 31 23:59:59 host x", time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), "host x"},
		{"january line read in january", jan2, time.UTC, "Jan  2 09:00:00 host x", time.Date(2027, 1, 2, 9, 0, 0, 0, time.UTC), "host x"},
		{"a few hours ahead (clock skew) stays this year", jan2, time.UTC, "Jan  2 20:00:00 host x", time.Date(2027, 1, 2, 20, 0, 0, 0, time.UTC), "host x"},
		{"feb 29 goes back to a leap year", leap, time.UTC, "Feb 29 12:00:00 host x", time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC), "host x"},
		{"rfc3164 in the given zone", dec5, berlin, "Dec  4 19:40:01 host x", time.Date(2026, 12, 4, 18, 40, 1, 0, time.UTC), "host x"},
		{"rfc3164 with fraction", dec5, time.UTC, "Dec 04 19:40:01.250 x", time.Date(2026, 12, 4, 19, 40, 1, 250e6, time.UTC), "x"},
		{"rfc3339 rsyslog high precision", dec5, berlin, "2026-12-04T19:40:01.123456+01:00 host x", time.Date(2026, 12, 4, 18, 40, 1, 123456000, time.UTC), "host x"},
		{"rfc3339 utc", dec5, berlin, "2026-12-04T19:40:01Z host x", time.Date(2026, 12, 4, 19, 40, 1, 0, time.UTC), "host x"},
		{"rfc3339 negative offset", dec5, time.UTC, "2026-12-04T19:40:01.5-05:30 x", time.Date(2026, 12, 5, 1, 10, 1, 5e8, time.UTC), "x"},
		{"iso space no zone (exim, dovecot)", dec5, berlin, "2013-06-12 03:57:58 login x", time.Date(2013, 6, 12, 1, 57, 58, 0, time.UTC), "login x"},
		{"exim log_timezone", dec5, time.UTC, "2013-06-12 03:57:58 +0100 login x", time.Date(2013, 6, 12, 2, 57, 58, 0, time.UTC), "login x"},
		{"tai64n", dec5, berlin, "@400000004c91b044077a9e94 imap-login: x", time.Unix(0x4c91b044-10, 0x077a9e94).UTC(), "imap-login: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := clock{now: func() time.Time { return tt.now }, loc: tt.loc}
			got, rest, ok := c.parseTimestamp([]byte(tt.in))
			if !ok || !got.Equal(tt.want) || string(rest) != tt.rest {
				t.Errorf("got %v %q %v, want %v %q", got, rest, ok, tt.want, tt.rest)
			}
		})
	}
	bad := []string{"", "Dex 04 19:40:01 x", "Dec 32 19:40:01 x", "Dec 04 24:00:00 x", "Dec 04 19:40 x", "2026-13-04T19:40:01Z x",
		"2026-12-04T19:40:01+25:00x", "@4000000zzzzzzzzzzzzzzzzz x", "@40000000", "Dec 04 19:40:01x", "2026-02-30 10:00:00 x"}
	c := clock{now: func() time.Time { return dec5 }, loc: time.UTC}
	for _, in := range bad {
		if got, _, ok := c.parseTimestamp([]byte(in)); ok {
			t.Errorf("%q: parsed as %v, want refused", in, got)
		}
	}
}
