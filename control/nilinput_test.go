package control_test

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/policy"
)

// TestBadConfig: nil and typed-nil clients and bad options are config
// errors, not panics.
func TestBadConfig(t *testing.T) {
	var nilClient *redis.Client
	if _, err := control.New(nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("New(nil): %v", err)
	}
	if _, err := control.New(nilClient); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("New(typed nil): %v", err)
	}
	if _, err := control.NewReplica(nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("NewReplica(nil): %v", err)
	}
	if _, err := control.NewReplica(nilClient); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("NewReplica(typed nil): %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for name, opts := range map[string][]control.Option{
		"empty prefix":  {control.WithPrefix("")},
		"brace prefix":  {control.WithPrefix("a{b")},
		"short history": {control.WithHistory(1)},
		"zero timeout":  {control.WithTimeout(0)},
		"nil clock":     {control.WithClock(nil)},
	} {
		if _, err := control.New(c, opts...); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("New with %s: %v", name, err)
		}
	}
	for name, opts := range map[string][]control.ReplicaOption{
		"glob prefix":  {control.WithPrefix("a*")},
		"zero poll":    {control.WithPollInterval(0)},
		"zero beat":    {control.WithHeartbeat(-time.Second)},
		"bad id":       {control.WithID("a b")},
		"nil observer": {control.WithObserver((*nilObserver)(nil))},
	} {
		if _, err := control.NewReplica(c, opts...); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("NewReplica with %s: %v", name, err)
		}
	}
}

// TestReplicaBuildErrors: invalid defaults, bad or duplicate names, and a
// closed replica are errors; a replica whose Redis never answers runs the
// defaults and says it is stale.
func TestReplicaBuildErrors(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer c.Close()
	r, err := control.NewReplica(c, control.WithTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Stale() {
		t.Error("replica without Redis is not stale")
	}
	bad := policy.Spec{RateLimit: &policy.RateLimit{Limit: intp(-1)}}
	if _, err := r.Build("op", bad); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("invalid defaults: %v", err)
	}
	if _, err := r.Build("a b", policy.Spec{}); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("bad name: %v", err)
	}
	s, err := r.Build("op", policy.Spec{Timeout: policy.D(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Load().Timeout != time.Second {
		t.Errorf("defaults not run: %v", s.Load().Timeout)
	}
	if s2, err := r.Build("op", policy.Spec{}); err != nil || s2 == s {
		t.Errorf("second stack of one name: %v", err)
	}
	if err := r.Refresh(ctx); err == nil {
		t.Error("Refresh without Redis: no error")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Build("other", policy.Spec{}); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("Build after Close: %v", err)
	}
}

// TestObserverPanics: a panicking observer is recovered and counted, and
// the replica keeps applying changes.
func TestObserverPanics(t *testing.T) {
	c := redistest.Default(t)
	prefix := prefixOf(t, c)
	r, err := control.NewReplica(c, control.WithPrefix(prefix), control.WithPollInterval(50*time.Millisecond),
		control.WithObserver(bulwark.ObserverFunc(func(bulwark.Event) { panic("observer bug") })))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, err := r.Build("jobs", policy.Spec{Timeout: policy.D(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, c, prefix)
	for _, d := range []string{"2s", "3s"} {
		if _, err := s.Assign(ctx, "jobs", []string{"timeout=" + d}, control.Meta{}); err != nil {
			t.Fatal(err)
		}
		want, _ := time.ParseDuration(d)
		eventually(t, 2*time.Second, "change applied", func() bool { return st.Load().Timeout == want })
	}
	if r.ObserverPanics() < 3 {
		t.Fatalf("%d panics counted, want at least 3 (build and two changes)", r.ObserverPanics())
	}
}

type nilObserver struct{}

func (*nilObserver) Observe(bulwark.Event) {}
