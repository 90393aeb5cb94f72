package bpf

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
)

// The key and value layouts of the pinned maps (see portcullis.h).
type (
	// Addr is an address as the maps key it: IPv6, IPv4 mapped into ::ffff:0:0/96.
	Addr = portcullisPcAddr
	// LPMKey is the key of the allowlist and the IPv6 prefix ban trie.
	LPMKey = portcullisPcLpmKey
	// LPM4Key is the key of the IPv4 prefix ban trie.
	LPM4Key = portcullisPcLpm4Key
	// LPM6Key is the key of the IPv6 prefix ban trie for /0 to /64.
	LPM6Key = portcullisPcLpm6Key
	// Ban is the value of a ban, exact or prefix.
	Ban = portcullisPcBan
	// Source is the per-source rate-limit and SYN state.
	Source = portcullisPcSource
	// Geo is the value of a geo trie entry: a country and the classes it drops.
	Geo = portcullisPcGeo
)

// Names of the program and maps, as pinned.
const (
	ProgramName    = portcullisProgPortcullis
	MapBans        = portcullisMapBans
	MapPrefixBans4 = portcullisMapPrefixBans4
	MapPrefixBans6 = portcullisMapPrefixBans6
	// MapPrefixBans6L holds IPv6 prefix bans from /65 to /127.
	MapPrefixBans6L = portcullisMapPrefixBans6l
	MapAllowlist    = portcullisMapAllowlist
	MapPorts        = portcullisMapPorts
	MapConfig       = portcullisMapConfig
	MapCounters     = portcullisMapCounters
	MapSources      = portcullisMapSources
	// The geo tries, two sets of IPv4 and IPv6, and the drops per country.
	MapGeo4_0   = portcullisMapGeo40
	MapGeo4_1   = portcullisMapGeo41
	MapGeo6_0   = portcullisMapGeo60
	MapGeo6_1   = portcullisMapGeo61
	MapGeoDrops = portcullisMapGeoDrops
)

// Geo policy (PC_GEO_* in portcullis.h).
const (
	GeoOther   uint16 = 676 // in the database, a country no policy names
	GeoUnknown uint16 = 677 // not in the database
	GeoMax     uint32 = 678

	GeoBitAll uint8 = 1 // bit of the `all` class in drop masks; class c is 1<<c

	GeoCfgOn           uint64 = 1
	GeoCfgSet          uint64 = 2
	GeoCfgUnknownShift        = 8
	GeoCfgClassesShift        = 16
)

// Port classes (enum pc_class).
const (
	ClassNone uint32 = 0
	ClassMX   uint32 = 1
	ClassAuth uint32 = 2
)

// Ban scopes (enum pc_scope).
const (
	ScopeAll  uint8 = 1
	ScopeMail uint8 = 2
)

// Config indexes (enum pc_config).
const (
	ConfigHaveExact    uint32 = 0
	ConfigHavePrefix4  uint32 = 1
	ConfigHaveAllow    uint32 = 2
	ConfigHaveGeo      uint32 = 3
	ConfigHavePrefix6  uint32 = 4
	ConfigBootOffset   uint32 = 5 // CLOCK_BOOTTIME - CLOCK_MONOTONIC, ns
	ConfigHavePrefix6L uint32 = 6
	ConfigInterval     uint32 = 8  // + class
	ConfigTolerance    uint32 = 12 // + class
)

// Counter indexes (enum pc_counter).
const (
	CounterPassed      uint32 = 0
	CounterAllowlisted uint32 = 1
	CounterDroppedBan  uint32 = 2
	CounterDroppedRate uint32 = 3
	CounterDroppedGeo  uint32 = 4
	CounterSynMX       uint32 = 5
	CounterSynAuth     uint32 = 6
	CounterMalformed   uint32 = 7
	CounterNonIP       uint32 = 8
	CounterTrackFull   uint32 = 9
	CounterMax         uint32 = 32
)

// Rules an explained packet reports (enum pc_rule).
const (
	RulePass      uint8 = 0
	RuleNonIP     uint8 = 1
	RuleMalformed uint8 = 2
	RuleAllow     uint8 = 3
	RuleBanExact  uint8 = 4
	RuleBanPrefix uint8 = 5
	RuleGeo       uint8 = 6
	RuleRate      uint8 = 7
)

// ReasonLen is the room for a ban's reason in the kernel; longer reasons are cut.
const ReasonLen = 48

// Explain flags (PC_EXPLAIN_*).
const (
	ExplainAllowlisted uint8 = 1
	ExplainSYN         uint8 = 2
	ExplainTracked     uint8 = 4
	ExplainGeo         uint8 = 8
)

// ExplainMagic marks XDP metadata as a request to explain (PC_EXPLAIN_MAGIC).
const ExplainMagic uint32 = 0x70637821

// ExplainSize is the size of struct pc_explain, the metadata an explained
// packet carries in and out.
const ExplainSize = 32

// Explain is what the program reports about an explained packet.
type Explain struct {
	Rule    uint8
	Class   uint32
	Flags   uint8
	BanPlen uint8
	Tokens  uint32 // 0xffffffff when the class has no rate limit
	Action  uint32 // XDP action
	// GeoCountry is the source's country index (or GeoOther, GeoUnknown)
	// and GeoDrop the classes its entry drops, when Flags has ExplainGeo.
	GeoCountry uint16
	GeoDrop    uint8
}

// ExplainRequest returns the metadata that asks the program to explain.
func ExplainRequest() []byte {
	b := make([]byte, ExplainSize)
	binary.NativeEndian.PutUint32(b, ExplainMagic)
	return b
}

// ParseExplain reads the program's answer from the start of the data that
// BPF_PROG_TEST_RUN returned.
func ParseExplain(out []byte) (Explain, error) {
	if len(out) < ExplainSize || binary.NativeEndian.Uint32(out) != ExplainMagic {
		return Explain{}, fmt.Errorf("no explain metadata in the program's output")
	}
	return Explain{
		Rule:    out[4],
		Class:   uint32(out[5]),
		Flags:   out[6],
		BanPlen: out[7],
		Tokens:  binary.NativeEndian.Uint32(out[8:]),
		Action:  binary.NativeEndian.Uint32(out[12:]),

		GeoCountry: binary.NativeEndian.Uint16(out[16:]),
		GeoDrop:    out[18],
	}, nil
}

// LoadSpec returns the compiled program and its maps, not yet loaded.
func LoadSpec() (*ebpf.CollectionSpec, error) {
	spec, err := loadPortcullis()
	if err != nil {
		return nil, fmt.Errorf("read embedded xdp object: %w", err)
	}
	return spec, nil
}
