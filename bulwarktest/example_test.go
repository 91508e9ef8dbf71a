package bulwarktest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/bulwarktest"
	"github.com/bulwark-go/bulwark/distributed"
)

// backBound is how soon after Redis comes back the service must decide on
// Redis again: the store stays degraded at least a second
// (distributed.DefaultMinDegraded) and needs two good probes 250ms apart;
// the rest is room for a busy machine.
const backBound = 5 * time.Second

// replica is one replica of a small HTTP service: a fleet-wide limit of
// 1000 requests per second on every route, kept in Redis, in front of a
// handler that says hello.
func replica(t testing.TB, redisAddr string) *httptest.Server {
	t.Helper()
	client := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: redisAddr}, 500*time.Millisecond))
	t.Cleanup(func() { _ = client.Close() })
	store, err := distributed.New(client,
		distributed.WithPrefix("example"),
		distributed.WithTimeout(500*time.Millisecond),
		distributed.WithReplicas(2)) // while Redis is away, each replica enforces half
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	limiter, err := store.TokenBucket("api", bulwark.PerSecond(1000))
	if err != nil {
		t.Fatal(err)
	}
	limit, err := bulwarkhttp.Limit(limiter, bulwarkhttp.KeyByRoute(), bulwarkhttp.WithDegradedHeader("X-Limit-Degraded"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(limit(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello\n")
	})))
	t.Cleanup(srv.Close)
	return srv
}

// checkOutage is the test: two replicas under load while the kit cuts
// Redis for a second, on the server opts describe. In a test file it is a
// Test function's body (func TestOutage(t *testing.T) { checkOutage(t) }).
func checkOutage(t testing.TB, opts ...bulwarktest.Option) {
	srv := bulwarktest.StartRedis(t, opts...)
	proxy := srv.Proxy(t) // the replicas reach Redis through the proxy
	replicas := []*httptest.Server{replica(t, proxy.Addr()), replica(t, proxy.Addr())}

	httpClient := &http.Client{Timeout: 2 * time.Second}
	t.Cleanup(httpClient.CloseIdleConnections)
	load := bulwarktest.StartLoad(t, 4, time.Millisecond, func(ctx context.Context) (bool, error) {
		target := replicas[time.Now().UnixNano()%2]
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.URL+"/hello", nil)
		if err != nil {
			return false, err
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusTooManyRequests {
			return false, fmt.Errorf("status %d", resp.StatusCode)
		}
		return resp.Header.Get("X-Limit-Degraded") == "1", nil
	})

	// On Redis first, then Redis away for a second, then back.
	load.WaitFor(t, time.Time{}, 10*time.Second, func(a bulwarktest.Answer) bool { return !a.Degraded })
	outage := proxy.Schedule(t, bulwarktest.At(0, bulwarktest.Cut), bulwarktest.At(time.Second, bulwarktest.Heal))
	outage.Wait()
	steps := outage.Applied()
	cut, heal := steps[0].At, steps[1].At
	load.WaitFor(t, heal.Add(backBound), 2*backBound, func(bulwarktest.Answer) bool { return true })
	rec := load.Stop()

	rec.NoErrors(t)                    // every request was answered
	rec.DegradedDuring(t, cut, heal)   // and said so while Redis was away
	rec.BackWithin(t, heal, backBound) // and went back to Redis in time
	rec.MaxLatency(t, 2*time.Second)   // nobody waited long
}

// An HTTP service with a fleet-wide rate limit keeps answering while the kit
// cuts its Redis, flags every answer of that time as degraded, and decides
// on Redis again within a bound after Redis comes back.
func Example() {
	if err := bulwarktest.Run("outage", func(t testing.TB) { checkOutage(t) }); err != nil {
		fmt.Fprintln(os.Stderr, err)
		fmt.Println("FAIL")
		return
	}
	fmt.Println("no errors; every answer during the cut degraded; back on Redis within", backBound)
	// Output:
	// no errors; every answer during the cut degraded; back on Redis within 5s
}
