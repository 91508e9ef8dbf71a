package distributed_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// TestLeasedTokenBucket: on a fake clock, a replica leases tokens, spends
// them without Redis, is denied locally after a denial from Redis, gives
// back what it holds on Close, and the plain token bucket of the same name
// sees the same bucket.
func TestLeasedTokenBucket(t *testing.T) {
	ctx := context.Background()
	clk := fakeclock.New(fakeclock.Epoch)
	st, _, _ := testStore(t, nil, distributed.WithClock(clk))
	l := bulwark.Limit{Events: 10, Period: time.Second, Burst: 20}
	lb, err := st.LeasedTokenBucket("lease", l, distributed.WithMaxLease(8), distributed.WithLeaseHorizon(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := st.TokenBucket("lease", l)
	if err != nil {
		t.Fatal(err)
	}
	admitted := 0
	allow := func(n int) bulwark.Decision {
		t.Helper()
		d, err := lb.Allow(ctx, "k", n)
		if err != nil || d.Degraded {
			t.Fatalf("Allow: %+v, %v", d, err)
		}
		if d.Allowed {
			admitted += n
		}
		return d
	}
	// The first lease is n tokens (no demand known yet); then demand grows
	// the leases, up to 8.
	if d := allow(1); !d.Allowed || d.Remaining != 0 || lb.RedisCalls() != 1 {
		t.Fatalf("first: %+v, %d calls", d, lb.RedisCalls())
	}
	for range 19 {
		allow(1)
		clk.Advance(time.Millisecond)
	}
	if admitted != 20 {
		t.Fatalf("admitted %d of the 20-token burst", admitted)
	}
	calls := lb.RedisCalls()
	if calls > 10 {
		t.Errorf("%d Redis calls for 20 decisions", calls)
	}
	// The bucket is empty: denied by Redis, then locally until RetryAfter.
	d := allow(1)
	if d.Allowed || d.RetryAfter <= 0 {
		t.Fatalf("empty bucket: %+v", d)
	}
	calls = lb.RedisCalls()
	for range 5 {
		if d := allow(1); d.Allowed {
			t.Fatalf("admitted while denied locally: %+v", d)
		}
	}
	if lb.RedisCalls() != calls {
		t.Errorf("local denials made %d Redis calls", lb.RedisCalls()-calls)
	}
	if pd, _ := plain.Allow(ctx, "k", 1); pd.Allowed {
		t.Errorf("the plain bucket of the same name admitted: %+v", pd)
	}
	// 1s later, 10 tokens are back: a lease takes up to 8 of them.
	clk.Advance(time.Second)
	d = allow(1)
	if !d.Allowed {
		t.Fatalf("after a refill: %+v", d)
	}
	held := d.Remaining
	if held < 1 || held > 7 {
		t.Fatalf("holding %d tokens, want 1..7", held)
	}
	if err := lb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Allow(ctx, "k", 1); !errors.Is(err, distributed.ErrClosed) {
		t.Errorf("Allow after Close: %v", err)
	}
	// Close gave the held tokens back: 10 refilled, 1 spent, so 9 remain
	// for the plain bucket (the denied calls above took nothing).
	got := 0
	for {
		pd, err := plain.Allow(ctx, "k", 1)
		if err != nil {
			t.Fatal(err)
		}
		if !pd.Allowed {
			break
		}
		got++
	}
	if got != 9 {
		t.Errorf("after Close the plain bucket admitted %d, want 9 (held %d given back)", got, held)
	}
}

// TestLeasedTokenBucketTTL: tokens in hand expire, and go back with the
// next lease.
func TestLeasedTokenBucketTTL(t *testing.T) {
	ctx := context.Background()
	clk := fakeclock.New(fakeclock.Epoch)
	st, _, _ := testStore(t, nil, distributed.WithClock(clk))
	l := bulwark.Limit{Events: 1, Period: time.Hour, Burst: 10}
	lb, err := st.LeasedTokenBucket("ttl", l, distributed.WithMaxLease(10), distributed.WithLeaseTTL(time.Second), distributed.WithLeaseHorizon(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lb.Close() })
	for range 3 {
		if d, err := lb.Allow(ctx, "k", 1); err != nil || !d.Allowed {
			t.Fatalf("%+v, %v", d, err)
		}
		clk.Advance(10 * time.Millisecond)
	}
	// 3 admitted of 10; a lease holds most of the rest. Past the TTL the
	// held tokens are void and go back: 7 remain for anyone.
	clk.Advance(2 * time.Second)
	admitted := 0
	for range 20 {
		d, err := lb.Allow(ctx, "k", 1)
		if err != nil || d.Degraded {
			t.Fatalf("%+v, %v", d, err)
		}
		if d.Allowed {
			admitted++
		}
	}
	if admitted != 7 {
		t.Errorf("after the TTL admitted %d, want the 7 left", admitted)
	}
}

// TestLeasedTokenBucketDegraded: without Redis, decisions follow the
// failure policy and are flagged Degraded.
func TestLeasedTokenBucketDegraded(t *testing.T) {
	c := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: "127.0.0.1:1"}, 100*time.Millisecond))
	t.Cleanup(func() { _ = c.Close() })
	st, err := distributed.New(c, distributed.WithTimeout(100*time.Millisecond), distributed.WithFailureThreshold(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	lb, err := st.LeasedTokenBucket("down", bulwark.Limit{Events: 5, Period: time.Minute}, distributed.WithLeaseFailurePolicy(distributed.FailLocal))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lb.Close() })
	admitted := 0
	for range 10 {
		d, err := lb.Allow(context.Background(), "k", 1)
		if err != nil || !d.Degraded {
			t.Fatalf("%+v, %v; want a degraded decision", d, err)
		}
		if d.Allowed {
			admitted++
		}
	}
	if admitted != 5 {
		t.Errorf("degraded twin admitted %d, want 5", admitted)
	}
}

func TestLeasedTokenBucketRejectsBadConfig(t *testing.T) {
	st, _, _ := testStore(t, nil)
	l := bulwark.PerSecond(10)
	for _, opt := range []distributed.LeaseOption{
		distributed.WithLeaseHorizon(0), distributed.WithLeaseTTL(0), distributed.WithMaxLease(-1), distributed.WithMaxLease(11),
	} {
		if _, err := st.LeasedTokenBucket("bad", l, opt); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("got %v, want ErrInvalidConfig", err)
		}
	}
	if _, err := st.LeasedTokenBucket("bad", bulwark.Limit{}); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("zero limit: %v", err)
	}
	lb, err := st.LeasedTokenBucket("ok", l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lb.Close() })
	for _, n := range []int{0, -1, 11} {
		if _, err := lb.Allow(context.Background(), "k", n); !errors.Is(err, bulwark.ErrInvalidArgument) {
			t.Errorf("n=%d: %v", n, err)
		}
	}
}

// The limit of the process test: 400 per second, burst 40; each replica
// holds at most 10 tokens.
var leaseProcLimit = bulwark.Limit{Events: 400, Period: time.Second, Burst: 40}

const (
	leaseProcMax      = 10
	leaseProcReplicas = 3
)

// TestLeasedTokenBucketProcesses runs three processes, each a replica with
// a leased token bucket on one key of one Redis, asking as fast as they
// can for a while, and checks the over-admission bounds at every
// admission: from the start up to any admission at time T, all replicas
// together admitted at most Burst + Rate·T; over any window between two
// admissions, at most Burst + Rate·T + replicas·k. It also checks that
// leasing served many decisions per Redis call.
func TestLeasedTokenBucketProcesses(t *testing.T) {
	if redistest.IsChild() && os.Getenv("BULWARK_LEASE_CHILD") == "1" {
		leaseChild(t)
		return
	}
	srv := redistest.StartServer(t)
	start := time.Now()
	type result struct {
		times     []int64
		decisions int64
		calls     int64
		err       error
	}
	results := make(chan result, leaseProcReplicas)
	for i := range leaseProcReplicas {
		cmd := redistest.Child(t, "TestLeasedTokenBucketProcesses", "BULWARK_LEASE_CHILD=1",
			"BULWARK_LEASE_ADDR="+srv.Addr(), "BULWARK_LEASE_RUN=1500ms")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			var r result
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				switch {
				case len(f) == 2 && f[0] == "admit":
					v, _ := strconv.ParseInt(f[1], 10, 64)
					r.times = append(r.times, v)
				case len(f) == 3 && f[0] == "done":
					r.decisions, _ = strconv.ParseInt(f[1], 10, 64)
					r.calls, _ = strconv.ParseInt(f[2], 10, 64)
				}
			}
			if err := cmd.Wait(); err != nil {
				r.err = fmt.Errorf("replica %d: %v\n%s", i, err, stderr.String())
			}
			results <- r
		}()
	}
	var all []int64
	var decisions, calls int64
	for range leaseProcReplicas {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		all = append(all, r.times...)
		decisions += r.decisions
		calls += r.calls
	}
	slices.Sort(all)
	rate := float64(leaseProcLimit.Events) / leaseProcLimit.Period.Seconds() / 1e6 // per µs
	burst := float64(leaseProcLimit.Capacity())
	t0 := start.UnixMicro()
	for i, ts := range all {
		if bound := burst + rate*float64(ts-t0); float64(i+1) > bound {
			t.Fatalf("admission %d at +%dµs: over the bound Burst + Rate·T = %.1f", i+1, ts-t0, bound)
		}
	}
	slack := float64(leaseProcReplicas * leaseProcMax)
	for i := range all {
		for j := i; j < len(all); j++ {
			if bound := burst + rate*float64(all[j]-all[i]) + slack; float64(j-i+1) > bound {
				t.Fatalf("admissions %d..%d over %dµs: %d, over the window bound %.1f", i, j, all[j]-all[i], j-i+1, bound)
			}
		}
	}
	elapsed := time.Since(start)
	t.Logf("%d replicas: %d admitted in %v (allowed at most %.0f), %d decisions, %d Redis calls (%.1f decisions per call)",
		leaseProcReplicas, len(all), elapsed.Round(time.Millisecond), burst+rate*float64(elapsed.Microseconds()),
		decisions, calls, float64(decisions)/float64(max(calls, 1)))
	if len(all) < leaseProcLimit.Capacity() {
		t.Errorf("admitted only %d: not even the burst", len(all))
	}
	if calls == 0 || decisions/calls < 10 {
		t.Errorf("%d decisions for %d Redis calls: want at least 10 per call", decisions, calls)
	}
}

// leaseChild is one replica of TestLeasedTokenBucketProcesses: it asks for
// one token at a time for BULWARK_LEASE_RUN, printing "admit <µs>" after
// each admission and "done <decisions> <redis calls>" at the end.
func leaseChild(t *testing.T) {
	run, err := time.ParseDuration(os.Getenv("BULWARK_LEASE_RUN"))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: os.Getenv("BULWARK_LEASE_ADDR")}, 2*time.Second))
	defer c.Close()
	st, err := distributed.New(c, distributed.WithPrefix("lease-proc"), distributed.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lb, err := st.LeasedTokenBucket("api", leaseProcLimit, distributed.WithMaxLease(leaseProcMax))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	ctx := context.Background()
	var decisions int64
	for end := time.Now().Add(run); time.Now().Before(end); {
		d, err := lb.Allow(ctx, "k", 1)
		if err != nil || d.Degraded {
			t.Fatalf("%+v, %v", d, err)
		}
		decisions++
		if d.Allowed {
			fmt.Fprintf(w, "admit %d\n", time.Now().UnixMicro())
		}
		if decisions%64 == 0 {
			time.Sleep(100 * time.Microsecond) // leave the other replicas some CPU
		}
	}
	if err := lb.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "done %d %d\n", decisions, lb.RedisCalls())
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}
