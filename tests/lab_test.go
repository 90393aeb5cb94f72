package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/loader"
)

// portcullisBin is the CLI under test, built once by TestMain. Empty when
// not root: every test then skips through testnet.RequireRoot.
var portcullisBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "tests: not root, the end-to-end tests will skip (they attach XDP in network namespaces; CI runs as root)")
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "portcullis-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	portcullisBin = filepath.Join(dir, "portcullis")
	cmd := exec.Command(goTool(), "build", "-o", portcullisBin, "github.com/portcullis-mail/portcullis/cmd/portcullis")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build the portcullis CLI: %v\n", err)
		return 1
	}
	return m.Run()
}

// goTool finds the go command that runs these tests, also when PATH lacks it.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// Ports the listeners use: 25 is class mx, 587 class auth by default; 8080
// is protected by nothing.
const (
	portMX         = 25
	portSubmission = 587
	portOpen       = 8080
)

// lab is a client and a server namespace joined by a veth pair, with
// listeners on 25, 587 and 8080 in the server and a pin directory of its own
// for the CLI. The XDP program goes on the server's end of the pair.
type lab struct {
	t      *testing.T
	pair   *testnet.Pair
	pinDir string
	iface  string
}

// newPinDir names a pin directory of the test's own under /sys/fs/bpf. Its
// purge is registered first so that it runs last, after the namespaces are
// gone: whatever the test left pinned is purged, even after a failure.
func newPinDir(t *testing.T, prefix string) string {
	t.Helper()
	dir := filepath.Join("/sys/fs/bpf", prefix+randomHex(t))
	t.Cleanup(func() {
		if _, err := loader.DetachAll(dir, true); err != nil && !errors.Is(err, loader.ErrNotAttached) {
			t.Errorf("purge %s: %v", dir, err)
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testnet.RequireRoot(t)
	if err := testnet.MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, pinDir: newPinDir(t, "pc-e2e-")}
	l.pair = testnet.NewPair(t)
	l.iface = l.pair.ServerLink.Name
	for _, port := range []uint16{portMX, portSubmission, portOpen} {
		l.pair.Server.Serve(t, port)
	}
	return l
}

// inEachFamily runs fn in parallel subtests, one per address family, each
// with a lab of its own with the program attached.
func inEachFamily(t *testing.T, fn func(t *testing.T, l *lab, f family)) {
	t.Parallel()
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			l := newLab(t)
			l.attach()
			fn(t, l, f)
		})
	}
}

// in returns the lab for a subtest, so that its failures are reported
// there.
func (l *lab) in(t *testing.T) *lab {
	c := *l
	c.t = t
	return &c
}

func randomHex(t testing.TB) string {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// family is one address family of the lab.
type family struct {
	name           string
	client, server func(*testnet.Pair) netip.Addr
	bits           int
}

var families = []family{
	{"ipv4", func(p *testnet.Pair) netip.Addr { return p.ClientAddr4 }, func(p *testnet.Pair) netip.Addr { return p.ServerAddr4 }, 32},
	{"ipv6", func(p *testnet.Pair) netip.Addr { return p.ClientAddr6 }, func(p *testnet.Pair) netip.Addr { return p.ServerAddr6 }, 128},
}

func (l *lab) client(f family) netip.Addr { return f.client(l.pair) }
func (l *lab) server(f family) netip.Addr { return f.server(l.pair) }

// result is one run of the CLI.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the CLI inside the server namespace with the lab's pin directory.
func (l *lab) run(args ...string) result {
	l.t.Helper()
	return l.runEnv(nil, append([]string{"--pin-dir", l.pinDir}, args...)...)
}

// runEnv runs the CLI inside the server namespace with extra environment
// and exactly the arguments given.
func (l *lab) runEnv(env []string, args ...string) result {
	l.t.Helper()
	return runCLI(l.t, l.pair.Server, env, args...)
}

// runCLI runs the portcullis binary in ns (network namespace only, so bpffs
// pins stay visible) with extra environment and exactly the arguments given.
func runCLI(t *testing.T, ns *testnet.NS, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, portcullisBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run portcullis %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// ok runs the CLI and fails the test unless it succeeds.
func (l *lab) ok(args ...string) string {
	l.t.Helper()
	r := l.run(args...)
	if r.code != 0 {
		l.t.Fatalf("portcullis %s: exit %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// okJSON runs the CLI and decodes its standard output into v.
func (l *lab) okJSON(v any, args ...string) {
	l.t.Helper()
	out := l.ok(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		l.t.Fatalf("portcullis %s: decode %q: %v", strings.Join(args, " "), out, err)
	}
}

// fails runs the CLI, expects it to fail with one line on stderr and no
// stack trace, and returns that line.
func (l *lab) fails(args ...string) string {
	l.t.Helper()
	r := l.run(args...)
	return l.oneLineError(r, args)
}

func (l *lab) oneLineError(r result, args []string) string {
	l.t.Helper()
	cmdline := "portcullis " + strings.Join(args, " ")
	if r.code == 0 {
		l.t.Fatalf("%s succeeded, want an error (stdout %q)", cmdline, r.stdout)
	}
	msg := strings.TrimSuffix(r.stderr, "\n")
	if strings.Contains(msg, "\n") || msg == "" {
		l.t.Errorf("%s: want one line on stderr, got %q", cmdline, r.stderr)
	}
	for _, bad := range []string{"goroutine ", "panic", ".go:"} {
		if strings.Contains(r.stderr, bad) {
			l.t.Errorf("%s: stderr looks like a stack trace: %q", cmdline, r.stderr)
		}
	}
	return msg
}

func (l *lab) attach(extra ...string) string {
	l.t.Helper()
	return l.ok(append([]string{"attach", "--iface", l.iface}, extra...)...)
}

// dialTimeout is how long a connect may take before its SYN counts as
// dropped. On a veth pair a handshake takes well under a millisecond, and
// the kernel's first SYN retransmission comes only after a second.
const dialTimeout = time.Second

// connects reports whether a TCP handshake from the client's address of f
// to port on the server completes (true) or times out or finds the server
// unreachable (false: dropped). A reset or any other error fails the test.
func (l *lab) connects(f family, port uint16) bool {
	l.t.Helper()
	return l.connectsWithin(f, port, dialTimeout)
}

func (l *lab) connectsWithin(f family, port uint16, timeout time.Duration) bool {
	l.t.Helper()
	return l.dial(l.client(f), netip.AddrPortFrom(l.server(f), port), timeout)
}

// dial is connectsWithin for any pair of addresses.
func (l *lab) dial(src netip.Addr, dst netip.AddrPort, timeout time.Duration) bool {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ok, err := l.pair.Client.Reaches(ctx, src, dst)
	if err != nil {
		l.t.Fatal(err)
	}
	return ok
}

// mustConnect and mustNotConnect assert one connect each.
func (l *lab) mustConnect(f family, port uint16, why string) {
	l.t.Helper()
	if !l.connects(f, port) {
		l.t.Errorf("%s: %s client could not connect to port %d", why, f.name, port)
	}
}

// reconnectWithin bounds the wait for a client to get through once nothing
// drops it any more. With IPv6 a ban of scope all also drops the source's
// neighbour solicitations, so the client's neighbour entry for the server
// may still be incomplete when the ban goes, and resolving it again takes
// up to a retransmission interval (1s) or so.
const reconnectWithin = 5 * time.Second

// mustConnectAgain asserts that the client gets through, retrying until
// reconnectWithin for neighbour discovery to recover.
func (l *lab) mustConnectAgain(f family, port uint16, why string) {
	l.t.Helper()
	deadline := time.Now().Add(reconnectWithin)
	for !l.connects(f, port) {
		if time.Now().After(deadline) {
			l.t.Errorf("%s: %s client could not connect to port %d within %s", why, f.name, port, reconnectWithin)
			return
		}
	}
}

func (l *lab) mustNotConnect(f family, port uint16, why string) {
	l.t.Helper()
	if l.connects(f, port) {
		l.t.Errorf("%s: %s client connected to port %d", why, f.name, port)
	}
}

// xdpProgID is the XDP program netlink reports on the server's interface,
// 0 for none.
func (l *lab) xdpProgID() uint32 {
	l.t.Helper()
	var id uint32
	err := l.pair.Server.Do(func() error {
		nl, err := netlink.LinkByName(l.iface)
		if err != nil {
			return err
		}
		if x := nl.Attrs().Xdp; x != nil && x.Attached {
			id = x.ProgId
		}
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
	return id
}

// The parts of the CLI's JSON the tests read.
type (
	banJSON struct {
		Prefix  string  `json:"prefix"`
		Scope   string  `json:"scope"`
		Reason  string  `json:"reason"`
		Expires *string `json:"expires"`
		Hits    uint64  `json:"hits"`
	}
	statsJSON struct {
		Passed      uint64 `json:"passed"`
		Allowlisted uint64 `json:"allowlisted"`
		DroppedBan  uint64 `json:"dropped_ban"`
		DroppedRate uint64 `json:"dropped_rate"`
		SynSeen     uint64 `json:"syn_seen"`
		Malformed   uint64 `json:"malformed"`
	}
	sourceJSON struct {
		Source  string `json:"source"`
		SynAuth uint64 `json:"syn_auth"`
		Dropped uint64 `json:"dropped_rate"`
	}
	statusJSON struct {
		Program struct {
			ProgramID uint32 `json:"program_id"`
		} `json:"program"`
		Attached []loader.Attachment `json:"attached"`
	}
	explainJSON struct {
		Action string  `json:"action"`
		Rule   string  `json:"rule"`
		Class  string  `json:"class"`
		Tokens *uint32 `json:"tokens"`
	}
)

func (l *lab) bans() []banJSON {
	l.t.Helper()
	var out []banJSON
	l.okJSON(&out, "bans", "--json")
	return out
}

func (l *lab) stats() statsJSON {
	l.t.Helper()
	var out statsJSON
	l.okJSON(&out, "stats", "--json")
	return out
}

func (l *lab) status() statusJSON {
	l.t.Helper()
	var out statusJSON
	l.okJSON(&out, "status", "--json")
	return out
}

func (l *lab) explain(addr netip.Addr, port uint16) explainJSON {
	l.t.Helper()
	var out explainJSON
	l.okJSON(&out, "explain", addr.String(), "--port", fmt.Sprint(port), "--json")
	return out
}

// pinIncompatibleBans replaces the lab's pinned bans map with one whose
// records are smaller, as an older build could have left it, and returns
// its id.
func (l *lab) pinIncompatibleBans() ebpf.MapID {
	l.t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: bpf.MapBans, Type: ebpf.Hash, KeySize: 16, ValueSize: 64, MaxEntries: 128, Flags: 1 /* BPF_F_NO_PREALLOC */})
	if err != nil {
		l.t.Fatal(err)
	}
	defer m.Close()
	pin := filepath.Join(l.pinDir, bpf.MapBans)
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		l.t.Fatal(err)
	}
	if err := m.Pin(pin); err != nil {
		l.t.Fatal(err)
	}
	info, err := m.Info()
	if err != nil {
		l.t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// pinnedMapID is the id of the map pinned as name in the lab's pin
// directory.
func (l *lab) pinnedMapID(name string) ebpf.MapID {
	l.t.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(l.pinDir, name), nil)
	if err != nil {
		l.t.Fatalf("open pinned map %s: %v", name, err)
	}
	defer m.Close()
	info, err := m.Info()
	if err != nil {
		l.t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}
