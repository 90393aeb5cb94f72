package bpf_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/maps"
)

// XDP actions as the program returns them.
const (
	xdpDrop uint32 = 1
	xdpPass uint32 = 2
)

func actionName(a uint32) string {
	switch a {
	case xdpDrop:
		return "drop"
	case xdpPass:
		return "pass"
	}
	return fmt.Sprintf("action(%d)", a)
}

// datapath is a freshly loaded datapath pinned in a directory of its own.
type datapath struct {
	*loader.Datapath
	tb testing.TB
}

// loadDatapath loads the datapath into a pin directory unique to this test
// and purges it when the test ends. sources sizes the LRU of tracked sources
// (preallocated by the kernel); 0 keeps the production default.
func loadDatapath(tb testing.TB, sources uint32) *datapath {
	tb.Helper()
	testnet.RequireRoot(tb)
	if err := testnet.MountBPFFS(); err != nil {
		tb.Fatal(err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	dir := filepath.Join("/sys/fs/bpf", "pc-test-"+hex.EncodeToString(suffix))
	tb.Cleanup(func() {
		if _, err := loader.DetachAll(dir, true); err != nil && !errors.Is(err, loader.ErrNotAttached) {
			tb.Errorf("purge %s: %v", dir, err)
		}
	})
	d, err := loader.Load(loader.Options{
		PinDir:   dir,
		Capacity: loader.Capacity{Sources: sources},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatalf("load datapath: %v", err)
	}
	tb.Cleanup(func() { d.Close() })
	return &datapath{Datapath: d, tb: tb}
}

// run passes one frame through the program and returns its action.
func (d *datapath) run(frame []byte) uint32 {
	d.tb.Helper()
	ret, err := d.Program().Run(&ebpf.RunOptions{Data: frame, Repeat: 1})
	if err != nil {
		d.tb.Fatalf("run program on %d-byte frame: %v", len(frame), err)
	}
	return ret
}

func (d *datapath) counters() maps.Counters {
	d.tb.Helper()
	c, err := d.Maps.Counters()
	if err != nil {
		d.tb.Fatal(err)
	}
	return c
}

// verdict runs one frame and returns the action and how the counters moved.
func (d *datapath) verdict(frame []byte) (uint32, maps.Counters) {
	d.tb.Helper()
	before := d.counters()
	action := d.run(frame)
	return action, sub(d.counters(), before)
}

// expect runs one frame and fails the test unless the action and the
// counter movement are exactly as wanted.
func (d *datapath) expect(what string, frame []byte, action uint32, moved maps.Counters) {
	d.tb.Helper()
	got, delta := d.verdict(frame)
	if got != action {
		d.tb.Errorf("%s: action %s, want %s", what, actionName(got), actionName(action))
	}
	if delta != moved {
		d.tb.Errorf("%s: counters moved %+v, want %+v", what, delta, moved)
	}
}

func sub(a, b maps.Counters) maps.Counters {
	return maps.Counters{
		Passed:      a.Passed - b.Passed,
		Allowlisted: a.Allowlisted - b.Allowlisted,
		DroppedBan:  a.DroppedBan - b.DroppedBan,
		DroppedRate: a.DroppedRate - b.DroppedRate,
		DroppedGeo:  a.DroppedGeo - b.DroppedGeo,
		SynMX:       a.SynMX - b.SynMX,
		SynAuth:     a.SynAuth - b.SynAuth,
		Malformed:   a.Malformed - b.Malformed,
		NonIP:       a.NonIP - b.NonIP,
		TrackFull:   a.TrackFull - b.TrackFull,
	}
}

func (d *datapath) ban(b maps.Ban) {
	d.tb.Helper()
	if err := d.Maps.AddBan(b); err != nil {
		d.tb.Fatalf("ban %s: %v", b.Prefix, err)
	}
}

func (d *datapath) allow(p netip.Prefix) {
	d.tb.Helper()
	if err := d.Maps.Allow(p); err != nil {
		d.tb.Fatalf("allow %s: %v", p, err)
	}
}

func (d *datapath) rateLimit(c maps.Class, perMinute, burst uint32) {
	d.tb.Helper()
	if err := d.Maps.SetRateLimit(c, maps.RateLimit{PerMinute: perMinute, Burst: burst}); err != nil {
		d.tb.Fatal(err)
	}
}

// noRateLimits turns both classes' rate limits off, for tests about
// something else that send many SYNs from one source.
func (d *datapath) noRateLimits() {
	d.tb.Helper()
	for _, c := range maps.Classes() {
		d.rateLimit(c, 0, 0)
	}
}

func (d *datapath) lookupBan(p netip.Prefix) maps.Ban {
	d.tb.Helper()
	b, err := d.Maps.LookupBan(p)
	if err != nil {
		d.tb.Fatal(err)
	}
	return b
}

func (d *datapath) explain(a netip.Addr, port uint16) loader.Explanation {
	d.tb.Helper()
	e, err := d.Explain(a, port)
	if err != nil {
		d.tb.Fatalf("explain %s port %d: %v", a, port, err)
	}
	return e
}

// pinned opens one of the datapath's pinned maps directly, for state the
// maps package does not show raw (config flags, per-CPU counters).
func (d *datapath) pinned(name string) *ebpf.Map {
	d.tb.Helper()
	m, err := ebpf.LoadPinnedMap(filepath.Join(d.PinDir(), name), nil)
	if err != nil {
		d.tb.Fatalf("open pinned map %s: %v", name, err)
	}
	d.tb.Cleanup(func() { m.Close() })
	return m
}

func (d *datapath) config(idx uint32) uint64 {
	d.tb.Helper()
	var v uint64
	if err := d.pinned(bpf.MapConfig).Lookup(idx, &v); err != nil {
		d.tb.Fatal(err)
	}
	return v
}

// until polls cond every step until it holds or the deadline passes, and
// reports how long it took.
func until(tb testing.TB, deadline, step time.Duration, cond func() bool) (time.Duration, bool) {
	tb.Helper()
	start := time.Now()
	for time.Since(start) < deadline {
		if cond() {
			return time.Since(start), true
		}
		time.Sleep(step)
	}
	return time.Since(start), cond()
}

var (
	dst4 = netip.MustParseAddr("198.18.0.2")
	dst6 = netip.MustParseAddr("fd00::2")
)

// syn is a SYN from src to port, to the test server of src's family.
func syn(src netip.Addr, port uint16) []byte {
	return testnet.SYN(src, dstFor(src), port).Bytes()
}

func dstFor(src netip.Addr) netip.Addr {
	if src.Is4() {
		return dst4
	}
	return dst6
}

func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func host(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, a.BitLen())
}
