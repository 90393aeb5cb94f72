package verdict

import (
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// sprayEvents is one failure each from n distinct sources, every other one
// an IPv6 /64, a millisecond apart.
func sprayEvents(n int) []logs.Event {
	evs := make([]logs.Event, n)
	for i := range evs {
		var a netip.Addr
		if i%2 == 0 {
			a = netip.AddrFrom4([4]byte{10 + byte(i>>24), byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			a = netip.AddrFrom16([16]byte{0: 0xfd, 4: byte(i >> 24), 5: byte(i >> 16), 6: byte(i >> 8), 7: byte(i), 15: 1})
		}
		evs[i] = logs.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Service: "smtp", Kind: logs.KindAuthFailure, Addr: a, Attempts: 1}
	}
	return evs
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// cpuTime is the CPU time the process has used, user and system: on a
// shared machine it says what the work costs where wall time does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTrack1M tracks a million distinct sources, the spray,
// and reports the heap each one costs and the time each event takes, by
// the wall clock and in CPU time (which includes the garbage collector's).
func BenchmarkTrack1M(b *testing.B) {
	const n = 1_000_000
	evs := sprayEvents(n)
	var perSource, perEvent, cpuPerEvent float64
	for range b.N {
		before := heapInUse()
		e := newEngine(b, nil)
		start, cpu := time.Now(), cpuTime()
		for _, ev := range evs {
			e.Observe(ev, ev.Time)
		}
		perEvent = float64(time.Since(start).Nanoseconds()) / n
		cpuPerEvent = float64((cpuTime() - cpu).Nanoseconds()) / n
		after := heapInUse()
		if s := e.Stats(); s.Tracked != n || s.Evicted != 0 {
			b.Fatalf("tracked %d, evicted %d; want %d and 0", s.Tracked, s.Evicted, n)
		}
		perSource = float64(after-before) / n
		runtime.KeepAlive(e)
	}
	b.ReportMetric(perSource, "heap-B/source")
	b.ReportMetric(perEvent, "ns/event")
	b.ReportMetric(cpuPerEvent, "cpu-ns/event")
}

// BenchmarkObserveAtCap is the steady state of a spray beyond MaxSources:
// every event evicts the stalest source.
func BenchmarkObserveAtCap(b *testing.B) {
	const n = 1 << 20
	evs := sprayEvents(n)
	e := newEngine(b, func(c *Config) { c.MaxSources = 100_000 })
	b.ResetTimer()
	for i := range b.N {
		ev := evs[i%n]
		ev.Time = t0.Add(time.Duration(i) * time.Millisecond)
		e.Observe(ev, ev.Time)
	}
}
