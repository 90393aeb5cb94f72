package maps

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/cilium/ebpf"

	"github.com/portcullis-mail/portcullis/bpf"
)

// SetPortClass puts a port in a class; ClassNone unprotects it.
func (m *Maps) SetPortClass(port uint16, c Class) error {
	if c != ClassNone && c != ClassMX && c != ClassAuth {
		return fmt.Errorf("invalid port class %d", c)
	}
	if err := m.ports.Update(uint32(port), uint32(c), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set class of port %d: %w", port, err)
	}
	return nil
}

// PortClasses lists the protected ports of each class, sorted.
func (m *Maps) PortClasses() (map[Class][]uint16, error) {
	// 65,536 small values: one batch lookup is far cheaper than 65,536 syscalls.
	keys := make([]uint32, 1<<16)
	vals := make([]uint32, 1<<16)
	var cursor ebpf.MapBatchCursor
	n, err := m.ports.BatchLookup(&cursor, keys, vals, nil)
	if err != nil && n != len(keys) {
		return nil, fmt.Errorf("read port classes: %w", err)
	}
	out := map[Class][]uint16{}
	for i := 0; i < n; i++ {
		if c := Class(vals[i]); c != ClassNone {
			out[c] = append(out[c], uint16(keys[i]))
		}
	}
	for _, ports := range out {
		sort.Slice(ports, func(i, j int) bool { return ports[i] < ports[j] })
	}
	return out, nil
}

// SetRateLimit sets the token bucket of a class.
func (m *Maps) SetRateLimit(c Class, r RateLimit) error {
	if c != ClassMX && c != ClassAuth {
		return fmt.Errorf("invalid port class %d", c)
	}
	var interval, tolerance uint64
	if r.PerMinute > 0 {
		if r.Burst == 0 {
			return fmt.Errorf("a rate limit needs a burst of at least 1")
		}
		interval = uint64(time.Minute) / uint64(r.PerMinute)
		tolerance = interval * uint64(r.Burst)
	}
	// Tolerance first: during the instant between the two writes the
	// bucket is briefly the larger of old and new, never smaller.
	if err := m.config.Update(bpf.ConfigTolerance+uint32(c), tolerance, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set burst of %s: %w", c, err)
	}
	if err := m.config.Update(bpf.ConfigInterval+uint32(c), interval, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set rate of %s: %w", c, err)
	}
	return nil
}

// RateLimit reads the token bucket of a class.
func (m *Maps) RateLimit(c Class) (RateLimit, error) {
	var interval, tolerance uint64
	if err := m.config.Lookup(bpf.ConfigInterval+uint32(c), &interval); err != nil {
		return RateLimit{}, fmt.Errorf("read rate of %s: %w", c, err)
	}
	if err := m.config.Lookup(bpf.ConfigTolerance+uint32(c), &tolerance); err != nil {
		return RateLimit{}, fmt.Errorf("read burst of %s: %w", c, err)
	}
	if interval == 0 {
		return RateLimit{}, nil
	}
	return RateLimit{
		PerMinute: uint32((uint64(time.Minute) + interval/2) / interval),
		Burst:     uint32(tolerance / interval),
	}, nil
}

// SetDefaults puts the default port classes and rate limits in place. The
// loader calls it once, when it creates the maps.
func (m *Maps) SetDefaults() error {
	for c, ports := range DefaultPorts() {
		for _, p := range ports {
			if err := m.SetPortClass(p, c); err != nil {
				return err
			}
		}
	}
	for c, r := range DefaultRateLimits() {
		if err := m.SetRateLimit(c, r); err != nil {
			return err
		}
	}
	return nil
}

// Counters sums the datapath's per-CPU counters.
func (m *Maps) Counters() (Counters, error) {
	var sum [bpf.CounterMax]uint64
	for i := range sum {
		var per []uint64
		if err := m.counters.Lookup(uint32(i), &per); err != nil {
			return Counters{}, fmt.Errorf("read counter %d: %w", i, err)
		}
		for _, v := range per {
			sum[i] += v
		}
	}
	return Counters{
		Passed:      sum[bpf.CounterPassed],
		Allowlisted: sum[bpf.CounterAllowlisted],
		DroppedBan:  sum[bpf.CounterDroppedBan],
		DroppedRate: sum[bpf.CounterDroppedRate],
		DroppedGeo:  sum[bpf.CounterDroppedGeo],
		SynMX:       sum[bpf.CounterSynMX],
		SynAuth:     sum[bpf.CounterSynAuth],
		Malformed:   sum[bpf.CounterMalformed],
		NonIP:       sum[bpf.CounterNonIP],
		TrackFull:   sum[bpf.CounterTrackFull],
	}, nil
}

// Top returns the n sources with the most SYNs to protected ports. It keeps
// only the n best while scanning, so a full table of a million sources costs
// no more memory than n.
func (m *Maps) Top(n int) ([]Source, error) {
	if n < 1 {
		return nil, fmt.Errorf("top needs n >= 1, got %d", n)
	}
	before := func(a, b Source) bool {
		if a.Total() != b.Total() {
			return a.Total() > b.Total()
		}
		return a.Prefix.Addr().Less(b.Prefix.Addr())
	}
	out := make([]Source, 0, n)
	err := eachEntry(m.sources, func(k bpf.Addr, v bpf.Source) {
		a := keyAddr(k)
		bits := a.BitLen()
		if a.Is6() {
			bits = 64
		}
		s := Source{
			Prefix:   netip.PrefixFrom(a, bits),
			SYNs:     [2]uint64{uint64(v.Syns[0]), uint64(v.Syns[1])},
			Drops:    [2]uint64{uint64(v.Drops[0]), uint64(v.Drops[1])},
			LastSeen: fromBoot(v.LastSeen),
		}
		if len(out) == n && !before(s, out[n-1]) {
			return
		}
		i := sort.Search(len(out), func(i int) bool { return before(s, out[i]) })
		if len(out) < n {
			out = append(out, Source{})
		}
		copy(out[i+1:], out[i:])
		out[i] = s
	})
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	return out, nil
}
