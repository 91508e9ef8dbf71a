package integration_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarktest"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/local"
)

// The limits of these tests are per hour, so nothing refills while they run
// (a token every five minutes at most) and counts are exact: a key asked for
// more than its limit is admitted exactly its limit, and Remaining tells
// exactly what was taken.
const (
	limitsReplicas = 3
	limitsWorkers  = 4 // goroutines per replica
	// limitsTimeout is generous: nothing here injects faults, and a call
	// decided without Redis would make the exact counts meaningless.
	limitsTimeout = 2 * time.Second
)

var (
	perUser    = bulwark.Limit{Events: 10, Period: time.Hour}
	perTenant  = bulwark.Limit{Events: 12, Period: time.Hour}
	perReplica = bulwark.Limit{Events: 8, Period: time.Hour}
	perFleet   = bulwark.Limit{Events: 20, Period: time.Hour}
)

// tally counts admissions per key from many goroutines.
type tally struct {
	mu       sync.Mutex
	admitted map[string]int
	degraded int
}

func newTally() *tally { return &tally{admitted: map[string]int{}} }

func (t *tally) add(key string, d bulwark.Decision) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if d.Degraded {
		t.degraded++
	}
	if d.Allowed {
		t.admitted[key]++
	}
}

// hammer runs limitsWorkers goroutines per replica, each making perWorker
// calls of ask, and waits for them.
func hammer(perWorker int, ask func(ctx context.Context, replica, worker, i int)) {
	var wg sync.WaitGroup
	for r := range limitsReplicas {
		for w := range limitsWorkers {
			wg.Go(func() {
				for i := range perWorker {
					ask(context.Background(), r, w, i)
				}
			})
		}
	}
	wg.Wait()
}

func TestLimitsAcrossReplicas(t *testing.T) {
	t.Parallel()
	eachBackend(t, testLimitsAcrossReplicas)
}

func testLimitsAcrossReplicas(t *testing.T, b bulwarktest.Backend) {
	rs := bulwarktest.StartRedis(t, bulwarktest.WithBackend(b))
	admin := rs.Client(t)
	prefix := testPrefix(t, admin)
	fleet := startFleet(t, rs.Addr(), prefix, fleetConfig{replicas: limitsReplicas, timeout: limitsTimeout})
	ctx := context.Background()

	t.Run("multi per user and per tenant", func(t *testing.T) {
		multis := make([]*distributed.Multi, len(fleet))
		for i, r := range fleet {
			m, err := r.store.Multi("api",
				distributed.NamedLimit{Name: "user", Limit: perUser},
				distributed.NamedLimit{Name: "tenant", Limit: perTenant})
			if err != nil {
				t.Fatal(err)
			}
			multis[i] = m
		}
		// Tenant "acme" has five users (50 user tokens for its 12), tenant
		// "solo" one (10 user tokens for its 12). Every user asks for far
		// more than its limit, from every replica at once.
		type member struct{ tenant, user string }
		members := []member{{"acme", "u0"}, {"acme", "u1"}, {"acme", "u2"}, {"acme", "u3"}, {"acme", "u4"}, {"solo", "s0"}}
		got := newTally()
		var errs atomic.Int64
		hammer(24, func(ctx context.Context, r, w, i int) {
			m := members[(w*7+i)%len(members)]
			d, err := multis[r].AllowKeys(ctx, m.tenant, []string{m.user, m.tenant}, 1)
			if err != nil {
				errs.Add(1)
				return
			}
			got.add(m.tenant, d)
			got.add(m.tenant+"/"+m.user, d)
		})
		t.Logf("admitted: %v; decided without Redis: %d", got.admitted, got.degraded)
		if n := errs.Load(); n > 0 {
			t.Fatalf("%d AllowKeys calls failed", n)
		}
		if got.degraded > 0 {
			t.Fatalf("%d decisions were made without Redis (timeout %v): the exact counts below would not hold", got.degraded, limitsTimeout)
		}

		// Totals hold fleet-wide, and every admission took from both limits.
		if n := got.admitted["acme"]; n != perTenant.Events {
			t.Errorf("tenant acme: %d admitted across the fleet, want exactly its limit %d", n, perTenant.Events)
		}
		sum := 0
		for _, m := range members[:5] {
			n := got.admitted[m.tenant+"/"+m.user]
			sum += n
			if n > perUser.Events {
				t.Errorf("user %s: %d admitted, above its limit %d", m.user, n, perUser.Events)
			}
		}
		if sum != got.admitted["acme"] {
			t.Errorf("acme's users were admitted %d in all, the tenant %d: an admission took from one limit only", sum, got.admitted["acme"])
		}
		if n := got.admitted["solo/s0"]; n != perUser.Events {
			t.Errorf("user s0: %d admitted across the fleet, want exactly its limit %d", n, perUser.Events)
		}

		// Denials by the tenant limit took nothing from the users: each acme
		// user has exactly its limit less its admissions left. The probe pairs
		// the user with a fresh tenant key under the same tag, so the user's
		// bucket is the tighter one and Remaining is the user's.
		for i, m := range members[:5] {
			n := got.admitted[m.tenant+"/"+m.user]
			d, err := multis[i%len(multis)].AllowKeys(ctx, m.tenant, []string{m.user, "probe-" + m.user}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if n >= perUser.Events {
				if d.Allowed {
					t.Errorf("user %s: admitted after using its whole limit", m.user)
				}
				continue
			}
			if want := perUser.Events - n - 1; !d.Allowed || d.Remaining != want || d.Limit != perUser.Events {
				t.Errorf("user %s after %d admissions: probe %+v, want allowed with %d of %d left: denied requests took tokens",
					m.user, n, d, want, perUser.Events)
			}
		}
		// Denials by the user limit took nothing from the tenant: solo has
		// its limit less s0's admissions left. A fresh user under solo makes
		// the tenant the tighter bucket.
		d, err := multis[1].AllowKeys(ctx, "solo", []string{"probe-user", "solo"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := perTenant.Events - got.admitted["solo"] - 1; !d.Allowed || d.Remaining != want || d.Limit != perTenant.Events {
			t.Errorf("tenant solo after %d admissions: probe %+v, want allowed with %d of %d left: denied requests took tokens",
				got.admitted["solo"], d, want, perTenant.Events)
		}
	})

	t.Run("tiered per replica and per fleet", func(t *testing.T) {
		tiers := make([]*distributed.Tiered, len(fleet))
		globals := make([]*distributed.TokenBucket, len(fleet))
		for i, r := range fleet {
			own, err := local.NewTokenBucket(perReplica)
			if err != nil {
				t.Fatal(err)
			}
			global, err := r.store.TokenBucket("fleet", perFleet)
			if err != nil {
				t.Fatal(err)
			}
			tier, err := distributed.NewTiered(own, global)
			if err != nil {
				t.Fatal(err)
			}
			tiers[i], globals[i] = tier, global
		}
		// Three replicas may admit 8 each, the fleet 20 in all.
		got := newTally()
		var errs atomic.Int64
		hammer(10, func(ctx context.Context, r, _, _ int) {
			d, err := tiers[r].Allow(ctx, "k", 1)
			if err != nil {
				errs.Add(1)
				return
			}
			got.add("fleet", d)
			got.add(strconv.Itoa(r), d)
		})
		t.Logf("admitted: %v; decided without Redis: %d", got.admitted, got.degraded)
		if n := errs.Load(); n > 0 {
			t.Fatalf("%d Allow calls failed", n)
		}
		if got.degraded > 0 {
			t.Fatalf("%d decisions were made without Redis (timeout %v): the exact counts below would not hold", got.degraded, limitsTimeout)
		}
		if n := got.admitted["fleet"]; n != perFleet.Events {
			t.Errorf("%d admitted across the fleet, want exactly the fleet limit %d", n, perFleet.Events)
		}
		for r := range limitsReplicas {
			if n := got.admitted[strconv.Itoa(r)]; n > perReplica.Events {
				t.Errorf("replica %d admitted %d, above its own limit %d", r, n, perReplica.Events)
			}
		}

		// A request the local tier denies takes nothing from the fleet: replica
		// 0 asks 12 times for key q, its own limit admits 8, and the fleet's
		// bucket, read from another replica, has lost exactly 8.
		denied := 0
		for range 12 {
			d, err := tiers[0].Allow(ctx, "q", 1)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Allowed {
				denied++
				if d.Limit != perReplica.Events {
					t.Errorf("denial %+v: want the local tier's (limit %d)", d, perReplica.Events)
				}
			}
		}
		if denied != 12-perReplica.Events {
			t.Errorf("replica 0 denied %d of 12, want %d", denied, 12-perReplica.Events)
		}
		d, err := globals[1].Allow(ctx, "q", 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := perFleet.Events - perReplica.Events - 1; !d.Allowed || d.Remaining != want {
			t.Errorf("fleet bucket for q: %+v, want allowed with %d left: requests the local tier denied took fleet tokens", d, want)
		}
	})
	// A bucket's key lives until the bucket would be full again: at most a
	// period here.
	redistest.CheckTTLs(t, admin, prefix, time.Hour)
}
