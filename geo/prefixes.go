package geo

import (
	"fmt"
	"net/netip"

	"go4.org/netipx"
)

// Other labels the database's coverage outside the named countries.
const Other = "other"

// Prefixes returns the prefixes of every country named accepts, each set
// merged where its networks are adjacent. With other, the rest of the
// database's coverage comes too, under Other, merged the same way: it is
// what tells "another country" from "not in the database", and merged it
// is a few thousand large ranges, where the networks number a million.
//
// Merging is by address order, so a country's prefixes never overlap
// another label's: a longest-prefix match on the result gives each address
// exactly its own label.
func (d *DB) Prefixes(named func(code string) bool, other bool) (map[string][]netip.Prefix, error) {
	out := map[string][]netip.Prefix{}
	var (
		run        string // label of the current run, "" when none
		start, end netip.Addr
	)
	flush := func() {
		if run != "" {
			out[run] = netipx.IPRangeFrom(start, end).AppendPrefixes(out[run])
		}
		run = ""
	}
	for res := range d.r.Networks() {
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("read networks of %s: %w", d.info.Path, err)
		}
		code, err := d.country(res)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d.info.Path, err)
		}
		label := ""
		switch {
		case code == "":
		case named(code):
			label = code
		case other:
			label = Other
		}
		p := res.Prefix().Masked()
		first, last := p.Addr(), netipx.PrefixLastIP(p)
		if label != "" && label == run && end.Next() == first {
			end = last
			continue
		}
		flush()
		if label != "" {
			run, start, end = label, first, last
		}
	}
	flush()
	return out, nil
}
