package semaphore

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// The semaphore works on Redis Cluster, also for names that try to break
// the hash tag: every script's keys share a slot (no CROSSSLOT), and
// wake-ups published by a script on one node reach a waiter subscribed
// through another.
func TestOnCluster(t *testing.T) {
	cl := redistest.SharedCluster(t)
	client := cl.Client(t)
	prefix := redistest.Prefix(t, client)
	for _, name := range []string{"plain", "a}b{c", "{}", strings.Repeat("}", 100)} {
		holder, err := New(client, name, 2, WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Close()
		waiter, err := New(client, name, 2, WithPrefix(prefix), WithPollInterval(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		defer waiter.Close()

		l := mustAcquire(t, holder, 2)
		got := make(chan error, 1)
		go func() {
			l, err := waiter.Acquire(ctxT(t, 20*time.Second), 1)
			if err == nil {
				err = l.Release(ctxT(t, 5*time.Second))
			}
			got <- err
		}()
		eventually(t, 5*time.Second, "the waiter to queue", func() bool { return waiting(t, waiter) == 1 })
		if n := available(t, waiter); n != 0 {
			t.Fatalf("%q: Available: got %d, want 0", name, n)
		}
		mustRelease(t, l)
		if err := <-got; err != nil {
			t.Fatalf("%q: waiter: %v", name, err)
		}
		if n := available(t, holder); n != 2 {
			t.Fatalf("%q: Available at the end: got %d, want 2", name, n)
		}
	}
	redistest.CheckTTLs(t, client, prefix, FenceTTL)
}
