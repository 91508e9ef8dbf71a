package eventrec

import (
	"testing"

	"github.com/bulwark-go/bulwark"
)

func TestRecorder(t *testing.T) {
	var r Recorder
	r.Observe(bulwark.Event{Kind: bulwark.EventFallback, Name: "a"})
	r.Observe(bulwark.Event{Kind: bulwark.EventLeaseLost, Name: "b"})
	r.Observe(bulwark.Event{Kind: bulwark.EventFallback, Name: "c"})
	if n := r.Count(bulwark.EventFallback); n != 2 {
		t.Fatalf("Count(fallback) = %d, want 2", n)
	}
	if e, ok := r.Last(bulwark.EventFallback); !ok || e.Name != "c" {
		t.Fatalf("Last(fallback) = %+v, %v; want c, true", e, ok)
	}
	if _, ok := r.Last(bulwark.EventBulkheadAcquired); ok {
		t.Fatal("Last of a kind never seen reported one")
	}
}
