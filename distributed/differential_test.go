package distributed_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

// The differential tests run one random sequence of (advance clock, key, n)
// through a local limiter and its Redis-backed twin on one fake clock and
// require identical Decisions at every step.

// step is one call of a sequence.
type step struct {
	advance time.Duration // moves the clock first (negative: the clock goes back)
	key     string
	n       int
	probe   bool // after a denial: check that RetryAfter is exact (see runSequence)
}

func (s step) String() string {
	k := s.key
	if len(k) > 20 {
		k = k[:20] + "…"
	}
	return fmt.Sprintf("advance %v key %q n %d probe %v", s.advance, k, s.n, s.probe)
}

// sequence is a random limit and the calls to make with it.
type sequence struct {
	limit bulwark.Limit
	start time.Time
	steps []step
}

// randomLimit draws a limit from several regimes: tiny periods (sub-ms,
// emission intervals below 1µs), ordinary ones, and large products close to
// the 2^52 validation bound that stress Lua's doubles.
func randomLimit(r *rand.Rand, bursty bool) bulwark.Limit {
	var l bulwark.Limit
	switch r.IntN(5) {
	case 0:
		l = bulwark.Limit{Events: 1 + r.IntN(20), Period: time.Duration(1+r.IntN(100)) * time.Microsecond}
	case 1:
		l = bulwark.Limit{Events: 1 + r.IntN(20), Period: time.Duration(1+r.IntN(5000)) * time.Microsecond}
	case 2:
		l = bulwark.Limit{Events: 1 + r.IntN(50), Period: time.Duration(1+r.IntN(3_000_000)) * time.Microsecond}
	case 3:
		l = bulwark.Limit{Events: 1 + r.IntN(7), Period: time.Duration(1+r.IntN(7)) * time.Second}
	default:
		// Big: Events × Period up to about 2^52 µs.
		e := 1 + r.IntN(1_000_000)
		maxP := int64(1<<52) / int64(e)
		if bursty {
			maxP /= 3
		}
		l = bulwark.Limit{Events: e, Period: time.Duration(1+r.Int64N(maxP)) * time.Microsecond}
	}
	if bursty && r.IntN(2) == 0 {
		l.Burst = 1 + r.IntN(3*l.Events)
		if err := l.Validate(); err != nil {
			l.Burst = 0
		}
	}
	return l
}

// randomSequence draws a sequence of steps for a limiter of algorithm a.
// With back, the clock sometimes goes backwards; without, some steps probe
// RetryAfter.
func randomSequence(r *rand.Rand, a algorithm, keys []string, steps int, back bool) sequence {
	l := randomLimit(r, a.bursty)
	p := l.Period
	maxN := a.maxN(l)
	seq := sequence{
		limit: l,
		start: fakeclock.Epoch.Add(time.Duration(r.Int64N(int64(24*time.Hour))) / time.Microsecond * time.Microsecond),
	}
	emission := max(p/time.Duration(l.Events), time.Microsecond)
	hot := r.IntN(2) == 0 // mostly short advances: many denials
	for range steps {
		var s step
		switch x := r.IntN(100); {
		case x < 30:
		case x < 50:
			s.advance = time.Duration(1+r.Int64N(int64(emission)/1000+1)) * time.Microsecond
		case x < 80 && hot:
			s.advance = time.Duration(r.Int64N(int64(emission)/1000+1)) * time.Microsecond
		case x < 80:
			s.advance = time.Duration(r.Int64N(2*int64(p)/1000+1)) * time.Microsecond
		case x < 90:
			s.advance = time.Duration(1+r.IntN(20)) * p
		case x < 95 && back:
			s.advance = -time.Duration(1+r.Int64N(int64(p)/1000+1)) * time.Microsecond
		default:
			s.advance = time.Microsecond
		}
		s.key = keys[r.IntN(len(keys))]
		s.n = 1
		if r.IntN(10) < 3 {
			s.n = 1 + r.IntN(min(maxN, 1000))
		}
		s.probe = !back && r.IntN(4) == 0
		seq.steps = append(seq.steps, s)
	}
	return seq
}

// runSequence runs seq through a fresh local limiter and a fresh Redis one
// called name (store st must use clk) and fails on the first difference.
//
// A probe step after a denial on the same key also checks that RetryAfter
// is exact: at RetryAfter − 1µs the same request is still denied, at
// RetryAfter it is admitted (no other traffic in between).
func runSequence(t testing.TB, st *distributed.Store, clk *fakeclock.Clock, a algorithm, name string, seq sequence) (c counts) {
	t.Helper()
	ctx := context.Background()
	loc, err := a.local(seq.limit, clk)
	if err != nil {
		t.Fatalf("local %s(%v): %v", a.name, seq.limit, err)
	}
	rem, err := a.redis(st, name, seq.limit)
	if err != nil {
		t.Fatalf("redis %s(%v): %v", a.name, seq.limit, err)
	}
	clk.Set(seq.start)
	var history []string
	fail := func(i int, format string, args ...any) {
		t.Helper()
		from := max(0, len(history)-12)
		t.Fatalf("%s %v, step %d: %s\nlast calls:\n%s", a.name, seq.limit, i, fmt.Sprintf(format, args...),
			strings.Join(history[from:], "\n"))
	}
	call := func(i int, key string, n int) bulwark.Decision {
		t.Helper()
		ld, lerr := loc.Allow(ctx, key, n)
		rd, rerr := rem.Allow(ctx, key, n)
		if lerr != nil || rerr != nil {
			fail(i, "errors: local %v, redis %v", lerr, rerr)
		}
		if ld.Allowed {
			c.allowed++
		} else {
			c.denied++
		}
		history = append(history, fmt.Sprintf("  t=+%v key %.12q n %d -> local %+v", clk.Now().Sub(seq.start), key, n, ld))
		if ld != rd {
			fail(i, "decisions differ:\n  local %+v\n  redis %+v", ld, rd)
		}
		return ld
	}
	type denial struct {
		d  bulwark.Decision
		n  int
		at time.Time
	}
	last := map[string]denial{} // the last decision per key, when a denial
	for i, s := range seq.steps {
		prev, seen := last[s.key]
		if s.probe && seen && !clk.Now().After(prev.at.Add(prev.d.RetryAfter-time.Microsecond)) {
			// Probe: go to RetryAfter - 1µs after the denial, then 1µs
			// more, asking again for the same n each time.
			ra := prev.d.RetryAfter
			if ra <= 0 {
				fail(i, "denied decision without RetryAfter: %+v", prev.d)
			}
			if ra > time.Microsecond {
				clk.Set(prev.at.Add(ra - time.Microsecond))
				if d := call(i, s.key, prev.n); d.Allowed {
					fail(i, "admitted %v before RetryAfter %v", time.Microsecond, ra)
				}
			}
			clk.Set(prev.at.Add(ra))
			if d := call(i, s.key, prev.n); !d.Allowed {
				fail(i, "denied after waiting RetryAfter %v: %+v", ra, d)
			}
			c.probes++
			delete(last, s.key)
			continue
		}
		clk.Advance(s.advance)
		d := call(i, s.key, s.n)
		if d.Allowed {
			delete(last, s.key)
		} else {
			last[s.key] = denial{d, s.n, clk.Now()}
		}
	}
	return c
}

// counts tallies what a sequence did, so tests can show it exercised both
// outcomes.
type counts struct{ allowed, denied, probes int }

func (c *counts) add(o counts) {
	c.allowed += o.allowed
	c.denied += o.denied
	c.probes += o.probes
}

func TestDifferentialStandalone(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	st, _, _ := testStore(t, nil, distributed.WithClock(clk), distributed.WithMinTTL(time.Hour))
	seeds := 24
	if testing.Short() {
		seeds = 4
	}
	for _, a := range algorithms {
		t.Run(a.name, func(t *testing.T) {
			var total counts
			for seed := range seeds {
				r := rand.New(rand.NewPCG(uint64(seed), 0xb01))
				keys := []string{"a", "b"}
				if seed%3 == 0 {
					keys = hostileKeys()[:6]
				}
				seq := randomSequence(r, a, keys, 200, seed%4 == 3)
				total.add(runSequence(t, st, clk, a, fmt.Sprintf("diff-%d", seed), seq))
			}
			t.Logf("%d allowed, %d denied, %d RetryAfter probes", total.allowed, total.denied, total.probes)
			if total.allowed == 0 || total.denied == 0 || total.probes == 0 {
				t.Errorf("sequences did not exercise every outcome: %+v", total)
			}
		})
	}
}
