package loader_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/loader"
)

// smallCapacity keeps each test's maps small: the default sources map is a
// preallocated LRU of a million entries, and `go test ./...` loads many
// datapaths at once.
var smallCapacity = loader.Capacity{Bans: 1024, PrefixBans: 256, Allowlist: 64, Sources: 1024}

// newPinDir returns a pin directory unique to the test (it does not exist
// yet) and purges whatever the test left in it when the test ends.
func newPinDir(t *testing.T) string {
	t.Helper()
	testnet.RequireRoot(t)
	if err := testnet.MountBPFFS(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("/sys/fs/bpf", "pc-lt-"+randomHex(t, 5))
	t.Cleanup(func() {
		if _, err := loader.DetachAll(dir, true); err != nil && !errors.Is(err, loader.ErrNotAttached) {
			t.Errorf("purge %s: %v", dir, err)
		}
		// Belt and braces: a purge that failed must not leave pins behind
		// for the next run.
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
		tmps, _ := filepath.Glob(dir + "_tmp_*")
		for _, tmp := range tmps {
			t.Errorf("temporary pin directory %s left behind", tmp)
			_ = os.RemoveAll(tmp)
		}
	})
	return dir
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// load loads the datapath in dir and closes it when the test ends.
func load(t testing.TB, dir string, c loader.Capacity) *loader.Datapath {
	t.Helper()
	d, err := loader.Load(loader.Options{PinDir: dir, Capacity: c, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close datapath: %v", err)
		}
	})
	return d
}

// attach attaches d to iface from inside ns, where netlink finds iface.
func attach(t testing.TB, ns *testnet.NS, d *loader.Datapath, iface string, mode loader.Mode) (loader.Attachment, bool) {
	t.Helper()
	var (
		a       loader.Attachment
		created bool
	)
	err := ns.Do(func() error {
		var err error
		a, created, err = d.Attach(iface, mode)
		return err
	})
	if err != nil {
		t.Fatalf("attach %s: %v", iface, err)
	}
	return a, created
}

// attachments lists the attachments as seen from inside ns.
func attachments(t testing.TB, ns *testnet.NS, dir string) []loader.Attachment {
	t.Helper()
	var out []loader.Attachment
	err := ns.Do(func() error {
		var err error
		out, err = loader.Attachments(dir)
		return err
	})
	if err != nil {
		t.Fatalf("list attachments: %v", err)
	}
	return out
}

// dialTimeout is how long a connect may take before its SYN counts as
// dropped; on a veth pair a handshake takes well under a millisecond.
const dialTimeout = time.Second

// connects reports whether a TCP handshake from client to dst completes
// (true) or times out or finds the server unreachable (false: dropped). Any
// other outcome, such as a reset, fails the test: it would mean the packet
// was not dropped.
func connects(t testing.TB, client *testnet.NS, dst netip.AddrPort) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	ok, err := client.Reaches(ctx, netip.Addr{}, dst)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
