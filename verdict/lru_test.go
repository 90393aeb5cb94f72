package verdict

import (
	"slices"
	"testing"
)

func TestLRUEvictsTheLeastRecentlyTouched(t *testing.T) {
	k := func(b byte) key { return key{15: b} }
	l := newLRU[int](3)
	for b := range byte(3) {
		slot, evicted := l.add(k(b))
		l.nodes[slot].val = int(b)
		if evicted {
			t.Fatalf("evicted while under the cap")
		}
	}
	s0, _ := l.get(k(0))
	l.touch(s0) // 0 is now the freshest; 1 the stalest
	if _, evicted := l.add(k(3)); !evicted {
		t.Fatal("no eviction at the cap")
	}
	if _, ok := l.get(k(1)); ok {
		t.Error("evicted the wrong entry: 1 is still there")
	}
	var order []byte
	for slot := range l.all {
		order = append(order, l.nodes[slot].key[15])
	}
	if want := []byte{3, 0, 2}; !slices.Equal(order, want) {
		t.Errorf("order %v; want %v", order, want)
	}
	if len(l.nodes) != 3 {
		t.Errorf("slab grew to %d; want the evicted slot reused", len(l.nodes))
	}
	// Removing while walking, and reusing freed slots.
	for slot := range l.all {
		l.remove(slot)
	}
	if l.len() != 0 || l.oldest() != none {
		t.Fatalf("len %d, oldest %d after removing all", l.len(), l.oldest())
	}
	for b := range byte(3) {
		l.add(k(10 + b))
	}
	if len(l.nodes) != 3 || l.len() != 3 {
		t.Errorf("slab %d, len %d; want freed slots reused", len(l.nodes), l.len())
	}
}
