// Package loader loads the XDP program, pins it and its maps, attaches it to
// interfaces and upgrades it in place.
//
// State lives in a pin directory on bpffs (default /sys/fs/bpf/portcullis):
// the maps, the program, and one link per interface under links/. Because
// the links and maps are pinned, enforcement continues with no userspace
// process running. A new pin directory is built under a temporary name and
// renamed into place, so no process ever sees a half-loaded one; every change
// to an existing one happens under an exclusive lock on it.
package loader

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/maps"
)

// DefaultPinDir is where the datapath is pinned unless told otherwise.
const DefaultPinDir = "/sys/fs/bpf/portcullis"

// ErrIncompatible means the pinned maps were made by a build whose map
// layout differs from this one.
// It is maps.ErrIncompatible, which commands that only open the maps return.
var ErrIncompatible = maps.ErrIncompatible

// Capacity sets map sizes when the maps are created. Zero keeps the pinned
// size (or the default for new maps).
type Capacity struct {
	Bans       uint32 // exact bans, IPv4 and IPv6 each
	PrefixBans uint32 // IPv4 and IPv6 each
	Allowlist  uint32
	Sources    uint32 // tracked sources for rate limits and top
}

// Options configure Load.
type Options struct {
	PinDir   string // default DefaultPinDir
	Capacity Capacity
	Logger   *slog.Logger // default slog.Default()
}

// Datapath is a loaded and pinned program with its maps.
type Datapath struct {
	pinDir string
	log    *slog.Logger
	prog   *ebpf.Program
	Maps   *maps.Maps
}

func (o *Options) defaults() {
	if o.PinDir == "" {
		o.PinDir = DefaultPinDir
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

const progPin = "portcullis"

// Load returns the pinned datapath, creating it if there is none and
// upgrading the pinned program in place when this build's differs. It never
// resets a map: a layout this build cannot use is ErrIncompatible.
func Load(opts Options) (*Datapath, error) {
	opts.defaults()
	if err := ensureBPFFS(opts.PinDir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(opts.PinDir); errors.Is(err, os.ErrNotExist) {
		if err := create(opts); err != nil {
			return nil, err
		}
	}
	l, err := lockDir(opts.PinDir)
	if err != nil {
		return nil, fmt.Errorf("open pin directory: %w", err)
	}
	defer l.unlock()
	return open(opts)
}

// create builds a complete pin directory under a temporary name (bpffs
// allows no dots in names, hence the underscores) and renames
// it into place. Losing the race to another creator is fine: its directory
// is used instead.
func create(opts Options) error {
	tmp := fmt.Sprintf("%s_tmp_%s", opts.PinDir, randomSuffix())
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create pin directory: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	coll, err := newCollection(tmp, opts.Capacity, true)
	if err != nil {
		return err
	}
	defer coll.Close()
	m, err := maps.FromCollection(coll)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.SetDefaults(); err != nil {
		return fmt.Errorf("set defaults: %w", err)
	}
	if err := coll.Programs[bpf.ProgramName].Pin(filepath.Join(tmp, progPin)); err != nil {
		return fmt.Errorf("pin program: %w", err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "links"), 0o700); err != nil {
		return fmt.Errorf("create links directory: %w", err)
	}
	if err := os.Rename(tmp, opts.PinDir); err != nil {
		if errors.Is(err, os.ErrExist) || errors.Is(err, unix.ENOTEMPTY) {
			return nil
		}
		return fmt.Errorf("move pin directory into place: %w", err)
	}
	opts.Logger.Info("created datapath", "pin_dir", opts.PinDir)
	return nil
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand never fails on Linux
	return hex.EncodeToString(b)
}

// newCollection loads the program with maps pinned by name in dir, reusing
// pinned maps that are there. Capacities apply to new maps; for pinned ones
// an explicit capacity that differs is an error, since changing it would
// mean dropping every entry.
func newCollection(dir string, c Capacity, fresh bool) (*ebpf.Collection, error) {
	spec, err := bpf.LoadSpec()
	if err != nil {
		return nil, err
	}
	want := map[string]uint32{
		bpf.MapBans:         c.Bans,
		bpf.MapPrefixBans4:  c.PrefixBans,
		bpf.MapPrefixBans6:  c.PrefixBans,
		bpf.MapPrefixBans6L: c.PrefixBans,
		bpf.MapAllowlist:    c.Allowlist,
		bpf.MapSources:      c.Sources,
	}
	for name, ms := range spec.Maps {
		if n := want[name]; n > 0 {
			ms.MaxEntries = n
		}
		if fresh {
			continue
		}
		if err := checkPinned(dir, name, ms, want[name] > 0); err != nil {
			return nil, err
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: dir},
	})
	if err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("%w: %v (this build cannot use them; `portcullis detach --all --purge` removes them and every ban, or run the build that made them)", ErrIncompatible, err)
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load xdp program: %w", ve)
		}
		return nil, fmt.Errorf("load xdp program: %w", err)
	}
	return coll, nil
}

// checkPinned compares a pinned map with this build's spec, adopting the
// pinned capacity unless one was asked for explicitly.
func checkPinned(dir, name string, ms *ebpf.MapSpec, explicit bool) error {
	pinned, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a map new in this build: created and pinned on load
	}
	if err != nil {
		return fmt.Errorf("open pinned map %s: %w", name, err)
	}
	defer pinned.Close()
	if err := maps.CheckLayout(dir, name, pinned, ms); err != nil {
		return err
	}
	if pinned.MaxEntries() != ms.MaxEntries {
		if explicit {
			return fmt.Errorf("map %s in %s holds at most %d entries; changing its capacity to %d needs `portcullis detach --all --purge` first, which removes every ban", name, dir, pinned.MaxEntries(), ms.MaxEntries)
		}
		ms.MaxEntries = pinned.MaxEntries()
	}
	return nil
}

// open loads the datapath from an existing pin directory, with the lock held.
func open(opts Options) (*Datapath, error) {
	coll, err := newCollection(opts.PinDir, opts.Capacity, false)
	if err != nil {
		return nil, err
	}
	defer coll.Close()
	fresh := coll.Programs[bpf.ProgramName]

	prog, err := upgrade(opts, fresh)
	if err != nil {
		return nil, err
	}
	m, err := maps.FromCollection(coll)
	if err != nil {
		prog.Close()
		return nil, err
	}
	// After a suspend the offset is stale and bans would end late.
	if err := m.SyncBootOffset(); err != nil {
		m.Close()
		prog.Close()
		return nil, err
	}
	return &Datapath{pinDir: opts.PinDir, log: opts.Logger, prog: prog, Maps: m}, nil
}

// upgrade returns the program to run: the pinned one if it is this build's,
// otherwise this build's, swapped into every pinned link and pinned in the
// old one's place. Links are updated in place, so traffic never meets an
// interface without the program.
func upgrade(opts Options, fresh *ebpf.Program) (*ebpf.Program, error) {
	pinPath := filepath.Join(opts.PinDir, progPin)
	pinned, err := ebpf.LoadPinnedProgram(pinPath, nil)
	if err == nil {
		same, err := sameProgram(pinned, fresh)
		if err != nil {
			pinned.Close()
			return nil, err
		}
		if same {
			return pinned, nil
		}
		pinned.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open pinned program: %w", err)
	}

	links, err := pinnedLinks(opts.PinDir)
	if err != nil {
		return nil, err
	}
	for _, pl := range links {
		err := pl.link.Update(fresh)
		pl.link.Close()
		if errors.Is(err, unix.ENOLINK) {
			// The interface is gone: the link enforces nothing and the
			// kernel will not update it. Attach replaces it if the
			// interface comes back; failing here would block every Load.
			opts.Logger.Warn("not upgrading stale xdp link, its interface is gone", "iface", pl.iface)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("upgrade program on %s: %w", pl.iface, err)
		}
	}
	prog, err := fresh.Clone()
	if err != nil {
		return nil, fmt.Errorf("clone program: %w", err)
	}
	tmp := pinPath + "_new" // bpffs refuses dots in names
	_ = os.Remove(tmp)
	if err := prog.Pin(tmp); err != nil {
		prog.Close()
		return nil, fmt.Errorf("pin program: %w", err)
	}
	if err := os.Rename(tmp, pinPath); err != nil {
		prog.Close()
		return nil, fmt.Errorf("replace pinned program: %w", err)
	}
	if len(links) > 0 {
		opts.Logger.Info("upgraded xdp program in place", "links", len(links))
	}
	return prog, nil
}

// sameProgram compares by tag, the kernel's hash of the instructions, and
// by the maps each uses: the tag leaves map references out, and a program
// that uses maps other than the pinned ones (a map new in this build was
// created beside a program that holds a stale one) must be replaced too.
func sameProgram(a, b *ebpf.Program) (bool, error) {
	ai, err := a.Info()
	if err != nil {
		return false, fmt.Errorf("program info: %w", err)
	}
	bi, err := b.Info()
	if err != nil {
		return false, fmt.Errorf("program info: %w", err)
	}
	if ai.Tag != bi.Tag {
		return false, nil
	}
	am, aok := ai.MapIDs()
	bm, bok := bi.MapIDs()
	if !aok || !bok {
		return true, nil // the kernel does not say: trust the tag
	}
	return slices.Equal(sortedIDs(am), sortedIDs(bm)), nil
}

func sortedIDs(ids []ebpf.MapID) []ebpf.MapID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// PinDir is where the datapath is pinned.
func (d *Datapath) PinDir() string { return d.pinDir }

// Program is the running XDP program.
func (d *Datapath) Program() *ebpf.Program { return d.prog }

// Close releases file descriptors; everything pinned stays.
func (d *Datapath) Close() error {
	return errors.Join(d.Maps.Close(), d.prog.Close())
}

// Open returns the pinned datapath as it is, creating and upgrading nothing:
// for commands that only look, such as explain.
func Open(pinDir string) (*Datapath, error) {
	m, err := maps.Open(pinDir)
	if err != nil {
		return nil, err
	}
	prog, err := ebpf.LoadPinnedProgram(filepath.Join(pinDir, progPin), nil)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open pinned program: %w", err)
	}
	return &Datapath{pinDir: pinDir, log: slog.Default(), prog: prog, Maps: m}, nil
}
