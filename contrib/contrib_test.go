// Package contrib holds files installed beside the binary (the systemd
// unit); its tests check them and `make install`.
package contrib

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-mail/portcullis/config"
)

const unitPath = "systemd/portcullis.service"

// unit is a unit file's settings: section, then key, then every value the
// key was given (a key may repeat).
type unit map[string]map[string][]string

// parseUnit reads the subset of systemd's unit syntax the file uses:
// sections, Key=Value lines, comments. A line ending in a backslash would
// continue; the unit has none, and the parser refuses one rather than
// misread it.
func parseUnit(t *testing.T, data []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasSuffix(line, `\`):
			t.Fatalf("line %d: continuation lines are not parsed here", n)
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("line %d: %q is neither a section nor Key=Value in one", n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUnitSettings(t *testing.T) {
	data, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	u := parseUnit(t, data)
	tests := []struct {
		section, key, want string
	}{
		{"Service", "Type", "notify"},
		{"Service", "NotifyAccess", "main"},
		{"Service", "ExecStart", "/usr/local/sbin/portcullis run"},
		{"Service", "ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Service", "Restart", "always"},
		{"Service", "RestartSec", "2"},
		{"Service", "WatchdogSec", "30"},
		{"Service", "KillSignal", "SIGTERM"},
		{"Service", "CapabilityBoundingSet", "CAP_BPF CAP_NET_ADMIN CAP_SYS_ADMIN CAP_PERFMON CAP_SYS_RESOURCE CAP_DAC_READ_SEARCH"},
		{"Service", "ReadWritePaths", "/var/lib/portcullis /run/portcullis /sys/fs/bpf"},
		{"Service", "RuntimeDirectory", "portcullis"},
		{"Service", "RuntimeDirectoryMode", "0700"},
		{"Service", "StateDirectory", "portcullis"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "NoNewPrivileges", "yes"},
		// Restart=always must not give up after five quick failures.
		{"Unit", "StartLimitIntervalSec", "0"},
		{"Install", "WantedBy", "multi-user.target"},
	}
	for _, tt := range tests {
		got := u[tt.section][tt.key]
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("[%s] %s = %q, want exactly %q", tt.section, tt.key, got, tt.want)
		}
	}
	// The directories the daemon writes must be the defaults it uses, or
	// ProtectSystem=strict makes them read-only under it.
	def := config.Default().Daemon
	rw := strings.Fields(u["Service"]["ReadWritePaths"][0])
	for _, dir := range []string{def.StateDir, filepath.Dir(def.Socket), filepath.Dir(def.PinDir)} {
		if !slices.Contains(rw, dir) {
			t.Errorf("ReadWritePaths %q lacks %s, which the default config writes", rw, dir)
		}
	}
	if "/var/lib/"+u["Service"]["StateDirectory"][0] != def.StateDir {
		t.Errorf("StateDirectory=%s is not the default state_dir %s", u["Service"]["StateDirectory"][0], def.StateDir)
	}
	if "/run/"+u["Service"]["RuntimeDirectory"][0] != filepath.Dir(def.Socket) {
		t.Errorf("RuntimeDirectory=%s does not hold the default socket %s", u["Service"]["RuntimeDirectory"][0], def.Socket)
	}
	// Stopping leaves enforcement on: the file must say so, and how to
	// stop it.
	if !bytes.Contains(data, []byte("portcullis detach --all")) {
		t.Error("the unit does not say that `portcullis detach --all` stops enforcement")
	}
}

// needTool skips when a program the test runs is missing; CI installs it.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install %s)", name, pkg)
	}
	return p
}

// makeInstall runs `make install` from the repository's root with the
// given variables, building into a temporary directory rather than bin/.
func makeInstall(t *testing.T, bin string, vars ...string) string {
	t.Helper()
	args := append([]string{"-C", "..", "install", "BIN=" + bin}, vars...)
	out, err := exec.CommandContext(t.Context(), needTool(t, "make", "make"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %#o, want %#o", path, got, want)
	}
}

func TestMakeInstall(t *testing.T) {
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "root")
	bin := filepath.Join(tmp, "build", "portcullis")
	makeInstall(t, bin, "DESTDIR="+dest)

	sbin := filepath.Join(dest, "usr/local/sbin/portcullis")
	conf := filepath.Join(dest, "etc/portcullis/portcullis.toml")
	unitFile := filepath.Join(dest, "etc/systemd/system/portcullis.service")
	checkMode(t, sbin, 0o755)
	checkMode(t, conf, 0o600)
	checkMode(t, unitFile, 0o644)

	// The installed binary runs, and the config is what it prints.
	printed, err := exec.CommandContext(t.Context(), sbin, "config", "default").Output()
	if err != nil {
		t.Fatalf("installed binary: %v", err)
	}
	got, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, printed) || !bytes.Equal(got, config.DefaultTOML) {
		t.Errorf("installed config is not `portcullis config default`")
	}
	installed, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(installed, src) {
		t.Errorf("with the default prefix the installed unit differs from %s", unitPath)
	}

	// An admin edits the config; the next install keeps it.
	edited := append(got, []byte("\n# edited by the admin\n")...)
	if err := os.WriteFile(conf, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(conf, 0o640); err != nil {
		t.Fatal(err)
	}
	out := makeInstall(t, bin, "DESTDIR="+dest)
	if after, err := os.ReadFile(conf); err != nil || !bytes.Equal(after, edited) {
		t.Errorf("a second install changed the edited config (read error %v)", err)
	}
	checkMode(t, conf, 0o640)
	if !strings.Contains(out, "kept "+conf) {
		t.Errorf("the second install does not say it kept the config:\n%s", out)
	}
	err = filepath.WalkDir(dest, func(path string, _ fs.DirEntry, err error) error {
		if strings.HasSuffix(path, ".tmp") {
			t.Errorf("temporary file left behind: %s", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMakeInstallHonoursPrefixAndUnitDir(t *testing.T) {
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "root")
	makeInstall(t, filepath.Join(tmp, "build", "portcullis"), "DESTDIR="+dest, "PREFIX=/usr", "UNITDIR=/lib/systemd/system")

	checkMode(t, filepath.Join(dest, "usr/sbin/portcullis"), 0o755)
	data, err := os.ReadFile(filepath.Join(dest, "lib/systemd/system/portcullis.service"))
	if err != nil {
		t.Fatal(err)
	}
	if got := parseUnit(t, data)["Service"]["ExecStart"]; len(got) != 1 || got[0] != "/usr/sbin/portcullis run" {
		t.Errorf("ExecStart = %q, want the binary under PREFIX=/usr", got)
	}
	if _, err := os.Stat(filepath.Join(dest, "usr/local")); err == nil {
		t.Error("PREFIX=/usr still wrote under /usr/local")
	}
}

// TestUnitVerifies runs systemd's own checker on the unit as installed. It
// needs no running systemd. It prints problems as warnings and still exits
// 0 for some (an unknown key, a bad time value), so any output fails.
func TestUnitVerifies(t *testing.T) {
	analyze := needTool(t, "systemd-analyze", "systemd")
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "root")
	makeInstall(t, filepath.Join(tmp, "build", "portcullis"), "DESTDIR="+dest)
	data, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/portcullis.service"))
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart is executable on this machine, so it
	// points at the staged binary; the rest is the installed file.
	sbin := filepath.Join(dest, "usr/local/sbin/portcullis")
	data = bytes.Replace(data, []byte("ExecStart=/usr/local/sbin/portcullis "), []byte("ExecStart="+sbin+" "), 1)
	unitFile := filepath.Join(tmp, "portcullis.service")
	if err := os.WriteFile(unitFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	verify := func(path string) (string, error) {
		out, err := exec.CommandContext(t.Context(), analyze, "verify", path).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(unitFile); err != nil || out != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The check itself catches a mistake: a misspelt key.
	broken := filepath.Join(tmp, "broken.service")
	if err := os.WriteFile(broken, bytes.Replace(data, []byte("WatchdogSec=30"), []byte("WatchdogSecs=30"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(broken); err == nil && out == "" {
		t.Error("systemd-analyze verify accepted a unit with an unknown key")
	}
}

// TestHealthUnitsVerify checks the health check's units as installed, with
// systemd-analyze, and the timing the 2-minute alert bound counts on.
func TestHealthUnitsVerify(t *testing.T) {
	analyze := needTool(t, "systemd-analyze", "systemd")
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "root")
	makeInstall(t, filepath.Join(tmp, "build", "portcullis"), "DESTDIR="+dest)
	sbin := filepath.Join(dest, "usr/local/sbin/portcullis")
	units := filepath.Join(tmp, "units")
	if err := os.Mkdir(units, 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, name := range []string{"portcullis.service", "portcullis-health.service", "portcullis-health.timer", "portcullis-health-failed.service"} {
		data, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system", name))
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.Replace(data, []byte("ExecStart=/usr/local/sbin/portcullis "), []byte("ExecStart="+sbin+" "), 1)
		p := filepath.Join(units, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.CommandContext(t.Context(), analyze, append([]string{"verify"}, paths...)...).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	timer := parseUnit(t, mustRead(t, filepath.Join(units, "portcullis-health.timer")))
	if first(timer["Timer"]["OnUnitActiveSec"]) != "1min" || first(timer["Timer"]["AccuracySec"]) != "1s" {
		t.Errorf("timer %v, want every minute with 1s accuracy", timer["Timer"])
	}
	health := parseUnit(t, mustRead(t, filepath.Join(units, "portcullis-health.service")))
	if got := first(health["Service"]["ExecStart"]); !strings.HasSuffix(got, "portcullis health --alert") {
		t.Errorf("health ExecStart %q", got)
	}
	if first(health["Unit"]["OnFailure"]) != "portcullis-health-failed.service" {
		t.Errorf("health OnFailure %q", first(health["Unit"]["OnFailure"]))
	}
	daemon := parseUnit(t, mustRead(t, filepath.Join(units, "portcullis.service")))
	if first(daemon["Unit"]["OnFailure"]) != "portcullis-health.service" {
		t.Errorf("daemon OnFailure %q, want the health check at once", first(daemon["Unit"]["OnFailure"]))
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}
