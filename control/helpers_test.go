package control_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/policy"
)

// fleet is n replicas of one service sharing a prefix, each with its own
// client, distributed store and control replica.
type fleet struct {
	prefix   string
	replicas []*control.Replica
	stacks   []*policy.Stack
	stores   []*distributed.Store
	events   []*eventLog
}

type eventLog struct {
	mu  sync.Mutex
	evs []bulwark.Event
}

func (l *eventLog) Observe(e bulwark.Event) {
	if e.Kind != bulwark.EventConfig {
		return
	}
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []bulwark.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bulwark.Event(nil), l.evs...)
}

func prefixOf(t *testing.T, c redis.UniversalClient) string {
	return strings.TrimSuffix(redistest.Prefix(t, c), ":")
}

// startFleet builds n replicas of the policy "checkout" with defaults,
// each on a client from newClient.
func startFleet(t *testing.T, n int, prefix string, newClient func() redis.UniversalClient, defaults policy.Spec, opts ...control.ReplicaOption) *fleet {
	t.Helper()
	f := &fleet{prefix: prefix}
	for i := 0; i < n; i++ {
		c := newClient()
		st, err := distributed.New(c, distributed.WithPrefix(prefix), distributed.WithTimeout(2*time.Second)) // no spurious degradation under load
		if err != nil {
			t.Fatal(err)
		}
		log := &eventLog{}
		ro := append([]control.ReplicaOption{control.WithPrefix(prefix), control.WithObserver(log),
			control.WithPollInterval(200 * time.Millisecond), control.WithHeartbeat(200 * time.Millisecond),
			control.WithTimeout(500 * time.Millisecond)}, opts...)
		r, err := control.NewReplica(c, ro...)
		if err != nil {
			t.Fatal(err)
		}
		s, err := r.Build("checkout", defaults, policy.WithStore(st))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = r.Close()
			_ = st.Close()
		})
		f.replicas, f.stacks, f.stores, f.events = append(f.replicas, r), append(f.stacks, s), append(f.stores, st), append(f.events, log)
	}
	return f
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func limitOf(s *policy.Stack) int {
	p := s.Load()
	if p.Limiter == nil {
		return 0
	}
	return p.Limit.Events
}

func newStore(t *testing.T, c redis.UniversalClient, prefix string) *control.Store {
	t.Helper()
	s, err := control.New(c, control.WithPrefix(prefix), control.WithHistory(10))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var ctx = context.Background()

func intp(v int) *int { return &v }

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }
