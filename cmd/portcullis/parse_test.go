package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"90s", 90 * time.Second, false},
		{"2h", 2 * time.Hour, false},
		{"7d", 7 * 24 * time.Hour, false},
		{"2w", 14 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"", 0, true},
		{"0s", 0, true},
		{"-1h", 0, true},
		{"xd", 0, true},
		{"5y", 0, true},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want uint32
		err  bool
	}{
		{"30/min", 30, false},
		{"30", 30, false},
		{"2/s", 120, false},
		{"600/h", 10, false},
		{"off", 0, false},
		{"0", 0, false},
		{"30/h", 0, true},
		{"-3/min", 0, true},
		{"3/fortnight", 0, true},
		{"lots", 0, true},
	}
	for _, tt := range tests {
		got, err := parseRate(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseRate(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	tests := map[time.Duration]string{
		59 * time.Second:                 "59s",
		2*time.Hour + 5*time.Minute + 3:  "2h5m",
		3*24*time.Hour + 4*time.Hour + 1: "3d4h",
		24*time.Hour + 30*time.Second:    "1d",
		500 * time.Millisecond:           "0s",
	}
	for d, want := range tests {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestFlagsFirst(t *testing.T) {
	app := newApp(nil, nil)
	tests := []struct {
		in, want string
	}{
		{"portcullis ban 192.0.2.7 --for 2h", "portcullis ban --for 2h 192.0.2.7"},
		{"portcullis ban 192.0.2.7 --permanent 192.0.2.8", "portcullis ban --permanent 192.0.2.7 192.0.2.8"},
		{"portcullis --pin-dir /x bans --json", "portcullis --pin-dir /x bans --json"},
		{"portcullis bans --pin-dir /x", "portcullis bans --pin-dir /x"},
		{"portcullis allow add 192.0.2.0/24 --pin-dir=/x", "portcullis allow add --pin-dir=/x 192.0.2.0/24"},
		{"portcullis explain 192.0.2.7 --port 25 --json", "portcullis explain --port 25 --json 192.0.2.7"},
		{"portcullis unban -- -weird", "portcullis unban -- -weird"},
	}
	for _, tt := range tests {
		got := strings.Join(flagsFirst(app, strings.Fields(tt.in)), " ")
		if got != tt.want {
			t.Errorf("flagsFirst(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestGlobalFlagBeforeOrAfterCommand(t *testing.T) {
	for _, args := range [][]string{
		{"portcullis", "--pin-dir", "/sys/fs/bpf/pc-nowhere-a", "bans"},
		{"portcullis", "bans", "--pin-dir", "/sys/fs/bpf/pc-nowhere-a"},
		{"portcullis", "allow", "list", "--pin-dir", "/sys/fs/bpf/pc-nowhere-a"},
	} {
		var out, errw strings.Builder
		err := run(args, &out, &errw)
		if err == nil {
			t.Fatalf("%v: want an error for a pin dir that does not exist", args)
		}
		// Not root gives the privilege error; root reaches the pin dir.
		if !strings.Contains(err.Error(), "pc-nowhere-a") && !strings.Contains(err.Error(), "needs root") {
			t.Errorf("%v: error %q does not name the pin dir", args, err)
		}
		if slices.Contains(strings.Split(oneLine(err), "\n"), "") {
			t.Errorf("error is not one line: %q", err)
		}
	}
}

// A global flag that is not given takes its default (or environment
// variable), whether the command reads it or a subcommand does.
func TestGlobalFlagDefaults(t *testing.T) {
	for _, args := range [][]string{{"portcullis", "bans"}, {"portcullis", "allow", "list"}} {
		app := newApp(nil, nil)
		var got, gotEnv string
		for _, c := range app.Commands {
			for _, cmd := range append([]*cli.Command{c}, c.Subcommands...) {
				cmd.Action = func(c *cli.Context) error {
					got = globalString(c, "socket")
					gotEnv = globalString(c, "state-dir")
					return nil
				}
			}
		}
		t.Setenv("PORTCULLIS_STATE_DIR", "/tmp/from-env")
		if err := app.Run(args); err != nil {
			t.Fatal(err)
		}
		if got != "/run/portcullis/portcullis.sock" || gotEnv != "/tmp/from-env" {
			t.Errorf("%v: socket %q, state dir %q; want the default and the environment's", args, got, gotEnv)
		}
	}
}
