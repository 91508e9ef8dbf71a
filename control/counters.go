package control

import (
	"strings"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
)

// CountBucket is the width of one bucket of a policy's decision counts,
// and CountBuckets how many a replica publishes: the last five minutes.
const (
	CountBucket  = 10 * time.Second
	CountBuckets = 30
)

// Counts are one policy's decisions in one bucket of CountBucket.
type Counts struct {
	T         int64 `json:"t"` // the bucket's start, Unix seconds
	Decisions int64 `json:"n"` // rate-limit decisions and breaker or bulkhead rejections
	Denied    int64 `json:"denied"`
	Degraded  int64 `json:"degraded"` // decided without Redis
}

// counters keeps each policy's recent counts.
type counters struct {
	m sync.Map // name -> *nameCounts
}

type nameCounts struct {
	mu   sync.Mutex
	ring [CountBuckets]Counts
	head int // index of the newest bucket
}

// Observer returns an observer that counts the decisions of the replica's
// policies for its heartbeats (the console draws them): give it to the
// stacks (policy.WithObserver) and to their distributed.Store
// (distributed.WithObserver), next to your own with bulwark.Observers.
// Events are counted by the policy's name (a fleet-wide state name
// "<name>~per=2s" counts as <name>).
func (r *Replica) Observer() bulwark.Observer { return bulwark.ObserverFunc(r.counts.observe) }

func (c *counters) observe(e bulwark.Event) {
	var denied, degraded bool
	switch e.Kind {
	case bulwark.EventDecision:
		denied, degraded = !e.Allowed && !e.Shadow, e.Degraded
	case bulwark.EventBreakerRejected, bulwark.EventBulkheadRejected, bulwark.EventRejected:
		denied = !e.Shadow
	default:
		return
	}
	name, _, _ := strings.Cut(e.Name, "~")
	if name == "" {
		return
	}
	v, ok := c.m.Load(name)
	if !ok {
		v, _ = c.m.LoadOrStore(name, &nameCounts{})
	}
	n := v.(*nameCounts)
	t := e.Time
	if t.IsZero() {
		t = time.Now()
	}
	n.mu.Lock()
	b := n.bucket(t)
	b.Decisions++
	if denied {
		b.Denied++
	}
	if degraded {
		b.Degraded++
	}
	n.mu.Unlock()
}

// bucket returns the bucket of t, advancing the ring. Requires n.mu held.
func (n *nameCounts) bucket(t time.Time) *Counts {
	start := t.Unix() / int64(CountBucket/time.Second) * int64(CountBucket/time.Second)
	cur := &n.ring[n.head]
	if cur.T == start {
		return cur
	}
	if cur.T > start { // an event from an older bucket: count it in the newest
		return cur
	}
	n.head = (n.head + 1) % CountBuckets
	n.ring[n.head] = Counts{T: start}
	return &n.ring[n.head]
}

// snapshot returns every policy's buckets of the last CountBuckets, oldest
// first.
func (c *counters) snapshot(now time.Time) map[string][]Counts {
	out := map[string][]Counts{}
	oldest := now.Add(-CountBucket * CountBuckets).Unix()
	c.m.Range(func(k, v any) bool {
		n := v.(*nameCounts)
		var cs []Counts
		n.mu.Lock()
		for i := 1; i <= CountBuckets; i++ {
			b := n.ring[(n.head+i)%CountBuckets]
			if b.T != 0 && b.T > oldest {
				cs = append(cs, b)
			}
		}
		n.mu.Unlock()
		out[k.(string)] = cs
		return true
	})
	return out
}
