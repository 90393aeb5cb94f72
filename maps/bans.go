package maps

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/portcullis-mail/portcullis/bpf"
)

// A ban lives in one of four kernel tables, by what it covers: one address
// (hash map), an IPv4 prefix, an IPv6 prefix up to /64, or a longer IPv6
// prefix (LPM tries). Each table is keyed in the form its lookups are
// fastest with; banTable hides the differences.
type banTable interface {
	name() string
	holds(p netip.Prefix) bool
	add(p []netip.Prefix, v []bpf.Ban) error
	del(p netip.Prefix) error
	lookup(p netip.Prefix, v *bpf.Ban) error
	each(fn func(netip.Prefix, bpf.Ban)) error
	expire() ([]Ban, error)
	clearIfEmpty(m *Maps) error
	flagIndex() uint32
	count() (int, error)
	capacity() int
	memory() uint64
}

type table[K any] struct {
	label  string
	mp     *ebpf.Map
	flag   uint32 // config index telling the datapath the table may hold entries
	covers func(netip.Prefix) bool
	key    func(netip.Prefix) K
	prefix func(K) netip.Prefix
}

func (t *table[K]) name() string               { return t.label }
func (t *table[K]) holds(p netip.Prefix) bool  { return t.covers(p) }
func (t *table[K]) capacity() int              { return int(t.mp.MaxEntries()) }
func (t *table[K]) clearIfEmpty(m *Maps) error { return m.clearPresentIfEmpty(t.flag, t.mp) }
func (t *table[K]) lookup(p netip.Prefix, v *bpf.Ban) error {
	k := t.key(p)
	return t.mp.Lookup(&k, v)
}

func (t *table[K]) add(ps []netip.Prefix, vals []bpf.Ban) error {
	keys := make([]K, len(ps))
	for i, p := range ps {
		keys[i] = t.key(p)
	}
	return batchUpdate(t.mp, keys, vals)
}

func (t *table[K]) del(p netip.Prefix) error {
	k := t.key(p)
	return t.mp.Delete(&k)
}

func (t *table[K]) each(fn func(netip.Prefix, bpf.Ban)) error {
	return eachEntry(t.mp, func(k K, v bpf.Ban) { fn(t.prefix(k), v) })
}

func (t *table[K]) expire() ([]Ban, error) { return expire(t.mp, t.prefix) }
func (t *table[K]) flagIndex() uint32      { return t.flag }
func (t *table[K]) count() (int, error)    { return countOf[K, bpf.Ban](t.mp) }
func (t *table[K]) memory() uint64         { return memlock(t.mp) }

// banTables lists the tables; a prefix belongs to exactly one of them.
func (m *Maps) banTables() []banTable {
	return []banTable{
		&table[bpf.Addr]{
			label: "bans", mp: m.bans, flag: bpf.ConfigHaveExact,
			covers: isSingle,
			key:    func(p netip.Prefix) bpf.Addr { return addrKey(p.Addr()) },
			prefix: func(k bpf.Addr) netip.Prefix { a := keyAddr(k); return netip.PrefixFrom(a, a.BitLen()) },
		},
		&table[bpf.LPM4Key]{
			label: "prefix_bans4", mp: m.prefixBans4, flag: bpf.ConfigHavePrefix4,
			covers: func(p netip.Prefix) bool { return p.Addr().Is4() && !isSingle(p) },
			key:    lpm4Key, prefix: keyPrefix4,
		},
		&table[bpf.LPM6Key]{
			label: "prefix_bans6", mp: m.prefixBans6, flag: bpf.ConfigHavePrefix6,
			covers: func(p netip.Prefix) bool { return p.Addr().Is6() && p.Bits() <= 64 },
			key:    lpm6Key, prefix: keyPrefix6,
		},
		&table[bpf.LPMKey]{
			label: "prefix_bans6l", mp: m.prefixBans6L, flag: bpf.ConfigHavePrefix6L,
			covers: func(p netip.Prefix) bool { return p.Addr().Is6() && p.Bits() > 64 && !isSingle(p) },
			key:    lpmKey, prefix: keyPrefix,
		},
	}
}

// tableFor returns the table a normalized prefix belongs in.
func (m *Maps) tableFor(p netip.Prefix) banTable {
	for _, t := range m.banTables() {
		if t.holds(p) {
			return t
		}
	}
	panic(fmt.Sprintf("no ban table holds %s", p)) // the tables cover every prefix
}

// banValue is the kernel's form of a ban. Hits start at zero.
func banValue(b Ban) bpf.Ban {
	v := bpf.Ban{
		Starts:  toBoot(b.Starts),
		Expires: toBoot(b.Expires),
		Scope:   uint8(b.Scope),
		Plen:    uint8(b.Prefix.Bits()),
		Origin:  uint8(b.Origin),
	}
	reason := []byte(b.Reason)
	if len(reason) > bpf.ReasonLen-1 {
		reason = reason[:bpf.ReasonLen-1] // keep the NUL the C side expects
	}
	for i, c := range reason {
		v.Reason[i] = int8(c)
	}
	return v
}

func fromValue(p netip.Prefix, v bpf.Ban) Ban {
	reason := make([]byte, 0, len(v.Reason))
	for _, c := range v.Reason {
		if c == 0 {
			break
		}
		reason = append(reason, byte(c))
	}
	return Ban{
		Prefix:  p,
		Scope:   Scope(v.Scope),
		Origin:  Origin(v.Origin),
		Reason:  string(bytes.ToValidUTF8(reason, []byte("?"))),
		Starts:  fromBoot(v.Starts),
		Expires: fromBoot(v.Expires),
		Hits:    v.Hits,
	}
}

func checkBan(b *Ban) error {
	p, err := normalize(b.Prefix)
	if err != nil {
		return err
	}
	b.Prefix = p
	if b.Scope != ScopeAll && b.Scope != ScopeMail {
		return fmt.Errorf("ban %s: invalid scope %d", p, b.Scope)
	}
	if !b.Expires.IsZero() && !b.Starts.IsZero() && !b.Expires.After(b.Starts) {
		return fmt.Errorf("ban %s: expires before it starts", p)
	}
	return nil
}

// AddBan adds or replaces one ban.
func (m *Maps) AddBan(b Ban) error { return m.AddBans([]Ban{b}) }

// AddBans adds or replaces bans in as few syscalls as the kernel allows:
// one batch per table where the map type has batches. A replaced ban's hit
// count starts again from zero. Nothing is written if any ban is invalid.
func (m *Maps) AddBans(bans []Ban) error {
	tables := m.banTables()
	prefixes := make([][]netip.Prefix, len(tables))
	values := make([][]bpf.Ban, len(tables))
	for i := range bans {
		b := bans[i]
		if err := checkBan(&b); err != nil {
			return err
		}
		for j, t := range tables {
			if t.holds(b.Prefix) {
				prefixes[j] = append(prefixes[j], b.Prefix)
				values[j] = append(values[j], banValue(b))
				break
			}
		}
	}
	if err := m.SyncBootOffset(); err != nil {
		return err
	}
	for j, t := range tables {
		if len(prefixes[j]) == 0 {
			continue
		}
		if err := t.add(prefixes[j], values[j]); err != nil {
			return fmt.Errorf("add bans to %s: %w", t.name(), err)
		}
		if err := m.setPresent(t.flagIndex()); err != nil {
			return err
		}
	}
	return nil
}

// batchUpdate writes all pairs, in one syscall where the map type supports
// batches and one per pair where it does not (LPM tries).
func batchUpdate[K, V any](mp *ebpf.Map, keys []K, vals []V) error {
	if len(keys) > 1 {
		_, err := mp.BatchUpdate(keys, vals, nil)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return mapFull(mp, err)
		}
	}
	for i := range keys {
		if err := mp.Update(&keys[i], &vals[i], ebpf.UpdateAny); err != nil {
			return mapFull(mp, err)
		}
	}
	return nil
}

// ErrFull means a map is at capacity.
var ErrFull = errors.New("map is full")

func mapFull(mp *ebpf.Map, err error) error {
	// Hash maps report a full map as E2BIG, tries as ENOSPC.
	if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("%w (capacity %d; attach with a larger capacity after `detach --all --purge`)", ErrFull, mp.MaxEntries())
	}
	return err
}

// DeleteBan removes the ban of exactly this address or prefix.
func (m *Maps) DeleteBan(p netip.Prefix) error {
	p, err := normalize(p)
	if err != nil {
		return err
	}
	t := m.tableFor(p)
	if err := t.del(p); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("%s: %w", p, ErrNotFound)
		}
		return fmt.Errorf("delete %s: %w", p, err)
	}
	return t.clearIfEmpty(m)
}

// LookupBan returns the ban of exactly this address or prefix.
func (m *Maps) LookupBan(p netip.Prefix) (Ban, error) {
	p, err := normalize(p)
	if err != nil {
		return Ban{}, err
	}
	var v bpf.Ban
	err = m.tableFor(p).lookup(p, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return Ban{}, fmt.Errorf("%s: %w", p, ErrNotFound)
	}
	if err != nil {
		return Ban{}, fmt.Errorf("look up %s: %w", p, err)
	}
	return fromValue(p, v), nil
}

// Bans lists every ban in the kernel, expired ones not yet collected
// included, sorted by prefix.
func (m *Maps) Bans() ([]Ban, error) {
	var out []Ban
	for _, t := range m.banTables() {
		if err := t.each(func(p netip.Prefix, v bpf.Ban) { out = append(out, fromValue(p, v)) }); err != nil {
			return nil, fmt.Errorf("list %s: %w", t.name(), err)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Prefix, out[j].Prefix
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
	return out, nil
}

// eachEntry calls fn for every entry, in batches where the map allows.
func eachEntry[K, V any](mp *ebpf.Map, fn func(K, V)) error {
	const chunk = 4096
	keys := make([]K, chunk)
	vals := make([]V, chunk)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := mp.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(keys[i], vals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			break
		}
		if err != nil {
			return err
		}
	}
	var (
		k K
		v V
	)
	it := mp.Iterate()
	for it.Next(&k, &v) {
		fn(k, v)
	}
	return it.Err()
}

// ExpireBans deletes bans that have ended and returns them. The kernel
// already ignores them; this only frees their room.
func (m *Maps) ExpireBans() ([]Ban, error) {
	var gone []Ban
	var errs []error
	for _, t := range m.banTables() {
		g, err := t.expire()
		gone = append(gone, g...)
		if err != nil {
			errs = append(errs, fmt.Errorf("expire %s: %w", t.name(), err))
		}
		errs = append(errs, t.clearIfEmpty(m))
	}
	return gone, errors.Join(errs...)
}

func expire[K any](mp *ebpf.Map, prefix func(K) netip.Prefix) ([]Ban, error) {
	ended := func(v bpf.Ban) bool { return v.Expires != 0 && v.Expires <= uint64(bootNow()) }
	var keys []K
	if err := eachEntry(mp, func(k K, v bpf.Ban) {
		if ended(v) {
			keys = append(keys, k)
		}
	}); err != nil {
		return nil, err
	}
	var gone []Ban
	for i := range keys {
		// Look again just before deleting: a ban renewed since the
		// listing must survive.
		var v bpf.Ban
		if err := mp.Lookup(&keys[i], &v); err != nil || !ended(v) {
			continue
		}
		if err := mp.Delete(&keys[i]); err != nil {
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				continue
			}
			return gone, err
		}
		gone = append(gone, fromValue(prefix(keys[i]), v))
	}
	return gone, nil
}
