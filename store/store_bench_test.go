package store

import (
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

func benchStore(b *testing.B, sync Synchronous) *Store {
	b.Helper()
	s, err := OpenWith(b.Context(), b.TempDir(), Options{Synchronous: sync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// cpuTime is the process's user and system CPU time so far. The machine
// the benchmarks run on may be shared: CPU time per operation says what the
// code costs when wall time also says how busy the machine was.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCommitEvents measures event throughput in batches of several
// sizes, with each synchronous setting, each batch carrying the read
// position as the daemon's do.
func BenchmarkCommitEvents(b *testing.B) {
	for _, sync := range []Synchronous{SyncFull, SyncNormal} {
		for _, size := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("sync=%s/batch=%d", sync, size), func(b *testing.B) {
				s := benchStore(b, sync)
				events := make([]logs.Event, size)
				for i := range events {
					events[i] = event(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}).String(), base, "bench")
				}
				pos := []Position{{Key: "file:/var/log/mail.log", Dev: 1, Inode: 2}}
				var n int64
				cpu := cpuTime(b)
				for b.Loop() {
					n++
					pos[0].Offset = n * 100
					for i := range events {
						events[i].Time = base.Add(time.Duration(n*int64(size) + int64(i)))
					}
					if err := s.Commit(b.Context(), Batch{Events: events, Positions: pos}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*int64(size))/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/commit")
				b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(n*int64(size)), "cpu-µs/event")
			})
		}
	}
}

// BenchmarkCommitBan is the latency of recording one ban on its own, as a
// manual `portcullis ban` does.
func BenchmarkCommitBan(b *testing.B) {
	for _, sync := range []Synchronous{SyncFull, SyncNormal} {
		b.Run("sync="+string(sync), func(b *testing.B) {
			s := benchStore(b, sync)
			var i int
			for b.Loop() {
				i++
				p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32)
				if err := s.Commit(b.Context(), Batch{Bans: []Ban{ban(p.String(), base.Add(time.Duration(i)), time.Hour)}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBansInForce100k reads 100,000 bans in force, what the daemon
// restores into the kernel after a reboot (the whole restore must take at
// most a second).
func BenchmarkBansInForce100k(b *testing.B) {
	const total = 100_000
	s := benchStore(b, SyncNormal)
	now := base.Add(time.Hour)
	for start := 0; start < total; start += 10_000 {
		var bans []Ban
		for i := start; i < start+10_000; i++ {
			// Half IPv4 /32s, half IPv6 /64s; a tenth permanent.
			var p netip.Prefix
			if i%2 == 0 {
				p = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)}), 32)
			} else {
				p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}), 64)
			}
			d := 24 * time.Hour
			if i%10 == 0 {
				d = 0
			}
			bans = append(bans, ban(p.String(), base.Add(time.Duration(i)), d))
		}
		if err := s.Commit(b.Context(), Batch{Bans: bans}); err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime(b)
	for b.Loop() {
		bans, err := s.BansInForce(b.Context(), now)
		if err != nil {
			b.Fatal(err)
		}
		if len(bans) != total {
			b.Fatalf("%d bans in force, want %d", len(bans), total)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/restore")
	b.ReportMetric(float64((cpuTime(b)-cpu).Milliseconds())/float64(b.N), "cpu-ms/restore")
}
