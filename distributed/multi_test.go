package distributed_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/local"
)

// testMultiScenario: per user 3/hour and per tenant 5/hour, checked in one
// script; a request denied by either limit takes nothing from the other.
func testMultiScenario(t *testing.T, st *distributed.Store) {
	t.Helper()
	ctx := context.Background()
	user := bulwark.Limit{Events: 3, Period: time.Hour}
	tenant := bulwark.Limit{Events: 5, Period: time.Hour}
	m, err := st.Multi("api", distributed.NamedLimit{Name: "user", Limit: user}, distributed.NamedLimit{Name: "tenant", Limit: tenant})
	if err != nil {
		t.Fatal(err)
	}
	const tag = "ten}ant{:\n" // hostile on purpose: still one slot, no CROSSSLOT
	allow := func(u string) bulwark.Decision {
		t.Helper()
		d, err := m.AllowKeys(ctx, tag, []string{u, tag}, 1)
		if err != nil || d.Degraded {
			t.Fatalf("AllowKeys(%q): %+v, %v (healthy %v)", u, d, err, st.Healthy())
		}
		return d
	}
	for i := range 3 {
		if d := allow("u1"); !d.Allowed || d.Remaining != 2-i || d.Limit != 3 {
			t.Fatalf("u1 call %d: %+v; want allowed, user limit the tightest", i, d)
		}
	}
	d := allow("u1")
	// Redis TIME runs on: the wait is 20m minus the time since the first call.
	if d.Allowed || d.Remaining != 0 || d.RetryAfter <= 19*time.Minute || d.RetryAfter > 20*time.Minute {
		t.Fatalf("u1 call 4: %+v; want denied by the user limit, retry after about 20m", d)
	}
	if d := allow("u2"); !d.Allowed || d.Remaining != 1 || d.Limit != 5 {
		t.Fatalf("u2 call 1: %+v; want allowed with the tenant limit the tightest (1 left)", d)
	}
	if d := allow("u2"); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("u2 call 2: %+v; want allowed, tenant exhausted", d)
	}
	if d := allow("u2"); d.Allowed {
		t.Fatalf("u2 call 3: %+v; want denied by the tenant limit", d)
	}
	// The denied call took nothing from u2's user limit: the same state,
	// read through a Multi holding only the user limit, has one token left.
	only, err := st.Multi("api", distributed.NamedLimit{Name: "user", Limit: user})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := only.AllowKeys(ctx, tag, []string{"u2"}, 1); err != nil || !d.Allowed || d.Remaining != 0 {
		t.Fatalf("u2 user limit after a tenant denial: %+v, %v; want its third token admitted", d, err)
	}
	// Allow applies every limit to one key.
	perKey, err := st.Multi("per-key", distributed.NamedLimit{Name: "second", Limit: bulwark.PerSecond(10)},
		distributed.NamedLimit{Name: "day", Limit: bulwark.Limit{Events: 4, Period: 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	admitted := 0
	for range 6 {
		d, err := perKey.Allow(ctx, "k{", 1)
		if err != nil || d.Degraded {
			t.Fatalf("Allow: %+v, %v", d, err)
		}
		if d.Allowed {
			admitted++
		}
	}
	if admitted != 4 {
		t.Errorf("per-key multi admitted %d, want 4 (the daily limit)", admitted)
	}
}

func TestMulti(t *testing.T) {
	st, _, _ := testStore(t, nil)
	testMultiScenario(t, st)
}

func TestMultiRejectsBadInput(t *testing.T) {
	st, _, _ := testStore(t, nil)
	ok := distributed.NamedLimit{Name: "a", Limit: bulwark.PerSecond(5)}
	many := make([]distributed.NamedLimit, distributed.MaxMultiLimits+1)
	for i := range many {
		many[i] = distributed.NamedLimit{Name: fmt.Sprint(i), Limit: bulwark.PerSecond(1)}
	}
	for name, limits := range map[string][]distributed.NamedLimit{
		"none":      nil,
		"too many":  many,
		"duplicate": {ok, ok},
		"invalid":   {ok, {Name: "b"}},
	} {
		if _, err := st.Multi("m", limits...); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("%s: error %v, want ErrInvalidConfig", name, err)
		}
	}
	m, err := st.Multi("m", ok, distributed.NamedLimit{Name: "b", Limit: bulwark.PerSecond(2)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := m.AllowKeys(ctx, "t", []string{"x"}, 1); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("AllowKeys with too few keys: %v, want ErrInvalidArgument", err)
	}
	if _, err := m.Allow(ctx, "x", 3); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("Allow(n above the smallest capacity): %v, want ErrInvalidArgument", err)
	}
}

// multiSingle adapts a one-limit Multi to the differential runner: it must
// decide exactly like a local token bucket.
var multiSingle = algorithm{
	name: "multi_single", bursty: true,
	redis: func(s *distributed.Store, name string, l bulwark.Limit) (bulwark.Limiter, error) {
		return s.Multi(name, distributed.NamedLimit{Name: "only", Limit: l})
	},
	local: func(l bulwark.Limit, c bulwark.Clock) (bulwark.Limiter, error) {
		return local.NewTokenBucket(l, local.WithClock(c))
	},
}

func TestMultiSingleLimitDifferential(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	st, _, _ := testStore(t, nil, distributed.WithClock(clk), distributed.WithMinTTL(time.Hour))
	for seed := range 8 {
		r := rand.New(rand.NewPCG(uint64(seed), 0x3a))
		runSequence(t, st, clk, multiSingle, fmt.Sprintf("m-%d", seed), randomSequence(r, multiSingle, []string{"a", "}{"}, 150, false))
	}
}

func TestTiered(t *testing.T) {
	if _, err := distributed.NewTiered(nil, nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("NewTiered(nil, nil): %v, want ErrInvalidConfig", err)
	}
	clk := fakeclock.New(fakeclock.Epoch)
	st, _, _ := testStore(t, nil, distributed.WithClock(clk), distributed.WithMinTTL(time.Hour))
	global, err := st.TokenBucket("fleet", bulwark.Limit{Events: 3, Period: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	replica := func() *distributed.Tiered {
		loc, err := local.NewTokenBucket(bulwark.Limit{Events: 2, Period: time.Hour}, local.WithClock(clk))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := distributed.NewTiered(loc, global)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	r1, r2 := replica(), replica()
	ctx := context.Background()
	want := func(tr *distributed.Tiered, allowed bool, remaining int, retry time.Duration, by distributed.Tier) {
		t.Helper()
		d, err := tr.AllowTier(ctx, "k", 1)
		if err != nil || d.Allowed != allowed || d.Remaining != remaining || d.RetryAfter != retry || d.DeniedBy != by {
			t.Fatalf("AllowTier: %+v, %v; want allowed %v, remaining %d, retry after %v, denied by %v", d, err, allowed, remaining, retry, by)
		}
	}
	none, loc, fleet := distributed.TierNone, distributed.TierLocal, distributed.TierGlobal
	want(r1, true, 1, 0, none)                // local 1 left, global 2 left
	want(r1, true, 0, 0, none)                // local 0, global 1
	want(r1, false, 0, 30*time.Minute, loc)   // the local tier denies: global untouched
	want(r2, true, 0, 0, none)                // global's last token (local 1 left)
	want(r2, false, 0, 20*time.Minute, fleet) // the global tier denies (r2's local token is spent): both show 0 left, Limit is the local tier's
	want(r2, false, 0, 30*time.Minute, loc)   // now r2's local tier is empty too
	clk.Advance(20 * time.Minute)             // r1's local tier: 2/3 of a token back
	want(r1, false, 0, 10*time.Minute, loc)   // still short by 1/3 of a token
	clk.Advance(10 * time.Minute)             // local: one token; global: 1.5 tokens
	want(r1, true, 0, 0, none)
	// Allow is AllowTier's decision without the tier.
	d, err := r2.Allow(ctx, "k", 1)
	if err != nil || d.Allowed {
		t.Fatalf("Allow on r2: %+v, %v; want a denial", d, err)
	}
	for tier, name := range map[distributed.Tier]string{none: "none", loc: "local", fleet: "global", 9: "unknown"} {
		if tier.String() != name {
			t.Errorf("Tier(%d).String() = %q, want %q", tier, tier.String(), name)
		}
	}
}
