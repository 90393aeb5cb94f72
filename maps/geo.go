package maps

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/cilium/ebpf"

	"github.com/portcullis-mail/portcullis/bpf"
)

// ErrNoGeoMaps means the pinned datapath was made by a build without geo
// policy; the next `portcullis run` or `attach` adds the maps in place.
var ErrNoGeoMaps = errors.New("the pinned datapath predates geo policy (restart the daemon or run `portcullis attach` to upgrade it)")

// GeoMask is a set of port classes a country policy drops: GeoAll for
// every packet of the source, or the SYNs to the ports of a class.
type GeoMask uint8

// The bits of a GeoMask.
const (
	GeoAll  = GeoMask(bpf.GeoBitAll)
	GeoMX   = GeoMask(1 << ClassMX)
	GeoAuth = GeoMask(1 << ClassAuth)
)

// GeoClassMask is the bit of one class; ClassNone stands for `all`.
func GeoClassMask(c Class) GeoMask {
	if c == ClassNone {
		return GeoAll
	}
	return GeoMask(1 << c)
}

func (g GeoMask) String() string {
	var out string
	for _, n := range []struct {
		m    GeoMask
		name string
	}{{GeoAll, "all"}, {GeoMX, "mx"}, {GeoAuth, "auth"}} {
		if g&n.m != 0 {
			if out != "" {
				out += ","
			}
			out += n.name
		}
	}
	if out == "" {
		return "none"
	}
	return out
}

// Codes the geo tries use beside the two-letter country codes.
const (
	// CountryOther is an address the database places in a country no
	// policy names.
	CountryOther = "other"
	// CountryUnknown is an address the database does not place.
	CountryUnknown = "unknown"
)

// CountryIndex is the kernel's index of a country code: (c0-'A')*26+(c1-'A')
// for two upper-case letters, or the index of CountryOther or CountryUnknown.
func CountryIndex(code string) (uint16, error) {
	switch code {
	case CountryOther:
		return bpf.GeoOther, nil
	case CountryUnknown:
		return bpf.GeoUnknown, nil
	}
	if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
		return 0, fmt.Errorf("%q is not a two-letter country code", code)
	}
	return uint16(code[0]-'A')*26 + uint16(code[1]-'A'), nil
}

// CountryCode is the inverse of CountryIndex.
func CountryCode(idx uint16) string {
	switch {
	case idx == bpf.GeoOther:
		return CountryOther
	case idx == bpf.GeoUnknown:
		return CountryUnknown
	case idx < 26*26:
		return string([]byte{'A' + byte(idx/26), 'A' + byte(idx%26)})
	}
	return fmt.Sprintf("country(%d)", idx)
}

// GeoCountry is the prefixes of one country and the classes they drop.
type GeoCountry struct {
	Prefixes []netip.Prefix
	Drop     GeoMask
}

// GeoTable is a complete geo policy as the kernel enforces it.
type GeoTable struct {
	// Countries are by code; CountryOther holds the rest of the
	// database's coverage when a policy needs to tell it from unknown.
	Countries map[string]GeoCountry
	// Unknown is what is dropped of addresses in no prefix.
	Unknown GeoMask
	// Classes have a policy; the datapath skips geo for the others.
	Classes GeoMask
}

// geoSet is one of the two sets of tries.
type geoSet struct{ v4, v6 *ebpf.Map }

func (m *Maps) geoSets() ([2]geoSet, error) {
	if m.geo4[0] == nil || m.geo4[1] == nil || m.geo6[0] == nil || m.geo6[1] == nil || m.geoDrops == nil {
		return [2]geoSet{}, ErrNoGeoMaps
	}
	return [2]geoSet{{m.geo4[0], m.geo6[0]}, {m.geo4[1], m.geo6[1]}}, nil
}

func (m *Maps) geoWord() (uint64, error) {
	var w uint64
	if err := m.config.Lookup(bpf.ConfigHaveGeo, &w); err != nil {
		return 0, fmt.Errorf("read geo config: %w", err)
	}
	return w, nil
}

// SetGeo makes t the geo policy. The new tries are built completely in the
// set the datapath does not use and switched to with one write, which also
// carries the new policy's masks: no packet meets a half-built policy, a
// mix of old and new, or a moment without one. A table without classes
// turns geo off.
func (m *Maps) SetGeo(t GeoTable) error {
	sets, err := m.geoSets()
	if err != nil {
		return err
	}
	if t.Classes == 0 {
		return m.ClearGeo()
	}
	cur, err := m.geoWord()
	if err != nil {
		return err
	}
	next := 0
	if cur&bpf.GeoCfgOn != 0 && cur&bpf.GeoCfgSet == 0 {
		next = 1
	}
	s := sets[next]
	// A set not live may hold what an interrupted load left.
	if err := clearGeoSet(s); err != nil {
		return err
	}
	if err := fillGeoSet(s, t); err != nil {
		return err
	}
	w := bpf.GeoCfgOn | uint64(t.Unknown)<<bpf.GeoCfgUnknownShift | uint64(t.Classes)<<bpf.GeoCfgClassesShift
	if next == 1 {
		w |= bpf.GeoCfgSet
	}
	if err := m.config.Update(bpf.ConfigHaveGeo, w, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("switch geo policy: %w", err)
	}
	// The old set only frees memory now; nothing reads it.
	return clearGeoSet(sets[1-next])
}

// ClearGeo turns geo policy off and empties the tries.
func (m *Maps) ClearGeo() error {
	sets, err := m.geoSets()
	if err != nil {
		return err
	}
	if err := m.config.Update(bpf.ConfigHaveGeo, uint64(0), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("turn geo policy off: %w", err)
	}
	return errors.Join(clearGeoSet(sets[0]), clearGeoSet(sets[1]))
}

func fillGeoSet(s geoSet, t GeoTable) error {
	var (
		k4 []bpf.LPM4Key
		v4 []bpf.Geo
		k6 []bpf.LPMKey
		v6 []bpf.Geo
	)
	for code, c := range t.Countries {
		idx, err := CountryIndex(code)
		if err != nil || idx == bpf.GeoUnknown {
			return fmt.Errorf("geo table: %q is not a country code", code)
		}
		v := bpf.Geo{Country: idx, Drop: uint8(c.Drop)}
		for _, p := range c.Prefixes {
			p, err := normalizeGeo(p)
			if err != nil {
				return err
			}
			if p.Addr().Is4() {
				k4 = append(k4, lpm4Key(p))
				v4 = append(v4, v)
			} else {
				k6 = append(k6, lpmKey(p))
				v6 = append(v6, v)
			}
		}
	}
	if err := batchUpdate(s.v4, k4, v4); err != nil {
		return fmt.Errorf("fill %s: %w", mapName(s.v4), err)
	}
	if err := batchUpdate(s.v6, k6, v6); err != nil {
		return fmt.Errorf("fill %s: %w", mapName(s.v6), err)
	}
	return nil
}

// normalizeGeo folds mapped IPv4 and masks host bits. Unlike a ban, an IPv6
// prefix over ::ffff:0:0/96 is harmless here: IPv4 sources are looked up in
// the IPv4 trie only.
func normalizeGeo(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %s", p)
	}
	if p.Addr().Is4In6() && p.Bits() >= v4MappedBits {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-v4MappedBits).Masked(), nil
	}
	return netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked(), nil
}

func mapName(mp *ebpf.Map) string {
	if info, err := mp.Info(); err == nil {
		return info.Name
	}
	return "map"
}

// clearGeoSet empties both tries of a set.
func clearGeoSet(s geoSet) error {
	return errors.Join(clearMap[bpf.LPM4Key](s.v4), clearMap[bpf.LPMKey](s.v6))
}

func clearMap[K any](mp *ebpf.Map) error {
	var keys []K
	var k K
	it := mp.Iterate()
	var v []byte
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("list %s: %w", mapName(mp), err)
	}
	if len(keys) > 1 {
		_, err := mp.BatchDelete(keys, nil)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("clear %s: %w", mapName(mp), err)
		}
	}
	for i := range keys {
		if err := mp.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("clear %s: %w", mapName(mp), err)
		}
	}
	return nil
}

// GeoStatus is what the kernel holds of the geo policy.
type GeoStatus struct {
	On        bool               `json:"on"`
	Set       int                `json:"set"` // the live set of tries
	Unknown   GeoMask            `json:"-"`
	Classes   GeoMask            `json:"-"`
	Countries []GeoCountryStatus `json:"countries"`
	Bytes     uint64             `json:"bytes"` // kernel memory of the four tries
}

// GeoCountryStatus is one country's entries and drops.
type GeoCountryStatus struct {
	Country string  `json:"country"`
	IPv4    int     `json:"ipv4_prefixes"`
	IPv6    int     `json:"ipv6_prefixes"`
	Drop    GeoMask `json:"-"`
	Dropped uint64  `json:"dropped"`
}

// GeoStatus counts the live tries' prefixes and the drops per country,
// sorted by country code (other and unknown last).
func (m *Maps) GeoStatus() (GeoStatus, error) {
	sets, err := m.geoSets()
	if err != nil {
		return GeoStatus{}, err
	}
	w, err := m.geoWord()
	if err != nil {
		return GeoStatus{}, err
	}
	st := GeoStatus{
		On:      w&bpf.GeoCfgOn != 0,
		Unknown: GeoMask(w >> bpf.GeoCfgUnknownShift),
		Classes: GeoMask(w >> bpf.GeoCfgClassesShift),
	}
	if w&bpf.GeoCfgSet != 0 {
		st.Set = 1
	}
	for _, s := range sets {
		st.Bytes += memlock(s.v4) + memlock(s.v6)
	}
	by := map[uint16]*GeoCountryStatus{}
	get := func(idx uint16) *GeoCountryStatus {
		c := by[idx]
		if c == nil {
			c = &GeoCountryStatus{Country: CountryCode(idx)}
			by[idx] = c
		}
		return c
	}
	if st.On {
		live := sets[st.Set]
		if err := eachEntry(live.v4, func(_ bpf.LPM4Key, v bpf.Geo) {
			c := get(v.Country)
			c.IPv4++
			c.Drop = GeoMask(v.Drop)
		}); err != nil {
			return st, fmt.Errorf("list geo4: %w", err)
		}
		if err := eachEntry(live.v6, func(_ bpf.LPMKey, v bpf.Geo) {
			c := get(v.Country)
			c.IPv6++
			c.Drop = GeoMask(v.Drop)
		}); err != nil {
			return st, fmt.Errorf("list geo6: %w", err)
		}
	}
	for i := uint32(0); i < bpf.GeoMax; i++ {
		var per []uint64
		if err := m.geoDrops.Lookup(i, &per); err != nil {
			return st, fmt.Errorf("read geo drops: %w", err)
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		if n > 0 {
			get(uint16(i)).Dropped = n
		}
	}
	for _, c := range by {
		st.Countries = append(st.Countries, *c)
	}
	sort.Slice(st.Countries, func(i, j int) bool {
		a, b := st.Countries[i].Country, st.Countries[j].Country
		if (len(a) == 2) != (len(b) == 2) {
			return len(a) == 2
		}
		return a < b
	})
	return st, nil
}
