package maps

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/cilium/ebpf"

	"github.com/portcullis-mail/portcullis/bpf"
)

// Allow adds a prefix to the allowlist. Allowlisted sources are never
// dropped, whatever bans or rates say.
func (m *Maps) Allow(p netip.Prefix) error {
	p, err := normalize(p)
	if err != nil {
		return err
	}
	k := lpmKey(p)
	if err := m.allow.Update(&k, uint64(time.Now().Unix()), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("allow %s: %w", p, mapFull(m.allow, err))
	}
	return m.setPresent(bpf.ConfigHaveAllow)
}

// Disallow removes exactly this prefix from the allowlist.
func (m *Maps) Disallow(p netip.Prefix) error {
	p, err := normalize(p)
	if err != nil {
		return err
	}
	k := lpmKey(p)
	if err := m.allow.Delete(&k); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("%s is not in the allowlist: %w", p, ErrNotFound)
		}
		return fmt.Errorf("disallow %s: %w", p, err)
	}
	return m.clearPresentIfEmpty(bpf.ConfigHaveAllow, m.allow)
}

// Allowlist lists the allowlisted prefixes, sorted.
func (m *Maps) Allowlist() ([]netip.Prefix, error) {
	var out []netip.Prefix
	if err := eachEntry(m.allow, func(k bpf.LPMKey, _ uint64) {
		out = append(out, keyPrefix(k))
	}); err != nil {
		return nil, fmt.Errorf("list allowlist: %w", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Addr().Compare(out[j].Addr()); c != 0 {
			return c < 0
		}
		return out[i].Bits() < out[j].Bits()
	})
	return out, nil
}

// AllowedBy returns the longest allowlisted prefix that holds addr. It is
// for showing which entry matched; the verdict itself is the kernel's.
func (m *Maps) AllowedBy(addr netip.Addr) (netip.Prefix, bool, error) {
	list, err := m.Allowlist()
	if err != nil {
		return netip.Prefix{}, false, err
	}
	addr = addr.Unmap()
	var best netip.Prefix
	for _, p := range list {
		if p.Contains(addr) && (!best.IsValid() || p.Bits() > best.Bits()) {
			best = p
		}
	}
	return best, best.IsValid(), nil
}
