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
// exact bans in one batch, prefix bans in another. A replaced ban's hit
// count starts again from zero. Nothing is written if any ban is invalid.
func (m *Maps) AddBans(bans []Ban) error {
	var (
		exactKeys []bpf.Addr
		exactVals []bpf.Ban
		keys4     []bpf.LPM4Key
		vals4     []bpf.Ban
		keys6     []bpf.LPMKey
		vals6     []bpf.Ban
	)
	for i := range bans {
		b := bans[i]
		if err := checkBan(&b); err != nil {
			return err
		}
		if isSingle(b.Prefix) {
			exactKeys = append(exactKeys, addrKey(b.Prefix.Addr()))
			exactVals = append(exactVals, banValue(b))
		} else if b.Prefix.Addr().Is4() {
			keys4 = append(keys4, lpm4Key(b.Prefix))
			vals4 = append(vals4, banValue(b))
		} else {
			keys6 = append(keys6, lpmKey(b.Prefix))
			vals6 = append(vals6, banValue(b))
		}
	}
	if len(exactKeys) > 0 {
		if err := batchUpdate(m.bans, exactKeys, exactVals); err != nil {
			return fmt.Errorf("add bans: %w", err)
		}
		if err := m.setPresent(bpf.ConfigHaveExact); err != nil {
			return err
		}
	}
	if len(keys4) > 0 {
		if err := batchUpdate(m.prefixBans4, keys4, vals4); err != nil {
			return fmt.Errorf("add prefix bans: %w", err)
		}
		if err := m.setPresent(bpf.ConfigHavePrefix4); err != nil {
			return err
		}
	}
	if len(keys6) > 0 {
		if err := batchUpdate(m.prefixBans6, keys6, vals6); err != nil {
			return fmt.Errorf("add prefix bans: %w", err)
		}
		if err := m.setPresent(bpf.ConfigHavePrefix6); err != nil {
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
	if isSingle(p) {
		k := addrKey(p.Addr())
		if err := m.bans.Delete(&k); err != nil {
			return notFound(p, err)
		}
		return m.clearPresentIfEmpty(bpf.ConfigHaveExact, m.bans)
	}
	if p.Addr().Is4() {
		k := lpm4Key(p)
		if err := m.prefixBans4.Delete(&k); err != nil {
			return notFound(p, err)
		}
		return m.clearPresentIfEmpty(bpf.ConfigHavePrefix4, m.prefixBans4)
	}
	k := lpmKey(p)
	if err := m.prefixBans6.Delete(&k); err != nil {
		return notFound(p, err)
	}
	return m.clearPresentIfEmpty(bpf.ConfigHavePrefix6, m.prefixBans6)
}

func notFound(p netip.Prefix, err error) error {
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("%s: %w", p, ErrNotFound)
	}
	return fmt.Errorf("delete %s: %w", p, err)
}

// LookupBan returns the ban of exactly this address or prefix.
func (m *Maps) LookupBan(p netip.Prefix) (Ban, error) {
	p, err := normalize(p)
	if err != nil {
		return Ban{}, err
	}
	var v bpf.Ban
	if isSingle(p) {
		k := addrKey(p.Addr())
		err = m.bans.Lookup(&k, &v)
	} else if p.Addr().Is4() {
		k := lpm4Key(p)
		err = m.prefixBans4.Lookup(&k, &v)
	} else {
		k := lpmKey(p)
		err = m.prefixBans6.Lookup(&k, &v)
	}
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
	err := eachEntry(m.bans, func(k bpf.Addr, v bpf.Ban) {
		a := keyAddr(k)
		out = append(out, fromValue(netip.PrefixFrom(a, a.BitLen()), v))
	})
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	err = eachEntry(m.prefixBans4, func(k bpf.LPM4Key, v bpf.Ban) {
		out = append(out, fromValue(keyPrefix4(k), v))
	})
	if err != nil {
		return nil, fmt.Errorf("list prefix bans: %w", err)
	}
	err = eachEntry(m.prefixBans6, func(k bpf.LPMKey, v bpf.Ban) {
		out = append(out, fromValue(keyPrefix(k), v))
	})
	if err != nil {
		return nil, fmt.Errorf("list prefix bans: %w", err)
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
	gone, err := expire(m.bans, func(k bpf.Addr) netip.Prefix {
		a := keyAddr(k)
		return netip.PrefixFrom(a, a.BitLen())
	})
	if err != nil {
		return gone, fmt.Errorf("expire bans: %w", err)
	}
	gone4, err := expire(m.prefixBans4, keyPrefix4)
	gone = append(gone, gone4...)
	if err != nil {
		return gone, fmt.Errorf("expire prefix bans: %w", err)
	}
	gone6, err := expire(m.prefixBans6, keyPrefix)
	gone = append(gone, gone6...)
	if err != nil {
		return gone, fmt.Errorf("expire prefix bans: %w", err)
	}
	return gone, errors.Join(
		m.clearPresentIfEmpty(bpf.ConfigHaveExact, m.bans),
		m.clearPresentIfEmpty(bpf.ConfigHavePrefix4, m.prefixBans4),
		m.clearPresentIfEmpty(bpf.ConfigHavePrefix6, m.prefixBans6))
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
