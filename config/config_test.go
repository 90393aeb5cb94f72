package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultFileIsTheDefaults(t *testing.T) {
	cfg, err := Parse(DefaultTOML, "default.toml")
	if err != nil {
		t.Fatalf("the default file does not parse:\n%v", err)
	}
	if want := Default(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("the default file parses to\n%+v\nDefault() is\n%+v", cfg, want)
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("the defaults do not validate:\n%v", err)
	}
}

// TestDefaultFileNamesEveryKey holds the default file to being the full
// configuration: every key of Config is written out (and so documented).
func TestDefaultFileNamesEveryKey(t *testing.T) {
	lines := keyLines(DefaultTOML)
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := prefix + f.Tag.Get("toml")
			if lines[key] == 0 {
				t.Errorf("the default file does not have %s", key)
			}
			if f.Type.Kind() == reflect.Struct && f.Type != prefixType {
				walk(f.Type, key+".")
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
}

func TestEmptyFileIsTheDefaults(t *testing.T) {
	cfg, err := Parse(nil, "empty.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Errorf("an empty file parses to %+v, want the defaults", cfg)
	}
}

func TestParseSetsWhatTheFileSays(t *testing.T) {
	file := `
[daemon]
interfaces = ["eth0", "eth1"]
log_format = "json"

[logs]
files = ["/var/log/mail/*.log"]
journal = true
read_from_start = true

[verdict]
threshold = 3
window = "1h30m"
escalation_factor = 2
allowlist = ["198.51.100.0/24", "2001:db8::1", "::ffff:192.0.2.7"]

[verdict.squad]
ipv6_prefix = 56

[datapath.ports]
auth = [587, 993]

[datapath.rate_limit.auth]
per_minute = 3

[store]
retention = "2w"
`
	cfg, err := Parse([]byte(file), "portcullis.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Daemon.Interfaces = []string{"eth0", "eth1"}
	want.Daemon.LogFormat = "json"
	want.Logs.Files = []string{"/var/log/mail/*.log"}
	want.Logs.Journal = JournalOn
	want.Logs.ReadFromStart = true
	want.Verdict.Threshold = 3
	want.Verdict.Window = Duration(90 * time.Minute)
	want.Verdict.EscalationFactor = 2
	want.Verdict.Allowlist = []netip.Prefix{
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("2001:db8::1/128"),
		netip.MustParsePrefix("192.0.2.7/32"),
	}
	want.Verdict.Squad.IPv6Prefix = 56
	want.Datapath.Ports.Auth = []uint16{587, 993}
	want.Datapath.RateLimit.Auth.PerMinute = 3
	want.Store.Retention = Duration(14 * 24 * time.Hour)
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestParseReportsEachProblemWithItsLine(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // every error, in order
	}{
		{
			name: "invalid duration",
			file: "[verdict]\nthreshold = 5\nwindow = \"10 min\"\n",
			want: []string{`portcullis.toml:3: verdict.window: invalid duration "10 min": unknown unit " min" (want w, d, h, m, s or ms)`},
		},
		{
			name: "duration without quotes",
			file: "[verdict]\nban = 3600\n",
			want: []string{`portcullis.toml:2: verdict.ban: want a duration in quotes such as "10m", got number 3600`},
		},
		{
			name: "unknown key with a hint",
			file: "[verdict]\nthreshhold = 5\n",
			want: []string{`portcullis.toml:2: verdict.threshhold: unknown key (did you mean "threshold"?)`},
		},
		{
			name: "a table twice",
			file: "[daemon]\nstate_dir = \"/srv\"\n\n[daemon]\n",
			want: []string{`portcullis.toml:4: daemon: table daemon already exists`},
		},
		{
			name: "unknown section",
			file: "[verdict]\nthreshold = 4\n\n[jail.postfix]\nenabled = true\n",
			want: []string{`portcullis.toml:4: jail: unknown key`},
		},
		{
			name: "unknown key in a dotted key",
			file: "verdict.squad.source = 3\n",
			want: []string{`portcullis.toml:1: verdict.squad.source: unknown key (did you mean "sources"?)`},
		},
		{
			name: "unknown key in an inline table",
			file: "[datapath]\nrate_limit.auth = { per_minute = 3,\n  brust = 5 }\n",
			want: []string{`portcullis.toml:3: datapath.rate_limit.auth.brust: unknown key (did you mean "burst"?)`},
		},
		{
			name: "type errors",
			file: "[daemon]\nlog_format = 1\ninterfaces = \"eth0\"\n[logs]\nread_from_start = \"yes\"\n[verdict]\nthreshold = \"5\"\nescalation_factor = \"4\"\n",
			want: []string{
				`portcullis.toml:2: daemon.log_format: want a string in quotes, got number 1`,
				`portcullis.toml:3: daemon.interfaces: want a list such as [...], got string "eth0"`,
				`portcullis.toml:5: logs.read_from_start: want true or false, got string "yes"`,
				`portcullis.toml:7: verdict.threshold: want a whole number, got string "5"`,
				`portcullis.toml:8: verdict.escalation_factor: want a number, got string "4"`,
			},
		},
		{
			name: "a table where a value belongs",
			file: "[store.retention]\ndays = 3\n",
			want: []string{`portcullis.toml:1: store.retention: want a duration in quotes such as "10m", got a table`},
		},
		{
			name: "numbers out of range",
			file: "[datapath.ports]\nmx = [25, 70000]\n\n[datapath.rate_limit.mx]\nburst = -1\n",
			want: []string{
				`portcullis.toml:2: datapath.ports.mx[1]: 70000 is out of range (0 to 65535)`,
				`portcullis.toml:5: datapath.rate_limit.mx.burst: -1 is out of range (0 to 4294967295)`,
			},
		},
		{
			name: "bad prefixes",
			file: "[verdict]\nallowlist = [\n  \"198.51.100.1/24\",\n  \"mail.example.org\",\n  \"10.0.0.0/33\",\n  7,\n]\n",
			want: []string{
				`portcullis.toml:2: verdict.allowlist[0]: prefix "198.51.100.1/24" has bits set after /24 (did you mean "198.51.100.0/24"?)`,
				`portcullis.toml:2: verdict.allowlist[1]: invalid address "mail.example.org"`,
				`portcullis.toml:2: verdict.allowlist[2]: invalid prefix "10.0.0.0/33"`,
				`portcullis.toml:2: verdict.allowlist[3]: want a prefix in quotes such as "192.0.2.0/24", got number 7`,
			},
		},
		{
			name: "journal",
			file: "[logs]\njournal = \"maybe\"\n",
			want: []string{`portcullis.toml:2: logs.journal: invalid value "maybe" (want "auto", true or false)`},
		},
		{
			name: "values out of range",
			file: `[daemon]
state_dir = "var/lib/portcullis"
interfaces = ["eth0", "averyveryverylongname"]
log_level = "verbose"
[logs]
files = ["/var/log/[mail.log"]
[verdict]
threshold = 0
ban = "0s"
max_ban = "30m"
escalation_factor = 0.5
[verdict.squad]
ipv6_prefix = 64
[datapath.ports]
mx = [25, 587]
[datapath.rate_limit.auth]
burst = 0
[datapath.capacity]
bans = 0
[store]
retention = "1h"
`,
			want: []string{
				`portcullis.toml:2: daemon.state_dir: want an absolute path, got "var/lib/portcullis"`,
				`portcullis.toml:3: daemon.interfaces[1]: invalid interface name "averyveryverylongname"`,
				`portcullis.toml:4: daemon.log_level: invalid value "verbose" (want "debug", "info", "warn", "error")`,
				`portcullis.toml:6: logs.files[0]: invalid glob "/var/log/[mail.log": syntax error in pattern`,
				`portcullis.toml:8: verdict.threshold: 0 is too small (at least 1)`,
				`portcullis.toml:9: verdict.ban: want a duration above zero, got 0s`,
				`portcullis.toml:11: verdict.escalation_factor: 0.5 is too small (at least 1: 1 means no escalation)`,
				`portcullis.toml:13: verdict.squad.ipv6_prefix: 64 is out of range (16 to 63)`,
				`portcullis.toml:17: datapath.rate_limit.auth.burst: 0 lets no SYN through; set per_minute = 0 to turn the limit off`,
				`portcullis.toml:19: datapath.capacity.bans: 0 is too small (at least 1)`,
				`portcullis.toml:21: store.retention: 1h is too short (at least 1d)`,
				// auth's ports are the defaults, not in the file: no line.
				`portcullis.toml: datapath.ports.auth[1]: port 587 is listed twice (also in datapath.ports.mx)`,
			},
		},
		{
			name: "a conflict with a default has no line",
			file: "[verdict]\nban = \"90d\"\n",
			want: []string{`portcullis.toml: verdict.max_ban: 30d is shorter than verdict.ban (90d)`},
		},
		{
			name: "syntax error",
			file: "[verdict]\nthreshold = 5\nwindow = 10m\n",
			want: []string{`portcullis.toml:3: strings must be quoted`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file), "portcullis.toml")
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse = %v, want Errors", err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestDurations(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		written string
		err     string
	}{
		{in: "10m", want: 10 * time.Minute, written: "10m"},
		{in: "1h30m", want: 90 * time.Minute, written: "1h30m"},
		{in: "90m", want: 90 * time.Minute, written: "1h30m"},
		{in: "7d", want: 7 * 24 * time.Hour, written: "1w"},
		{in: "30d", want: 30 * 24 * time.Hour, written: "30d"},
		{in: "1w1d", want: 8 * 24 * time.Hour, written: "8d"},
		{in: "2w", want: 14 * 24 * time.Hour, written: "2w"},
		{in: "1d12h", want: 36 * time.Hour, written: "1d12h"},
		{in: "1500ms", want: 1500 * time.Millisecond, written: "1s500ms"},
		{in: "0", want: 0, written: "0s"},
		{in: "", err: `invalid duration ""`},
		{in: "10", err: `unknown unit ""`},
		{in: "h", err: `invalid duration "h"`},
		{in: "1.5h", err: `unknown unit "."`},
		{in: "-1h", err: `invalid duration "-1h"`},
		{in: "10 min", err: `unknown unit " min"`},
		{in: "99999999999w", err: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := ParseDuration(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want an error saying %q", tt.in, d, err, tt.err)
				}
				return
			}
			if err != nil || d.Std() != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, d, err, tt.want)
			}
			if d.String() != tt.written {
				t.Errorf("%v written as %q, want %q", tt.want, d.String(), tt.written)
			}
			back, err := ParseDuration(d.String())
			if err != nil || back != d {
				t.Errorf("%q does not read back: %v, %v", d.String(), back, err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "portcullis.toml")
	if err := os.WriteFile(path, []byte("[verdict]\nwindow = \"10 min\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":2: verdict.window: ") {
		t.Errorf("Load = %v, want the error with the path and line", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want fs.ErrNotExist", err)
	}
}
