package local

import "testing"

func TestLRUEvictsLeastRecentlyUsed(t *testing.T) {
	l := newLRU[string, int](2)
	l.Add("a", 1)
	l.Add("b", 2)
	if v, ok := l.Get("a"); !ok || v != 1 { // a is now the most recent
		t.Fatalf("Get(a) = %d, %v; want 1, true", v, ok)
	}
	l.Add("c", 3) // evicts b
	if _, ok := l.Get("b"); ok {
		t.Fatal("b still present after c was added past the size")
	}
	l.Add("a", 10) // update in place
	if v, _ := l.Get("a"); v != 10 || l.Len() != 2 {
		t.Fatalf("after update: a = %d, len %d; want 10, 2", v, l.Len())
	}
	l.Remove("a")
	l.Remove("missing")
	if _, ok := l.Get("a"); ok || l.Len() != 1 {
		t.Fatalf("after Remove: present %v, len %d; want false, 1", ok, l.Len())
	}
}
