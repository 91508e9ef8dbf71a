package local

import "container/list"

// lru is a fixed-size least-recently-used map, not safe for concurrent use
// (Cache guards it with its mutex). Get and Add move an entry to the front;
// Add past the size evicts the entry at the back.
type lru[K comparable, V any] struct {
	size  int
	order *list.List // of *lruEntry, most recently used first
	items map[K]*list.Element
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

// newLRU returns an empty lru holding at most size entries; size must be
// at least 1 (Cache validates it).
func newLRU[K comparable, V any](size int) *lru[K, V] {
	return &lru[K, V]{size: size, order: list.New(), items: make(map[K]*list.Element, min(size, 1024))}
}

// Get returns the value of key and marks it most recently used.
func (l *lru[K, V]) Get(key K) (V, bool) {
	if e, ok := l.items[key]; ok {
		l.order.MoveToFront(e)
		return e.Value.(*lruEntry[K, V]).val, true
	}
	var zero V
	return zero, false
}

// Add sets key to val, marks it most recently used, and evicts the least
// recently used entry when the lru is over its size.
func (l *lru[K, V]) Add(key K, val V) {
	if e, ok := l.items[key]; ok {
		e.Value.(*lruEntry[K, V]).val = val
		l.order.MoveToFront(e)
		return
	}
	l.items[key] = l.order.PushFront(&lruEntry[K, V]{key: key, val: val})
	if l.order.Len() > l.size {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.items, oldest.Value.(*lruEntry[K, V]).key)
	}
}

// Remove deletes key if present.
func (l *lru[K, V]) Remove(key K) {
	if e, ok := l.items[key]; ok {
		l.order.Remove(e)
		delete(l.items, key)
	}
}

// Len is the number of entries.
func (l *lru[K, V]) Len() int { return l.order.Len() }
