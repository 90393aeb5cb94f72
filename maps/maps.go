// Package maps gives typed access to the datapath's kernel maps in netip
// terms: bans, allowlist, port classes, rate limits, counters and sources.
//
// Every operation is one or a few map syscalls and is safe to run from
// several processes at once; nothing here caches kernel state.
package maps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/portcullis-mail/portcullis/bpf"
)

// ErrNotLoaded means there are no pinned maps: the datapath was never
// attached, or was purged.
var ErrNotLoaded = errors.New("the datapath is not loaded (run `portcullis attach` first)")

// ErrIncompatible means the pinned maps were made by a build whose map
// layout differs from this one's.
var ErrIncompatible = errors.New("pinned maps have an incompatible layout")

// ErrNotFound means the ban or allowlist entry does not exist.
var ErrNotFound = errors.New("no such entry")

// Maps is the set of the datapath's maps.
type Maps struct {
	bans         *ebpf.Map
	prefixBans4  *ebpf.Map
	prefixBans6  *ebpf.Map
	prefixBans6L *ebpf.Map
	allow        *ebpf.Map
	ports        *ebpf.Map
	config       *ebpf.Map
	counters     *ebpf.Map
	sources      *ebpf.Map
	geo4         [2]*ebpf.Map // nil when the pinned set predates geo
	geo6         [2]*ebpf.Map
	geoDrops     *ebpf.Map
}

// names lists each map with the field that holds it.
// Maps added after the first release are optional when opening a pinned
// set: a set made by an older build is read without them until the next
// load adds them.
func (m *Maps) fields() []struct {
	name     string
	ptr      **ebpf.Map
	optional bool
} {
	return []struct {
		name     string
		ptr      **ebpf.Map
		optional bool
	}{
		{bpf.MapBans, &m.bans, false},
		{bpf.MapPrefixBans4, &m.prefixBans4, false},
		{bpf.MapPrefixBans6, &m.prefixBans6, false},
		{bpf.MapPrefixBans6L, &m.prefixBans6L, false},
		{bpf.MapAllowlist, &m.allow, false},
		{bpf.MapPorts, &m.ports, false},
		{bpf.MapConfig, &m.config, false},
		{bpf.MapCounters, &m.counters, false},
		{bpf.MapSources, &m.sources, false},
		{bpf.MapGeo4_0, &m.geo4[0], true},
		{bpf.MapGeo4_1, &m.geo4[1], true},
		{bpf.MapGeo6_0, &m.geo6[0], true},
		{bpf.MapGeo6_1, &m.geo6[1], true},
		{bpf.MapGeoDrops, &m.geoDrops, true},
	}
}

// Open opens the maps pinned in pinDir. Maps whose layout differs from
// this build's are ErrIncompatible: reading them would misread every entry.
func Open(pinDir string) (*Maps, error) {
	spec, err := bpf.LoadSpec()
	if err != nil {
		return nil, err
	}
	m := &Maps{}
	for _, f := range m.fields() {
		mp, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, f.name), nil)
		if err != nil && f.optional && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			m.Close()
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("%s: %w", pinDir, ErrNotLoaded)
			}
			return nil, fmt.Errorf("open pinned map %s: %w", f.name, err)
		}
		*f.ptr = mp
		if ms := spec.Maps[f.name]; ms != nil {
			if err := CheckLayout(pinDir, f.name, mp, ms); err != nil {
				m.Close()
				return nil, err
			}
		}
	}
	return m, nil
}

// CheckLayout compares a pinned map with this build's spec of it. Using a
// map of another layout would misread every entry, so it is refused with
// the remedy.
func CheckLayout(dir, name string, mp *ebpf.Map, ms *ebpf.MapSpec) error {
	if mp.Type() != ms.Type || mp.KeySize() != ms.KeySize || mp.ValueSize() != ms.ValueSize || mp.Flags() != ms.Flags {
		return fmt.Errorf("%w: map %s in %s is %s with %d-byte keys and %d-byte values, this build needs %s with %d and %d (`portcullis detach --all --purge` removes it and every ban; or run the build that made it)",
			ErrIncompatible, name, dir, mp.Type(), mp.KeySize(), mp.ValueSize(), ms.Type, ms.KeySize, ms.ValueSize)
	}
	return nil
}

// FromCollection wraps the maps of a loaded collection. The maps stay owned
// by the collection: Close on the result closes nothing.
func FromCollection(c *ebpf.Collection) (*Maps, error) {
	m := &Maps{}
	for _, f := range m.fields() {
		mp, ok := c.Maps[f.name]
		if !ok {
			return nil, fmt.Errorf("collection has no map %s", f.name)
		}
		clone, err := mp.Clone()
		if err != nil {
			return nil, fmt.Errorf("clone map %s: %w", f.name, err)
		}
		*f.ptr = clone
	}
	return m, nil
}

// Close releases the file descriptors; pinned maps stay in the kernel.
func (m *Maps) Close() error {
	var errs []error
	for _, f := range m.fields() {
		if *f.ptr != nil {
			errs = append(errs, (*f.ptr).Close())
			*f.ptr = nil
		}
	}
	return errors.Join(errs...)
}

// setPresent marks a map as possibly holding entries, so the datapath looks
// it up. It must be called after the insert it announces.
func (m *Maps) setPresent(idx uint32) error {
	if err := m.config.Update(idx, uint64(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update config: %w", err)
	}
	return nil
}

// clearPresentIfEmpty lets the datapath skip a map that has become empty.
// It clears the mark first and then looks again: an insert racing with it
// either lands before the second look (and the mark is put back) or sets the
// mark itself afterwards, so an entry is never left unmarked.
func (m *Maps) clearPresentIfEmpty(idx uint32, mp *ebpf.Map) error {
	if !isEmpty(mp) {
		return nil
	}
	if err := m.config.Update(idx, uint64(0), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("update config: %w", err)
	}
	if !isEmpty(mp) {
		return m.setPresent(idx)
	}
	return nil
}

func isEmpty(mp *ebpf.Map) bool {
	var key []byte
	err := mp.NextKey(nil, &key)
	return errors.Is(err, ebpf.ErrKeyNotExist)
}

// Fill reports how full the maps with a capacity are.
func (m *Maps) Fill() ([]Fill, error) {
	var out []Fill
	for _, t := range m.banTables() {
		n, err := t.count()
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", t.name(), err)
		}
		out = append(out, Fill{Name: t.name(), Entries: n, Capacity: t.capacity(), Bytes: t.memory()})
	}
	n, err := countOf[bpf.LPMKey, uint64](m.allow)
	if err != nil {
		return nil, fmt.Errorf("count allowlist: %w", err)
	}
	out = append(out, Fill{Name: "allowlist", Entries: n, Capacity: int(m.allow.MaxEntries()), Bytes: memlock(m.allow)})
	n, err = countOf[bpf.Addr, bpf.Source](m.sources)
	if err != nil {
		return nil, fmt.Errorf("count sources: %w", err)
	}
	out = append(out, Fill{Name: "sources", Entries: n, Capacity: int(m.sources.MaxEntries()), Bytes: memlock(m.sources)})
	return out, nil
}

// memlock is the kernel's estimate of a map's memory; 0 when unknown.
func memlock(mp *ebpf.Map) uint64 {
	info, err := mp.Info()
	if err != nil {
		return 0
	}
	n, _ := info.Memlock()
	return n
}

func countOf[K, V any](mp *ebpf.Map) (int, error) {
	n := 0
	err := eachEntry(mp, func(K, V) { n++ })
	return n, err
}
