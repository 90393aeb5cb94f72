package verdict

// key is a source or prefix as 16 bytes: IPv4 in its mapped form, IPv6
// masked to the bits it is counted by. A fixed array keeps the slab free of
// pointers (netip.Addr holds one for its zone), so a million sources cost
// the garbage collector nothing to scan.
type key [16]byte

// none marks the end of a list.
const none = -1

// lru is a bounded map from key to V, in a slab of nodes threaded on an
// intrusive doubly linked list, most recently touched first. Slots are
// reused, so callers may keep per-slot data beside the slab in their own
// arrays, indexed by the slot number that get and add return.
//
// The index is an open-addressing table of slot numbers (4 bytes an entry)
// rather than a map[key]int32 (20 bytes a slot plus control bytes, in
// tables that double): at a million sources that is the difference between
// about 10 and about 45 bytes a source.
type lru[V any] struct {
	index      index
	nodes      []node[V]
	head, tail int32
	free       int32 // first free slot, chained through next
	max        int
}

type node[V any] struct {
	key        key
	prev, next int32
	val        V
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{index: newIndex(), head: none, tail: none, free: none, max: max}
}

func (l *lru[V]) len() int { return l.index.n }

// get returns k's slot without touching it.
func (l *lru[V]) get(k key) (int32, bool) {
	pos, ok := l.index.find(k, l.keyOf)
	if !ok {
		return none, false
	}
	return int32(l.index.slots[pos] - 1), true
}

func (l *lru[V]) keyOf(slot uint32) *key { return &l.nodes[slot].key }

// touch moves slot i to the front.
func (l *lru[V]) touch(i int32) {
	if l.head == i {
		return
	}
	l.unlink(i)
	l.pushFront(i)
}

// add inserts k, which must not be present, at the front with a zero V. At
// the cap it first evicts the least recently touched entry and reports it.
func (l *lru[V]) add(k key) (slot int32, evicted bool) {
	if l.index.n >= l.max {
		l.remove(l.tail)
		evicted = true
	}
	if l.free != none {
		slot = l.free
		l.free = l.nodes[slot].next
	} else {
		slot = int32(len(l.nodes))
		l.nodes = append(l.nodes, node[V]{})
	}
	var zero V
	l.nodes[slot] = node[V]{key: k, val: zero}
	l.index.insert(k, uint32(slot), l.keyOf)
	l.pushFront(slot)
	return slot, evicted
}

// remove deletes slot i and puts it on the free chain.
func (l *lru[V]) remove(i int32) {
	l.unlink(i)
	l.index.delete(l.nodes[i].key, l.keyOf)
	var zero V
	l.nodes[i].val = zero // drop what V points to
	l.nodes[i].next = l.free
	l.free = i
}

// oldest returns the least recently touched slot, or none.
func (l *lru[V]) oldest() int32 { return l.tail }

// all yields every live slot, most recent first. The callback may remove
// the slot it is given.
func (l *lru[V]) all(yield func(int32) bool) {
	for i := l.head; i != none; {
		next := l.nodes[i].next
		if !yield(i) {
			return
		}
		i = next
	}
}

func (l *lru[V]) unlink(i int32) {
	n := &l.nodes[i]
	if n.prev != none {
		l.nodes[n.prev].next = n.next
	} else {
		l.head = n.next
	}
	if n.next != none {
		l.nodes[n.next].prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = none, none
}

func (l *lru[V]) pushFront(i int32) {
	n := &l.nodes[i]
	n.prev, n.next = none, l.head
	if l.head != none {
		l.nodes[l.head].prev = i
	}
	l.head = i
	if l.tail == none {
		l.tail = i
	}
}
