package verdict

import (
	"math/rand/v2"
	"testing"
)

func TestIndexAgreesWithAMapThroughInsertsAndDeletes(t *testing.T) {
	// Few distinct keys and many operations: long probe runs, wrap-around
	// at the table's end, and deletions in the middle of runs.
	r := rand.New(rand.NewPCG(3, 4))
	var keys []key // the "slab": slot -> key
	keyOf := func(s uint32) *key { return &keys[s] }
	x := newIndex()
	want := map[key]uint32{}
	for op := range 200_000 {
		k := key{15: byte(r.IntN(300)), 14: byte(r.IntN(2))}
		pos, ok := x.find(k, keyOf)
		slot, in := want[k]
		if ok != in || (ok && x.slots[pos]-1 != slot) {
			t.Fatalf("op %d: find(%v) = %v, slot %d; map has %v, %d", op, k, ok, x.slots[pos]-1, in, slot)
		}
		if in && r.IntN(2) == 0 {
			x.delete(k, keyOf)
			delete(want, k)
		} else if !in {
			keys = append(keys, k)
			x.insert(k, uint32(len(keys)-1), keyOf)
			want[k] = uint32(len(keys) - 1)
		}
		if x.n != len(want) {
			t.Fatalf("op %d: index holds %d; map %d", op, x.n, len(want))
		}
	}
	for k, slot := range want {
		if pos, ok := x.find(k, keyOf); !ok || x.slots[pos]-1 != slot {
			t.Errorf("lost %v", k)
		}
	}
	if len(want) < 100 {
		t.Errorf("only %d keys at the end: the test did not fill the table", len(want))
	}
}
