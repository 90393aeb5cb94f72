package verdict

import "hash/maphash"

// index maps keys to slab slots by linear probing. It stores only slot
// numbers plus one (zero is an empty position) and finds keys in the slab
// through keyOf. The hash is seeded at random per engine: sources pick
// their IPv6 addresses freely, and must not be able to pick colliding ones.
// The seed changes where keys sit in the table, never a decision.
type index struct {
	seed  maphash.Seed
	slots []uint32 // a power of two long
	n     int
}

func newIndex() index {
	return index{seed: maphash.MakeSeed(), slots: make([]uint32, 16)}
}

func (x *index) home(k key) int {
	return int(maphash.Comparable(x.seed, k) & uint64(len(x.slots)-1))
}

// find returns the position of k, or of the empty position where the probe
// for it ended.
func (x *index) find(k key, keyOf func(uint32) *key) (int, bool) {
	mask := len(x.slots) - 1
	for pos := x.home(k); ; pos = (pos + 1) & mask {
		s := x.slots[pos]
		if s == 0 {
			return pos, false
		}
		if *keyOf(s - 1) == k {
			return pos, true
		}
	}
}

// insert adds k, which must not be present, at slot.
func (x *index) insert(k key, slot uint32, keyOf func(uint32) *key) {
	if (x.n+1)*4 > len(x.slots)*3 { // keep the load under 3/4
		x.grow(keyOf)
	}
	pos, _ := x.find(k, keyOf)
	x.slots[pos] = slot + 1
	x.n++
}

func (x *index) grow(keyOf func(uint32) *key) {
	old := x.slots
	x.slots = make([]uint32, 2*len(old))
	mask := len(x.slots) - 1
	for _, s := range old {
		if s == 0 {
			continue
		}
		pos := x.home(*keyOf(s - 1))
		for x.slots[pos] != 0 {
			pos = (pos + 1) & mask
		}
		x.slots[pos] = s
	}
}

// delete removes k, shifting later entries of its probe run back so every
// key stays reachable from its home without tombstones.
func (x *index) delete(k key, keyOf func(uint32) *key) {
	hole, ok := x.find(k, keyOf)
	if !ok {
		return
	}
	mask := len(x.slots) - 1
	for pos := (hole + 1) & mask; x.slots[pos] != 0; pos = (pos + 1) & mask {
		home := x.home(*keyOf(x.slots[pos] - 1))
		// The entry at pos may fill the hole unless its home lies
		// cyclically in (hole, pos]: then it would end up before its home.
		if (pos-home)&mask >= (pos-hole)&mask {
			x.slots[hole] = x.slots[pos]
			hole = pos
		}
	}
	x.slots[hole] = 0
	x.n--
}
