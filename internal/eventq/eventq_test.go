package eventq

import (
	"sync"
	"testing"

	"github.com/bulwark-go/bulwark"
)

func TestQueueOrderedAndPanicSafe(t *testing.T) {
	var got []int
	var reported []string
	g := &Guard{OnPanic: func(what string, v any) { reported = append(reported, what) }}
	var q Queue
	var mu sync.Mutex
	q.Init(bulwark.ObserverFunc(func(e bulwark.Event) {
		got = append(got, e.Limit)
		if e.Limit%2 == 0 {
			panic("even")
		}
	}), g)
	for i := range 5 {
		mu.Lock()
		q.PushLocked(bulwark.Event{Limit: i})
		q.PushLocked(bulwark.Event{Limit: 10 + i})
		q.UnlockAndEmit(&mu)
	}
	want := []int{0, 10, 1, 11, 2, 12, 3, 13, 4, 14}
	if len(got) != len(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	if g.Panics() != 6 || len(reported) != 6 || reported[0] != "observer" {
		t.Fatalf("Panics() = %d, reported %v; want 6 observer panics", g.Panics(), reported)
	}
	q.Emit(bulwark.Event{Limit: 2})
	if g.Panics() != 7 {
		t.Fatalf("Emit's panic was not counted: %d", g.Panics())
	}
}

func TestSafeObserver(t *testing.T) {
	g := new(Guard)
	if Safe(nil, g) != nil {
		t.Fatal("Safe(nil) is not nil")
	}
	o := Safe(bulwark.ObserverFunc(func(bulwark.Event) { panic("x") }), g)
	if s, ok := Safe(o, g).(safe); !ok || s.g != g {
		t.Fatal("Safe of a safe observer is not a safe observer of the same guard")
	}
	Safe(o, g).Observe(bulwark.Event{}) // recovered once, counted once
	if !g.Call("handler", func() {}) || g.Call("handler", func() { panic("y") }) {
		t.Fatal("Call reported the wrong outcome")
	}
	if g.Panics() != 2 {
		t.Fatalf("Panics() = %d, want 2", g.Panics())
	}
}
