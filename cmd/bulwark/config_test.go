package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/policy"
)

// replica is one in-process replica of a service: its own client,
// distributed store, control replica and stack, and a load loop counting
// what the stack admits.
type replica struct {
	ctl      *control.Replica
	stack    *policy.Stack
	admitted atomic.Int64
}

func intp(v int) *int { return &v }

// startReplicas starts n replicas of the policy "checkout" with defaults,
// each calling its stack as fast as it can until the test ends.
func startReplicas(t *testing.T, addr, prefix string, n int, defaults policy.Spec) []*replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var out []*replica
	for i := 0; i < n; i++ {
		c := redis.NewClient(&redis.Options{Addr: addr})
		ctl, err := control.NewReplica(c, control.WithPrefix(prefix), control.WithHeartbeat(200*time.Millisecond),
			control.WithID(fmt.Sprintf("replica-%d", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		// A generous round-trip budget: on a loaded test machine the default one
		// would turn some decisions degraded (decided by the local twin).
		st, err := distributed.New(c, distributed.WithPrefix(prefix), distributed.WithObserver(ctl.Observer()),
			distributed.WithTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ctl.Build("checkout", defaults, policy.WithStore(st), policy.WithObserver(ctl.Observer()))
		if err != nil {
			t.Fatal(err)
		}
		r := &replica{ctl: ctl, stack: s}
		out = append(out, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if s.Do(ctx, func(context.Context) error { return nil }) == nil {
					r.admitted.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		}()
		t.Cleanup(func() {
			_ = ctl.Close()
			_ = st.Close()
			_ = c.Close()
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return out
}

func waitAll(t *testing.T, rs []*replica, bound time.Duration, what string, cond func(*policy.Parts) bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for _, r := range rs {
		for !cond(r.stack.Load()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: a replica did not within %v of the command's return", what, bound)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func admittedSum(rs []*replica) int64 {
	var n int64
	for _, r := range rs {
		n += r.admitted.Load()
	}
	return n
}

// TestConfigSetUnderLoad is the control plane's proof: three replicas on
// one Redis, under load; `bulwark config set` lowers the fleet-wide limit
// and every replica runs it within 1s of the command's return, on the
// same bucket (spent tokens stay spent, so the lower limit denies at
// once); `bulwark config rollback` restores it; an invalid set exits
// non-zero and changes nothing; the history lists both changes with their
// reasons.
func TestConfigSetUnderLoad(t *testing.T) {
	c := redistest.Default(t)
	prefix := strings.TrimSuffix(redistest.Prefix(t, c), ":")
	addr := c.(*redis.Client).Options().Addr
	url := "redis://" + addr
	defaults := policy.Spec{RateLimit: &policy.RateLimit{Limit: intp(600), Per: policy.D(time.Minute), Key: "global"}}
	rs := startReplicas(t, addr, prefix, 3, defaults)

	// Under load the fleet spends its 600-token bucket: then only the
	// refill (10/s) gets through.
	deadline := time.Now().Add(20 * time.Second)
	for admittedSum(rs) < 600 {
		if time.Now().After(deadline) {
			t.Fatalf("the load got %d requests through in 20s, want the whole bucket", admittedSum(rs))
		}
		time.Sleep(10 * time.Millisecond)
	}

	code, out, errOut := runCLI(t, "config", "set", "--redis", url, "--prefix", prefix, "checkout",
		"ratelimit.limit=60", "--reason", "incident 7: shed load")
	if code != exitOK {
		t.Fatalf("config set: exit %d: %s", code, errOut)
	}
	returned := time.Now()
	if !strings.Contains(out, "ratelimit.limit: (unset) -> 60") || !strings.Contains(out, "checkout: version 1") {
		t.Fatalf("config set printed %q", out)
	}
	waitAll(t, rs, time.Second, "run limit 60", func(p *policy.Parts) bool { return p.Limit.Events == 60 })
	t.Logf("every replica ran the new limit %v after the command returned", time.Since(returned))
	// The bucket carried over: ~600 tokens of debt against a capacity of
	// 60 refilling at 1/s, so nothing gets through now. A fresh bucket
	// would admit 60 at once.
	before := admittedSum(rs)
	time.Sleep(500 * time.Millisecond) // a window to count admissions in, not a synchronisation
	if got := admittedSum(rs) - before; got > 1 {
		t.Fatalf("%d requests admitted in 500ms under the lowered limit with a spent bucket, want at most 1", got)
	}

	// An invalid set: exit 3, nothing written.
	code, _, errOut = runCLI(t, "config", "set", "--redis", url, "--prefix", prefix, "checkout",
		"ratelimit.limit=-1", "--reason", "typo")
	if code != exitRefused || !strings.Contains(errOut, "ratelimit.limit") {
		t.Fatalf("invalid set: exit %d, stderr %q; want %d naming the field", code, errOut, exitRefused)
	}
	code, _, errOut = runCLI(t, "config", "set", "--redis", url, "--prefix", prefix, "checkout",
		"ratelimit.limt=5", "--reason", "typo")
	if code != exitRefused || !strings.Contains(errOut, `did you mean "limit"`) {
		t.Fatalf("unknown field: exit %d, stderr %q", code, errOut)
	}
	for _, r := range rs {
		if r.ctl.Version() != 1 {
			t.Fatalf("a replica runs version %d after refused changes, want 1", r.ctl.Version())
		}
	}

	code, out, errOut = runCLI(t, "config", "rollback", "--redis", url, "--prefix", prefix, "checkout",
		"--reason", "incident 7 over")
	if code != exitOK || !strings.Contains(out, "ratelimit.limit: 60 -> (unset)") {
		t.Fatalf("rollback: exit %d, %q %q", code, out, errOut)
	}
	waitAll(t, rs, time.Second, "run the restored limit", func(p *policy.Parts) bool { return p.Limit.Events == 600 })
	before = admittedSum(rs)
	deadline = time.Now().Add(10 * time.Second)
	for admittedSum(rs) == before { // the 10/s refill gets through again
		if time.Now().After(deadline) {
			t.Fatal("nothing admitted for 10s after the rollback")
		}
		time.Sleep(10 * time.Millisecond)
	}

	code, out, _ = runCLI(t, "config", "history", "--redis", url, "--prefix", prefix, "checkout")
	if code != exitOK || !strings.Contains(out, "version 1 ") || !strings.Contains(out, "incident 7: shed load") ||
		!strings.Contains(out, "version 2 ") || !strings.Contains(out, "incident 7 over") {
		t.Fatalf("history: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "typo") {
		t.Fatalf("a refused change is in the history:\n%s", out)
	}
	code, out, _ = runCLI(t, "config", "get", "--redis", url, "--prefix", prefix, "checkout")
	if code != exitOK || !strings.Contains(out, `"version": 2`) {
		t.Fatalf("get: exit %d\n%s", code, out)
	}
}

// TestConfigUsage: bad command lines exit 2 before touching Redis.
func TestConfigUsage(t *testing.T) {
	for _, args := range [][]string{
		{"config"},
		{"config", "frob"},
		{"config", "set", "--redis", "redis://127.0.0.1:1", "checkout", "ratelimit.limit=5"}, // no --reason
		{"config", "set", "--redis", "redis://127.0.0.1:1", "checkout", "--reason", "x"},     // no field
		{"config", "set", "--redis", "redis://127.0.0.1:1", "checkout", "limit", "--reason", "x"},
		{"config", "rollback", "--redis", "redis://127.0.0.1:1", "checkout", "abc", "--reason", "x"},
		{"config", "get", "--redis", "nonsense"},
	} {
		code, _, _ := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
}
