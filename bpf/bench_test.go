package bpf_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/portcullis-mail/portcullis/bpf"
	"github.com/portcullis-mail/portcullis/internal/testnet"
	"github.com/portcullis-mail/portcullis/maps"
)

// benchRepeat is how often the kernel runs a packet per measurement; the
// kernel times the whole loop, so the syscall's own cost is spread thin.
const benchRepeat = 1_000_000

// Sources of the benchmark packets. The ban sets below are laid out around
// them: 198.19.0.0/16 and fd01::/16 hold exact bans, 198.18.0.0/16 and
// fd02::/16 prefix bans, and nothing covers the clean sources.
var (
	benchClean4     = addr("198.19.255.1")
	benchClean6     = addr("fd03::1")
	benchExact4     = addr("198.19.0.77")
	benchPrefix4    = addr("198.18.5.3")
	benchPrefix6    = addr("fd02:0:0:77::3")
	benchExactCount = 1_000_000
	benchPrefixes   = 65_536
)

// exactBans returns n exact bans: the IPv4 addresses of 198.19.0.0/16 but
// its last /24, then IPv6 addresses in fd01::/16.
func exactBans(n int) []maps.Ban {
	out := make([]maps.Ban, 0, n)
	for i := 0; i < n; i++ {
		var a netip.Addr
		if i < 255*256 {
			a = netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		} else {
			j := i - 255*256
			a = netip.AddrFrom16([16]byte{0xfd, 0x01, 12: byte(j >> 24), 13: byte(j >> 16), 14: byte(j >> 8), 15: byte(j)})
		}
		out = append(out, maps.Ban{Prefix: host(a), Scope: maps.ScopeAll, Reason: "benchmark", Expires: time.Now().Add(time.Hour)})
	}
	return out
}

// prefixBans returns n prefix bans: the 4,096 /28s of 198.18.0.0/16, then
// /64s in fd02::/16.
func prefixBans(n int) []maps.Ban {
	out := make([]maps.Ban, 0, n)
	for i := 0; i < n; i++ {
		var p netip.Prefix
		if i < 4096 {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 4), byte(i << 4)}), 28)
		} else {
			j := i - 4096
			p = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0x02, 6: byte(j >> 8), 7: byte(j)}), 64)
		}
		out = append(out, maps.Ban{Prefix: p, Scope: maps.ScopeAll, Reason: "benchmark", Expires: time.Now().Add(time.Hour)})
	}
	return out
}

// floorProgram is the cheapest XDP program: it passes everything. The
// datapath's cost is reported as a multiple of it, since the test-run
// harness itself costs most of a packet's time on this machine.
func floorProgram(b *testing.B) *ebpf.Program {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "xdp_floor",
		Type:         ebpf.XDP,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()},
	})
	if err != nil {
		b.Fatalf("load floor program: %v", err)
	}
	b.Cleanup(func() { prog.Close() })
	return prog
}

type benchCase struct {
	name   string
	frame  []byte
	action uint32
}

// measure runs one case: each iteration times the floor program and then
// the datapath on the same frame, benchRepeat times each, in the kernel.
func measure(b *testing.B, d *datapath, floor *ebpf.Program, c benchCase) {
	b.Run(c.name, func(b *testing.B) {
		prog := d.Program()
		if ret := d.run(c.frame); ret != c.action { // also warms the source's entry
			b.Fatalf("%s: %s, want %s", c.name, actionName(ret), actionName(c.action))
		}
		var floorNs, progNs float64
		for b.Loop() {
			_, f, err := floor.Benchmark(c.frame, benchRepeat, nil)
			if err != nil {
				b.Fatal(err)
			}
			ret, p, err := prog.Benchmark(c.frame, benchRepeat, nil)
			if err != nil {
				b.Fatal(err)
			}
			if ret != c.action {
				b.Fatalf("%s: %s during the benchmark, want %s", c.name, actionName(ret), actionName(c.action))
			}
			floorNs += float64(f.Nanoseconds())
			progNs += float64(p.Nanoseconds())
		}
		n := float64(b.N)
		b.ReportMetric(0, "ns/op") // wall time of both loops: not a packet's cost
		b.ReportMetric(progNs/n, "ns/pkt")
		b.ReportMetric(floorNs/n, "floor_ns/pkt")
		b.ReportMetric(progNs/floorNs, "x_floor")
	})
}

// reportOnce reports how long a one-off step of the setup took, as a
// benchmark line of its own so that it lands in the same table.
func reportOnce(b *testing.B, name string, took time.Duration) {
	b.Run(name, func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(took.Milliseconds()), "ms/call")
	})
}

// BenchmarkDatapath measures a packet's cost through BPF_PROG_TEST_RUN as
// the ban maps fill. Run it with `make bench`; -benchtime=5x is plenty.
func BenchmarkDatapath(b *testing.B) {
	d := loadDatapath(b, 0) // production capacities: the LRU is preallocated
	floor := floorProgram(b)
	arp := testnet.Packet{EtherType: testnet.EtherTypeARP, Payload: make([]byte, 46)}.Bytes()
	ack := func(src netip.Addr, port uint16) []byte {
		p := testnet.SYN(src, dstFor(src), port)
		p.Flags = testnet.FlagACK
		return p.Bytes()
	}
	// A limit that is on (so the GCRA compare-and-swap runs) but never
	// reached: 4e9 a minute is a token every 15 ns, burst a million.
	limitOn := func() { d.rateLimit(maps.ClassMX, 4_000_000_000, 1_000_000) }
	limitOff := func() { d.rateLimit(maps.ClassMX, 0, 0) }
	setFlag := func(idx uint32, v uint64) {
		if err := d.pinned(bpf.MapConfig).Update(idx, v, ebpf.UpdateAny); err != nil {
			b.Fatal(err)
		}
	}

	measure(b, d, floor, benchCase{"empty/non-ip", arp, xdpPass})
	measure(b, d, floor, benchCase{"empty/ack-to-25", ack(benchClean4, 25), xdpPass})
	limitOff()
	measure(b, d, floor, benchCase{"empty/syn-accepted-limit-off", syn(benchClean4, 25), xdpPass})
	limitOn()
	measure(b, d, floor, benchCase{"empty/syn-accepted", syn(benchClean4, 25), xdpPass})
	measure(b, d, floor, benchCase{"empty/syn-accepted-ipv6", syn(benchClean6, 25), xdpPass})

	exact := exactBans(benchExactCount)
	start := time.Now()
	if err := d.Maps.AddBans(exact[:100_000]); err != nil {
		b.Fatal(err)
	}
	reportOnce(b, "load/add-100k-exact-bans", time.Since(start))
	start = time.Now()
	if err := d.Maps.AddBans(exact[100_000:]); err != nil {
		b.Fatal(err)
	}
	reportOnce(b, "load/add-900k-more-exact-bans", time.Since(start))
	measure(b, d, floor, benchCase{"1M-exact/drop-exact", syn(benchExact4, 25), xdpDrop})
	measure(b, d, floor, benchCase{"1M-exact/ack-to-25", ack(benchClean4, 25), xdpPass})
	measure(b, d, floor, benchCase{"1M-exact/syn-accepted", syn(benchClean4, 25), xdpPass})

	start = time.Now()
	if err := d.Maps.AddBans(prefixBans(benchPrefixes)); err != nil {
		b.Fatal(err)
	}
	reportOnce(b, "load/add-64k-prefix-bans", time.Since(start))
	measure(b, d, floor, benchCase{"1M-exact+64k-prefix/drop-exact", syn(benchExact4, 25), xdpDrop})
	measure(b, d, floor, benchCase{"1M-exact+64k-prefix/drop-prefix", syn(benchPrefix4, 25), xdpDrop})
	measure(b, d, floor, benchCase{"1M-exact+64k-prefix/drop-prefix-ipv6", syn(benchPrefix6, 25), xdpDrop})
	measure(b, d, floor, benchCase{"1M-exact+64k-prefix/non-ip", arp, xdpPass})
	measure(b, d, floor, benchCase{"1M-exact+64k-prefix/ack-to-25", ack(benchClean4, 25), xdpPass})
	measure(b, d, floor, benchCase{"1M-exact+64k-prefix/ack-to-25-ipv6", ack(benchClean6, 25), xdpPass})
	measure(b, d, floor, benchCase{"1M-exact+64k-prefix/syn-accepted", syn(benchClean4, 25), xdpPass})
	measure(b, d, floor, benchCase{"1M-exact+64k-prefix/syn-accepted-ipv6", syn(benchClean6, 25), xdpPass})
	limitOff()
	measure(b, d, floor, benchCase{"1M-exact+64k-prefix/syn-accepted-limit-off", syn(benchClean4, 25), xdpPass})
	limitOn()

	// Where the time goes: the same packets with one ban map marked empty,
	// so the program skips its lookup (the entries stay).
	setFlag(bpf.ConfigHaveExact, 0)
	measure(b, d, floor, benchCase{"64k-prefix-only/drop-prefix", syn(benchPrefix4, 25), xdpDrop})
	measure(b, d, floor, benchCase{"64k-prefix-only/ack-to-25", ack(benchClean4, 25), xdpPass})
	setFlag(bpf.ConfigHaveExact, 1)
	setFlag(bpf.ConfigHavePrefix4, 0)
	setFlag(bpf.ConfigHavePrefix6, 0)
	measure(b, d, floor, benchCase{"1M-exact-only/ack-to-25", ack(benchClean4, 25), xdpPass})
	measure(b, d, floor, benchCase{"1M-exact-only/syn-accepted", syn(benchClean4, 25), xdpPass})
	setFlag(bpf.ConfigHavePrefix4, 1)
	setFlag(bpf.ConfigHavePrefix6, 1)
}
