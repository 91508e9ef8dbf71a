// Command httpservice is a small HTTP service protected by bulwark
// middleware, with Prometheus metrics:
//
//   - each route (/ and /work) has a rate limit of 20 requests per second
//     (bulwarkhttp.Limit keyed by route), shared by all replicas through
//     Redis when REDIS_URL is set, per process otherwise;
//   - /work calls a fragile upstream through a circuit breaker
//     (bulwarkhttp.Breaker), also fleet-wide with Redis: add ?fail=1 to make
//     the upstream fail; three failures in a row open the breaker for 10s;
//   - /metrics serves the bulwark metrics (bulwarkprom.New) and the
//     Go runtime's.
//
// Run it:
//
//	go run ./examples/httpservice -selftest                 # starts, sends requests, prints what happened, exits
//	PORT=8080 go run ./examples/httpservice                  # serves until interrupted
//	REDIS_URL=redis://127.0.0.1:6379 go run ./examples/httpservice
//
// docker-compose.yml at the repository root runs three replicas of it
// against one Redis, scraped by Prometheus.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/telemetry/bulwarkprom"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// The service's policies.
var (
	limit   = bulwark.PerSecond(20)
	breaker = bulwark.BreakerConfig{
		Window:              10 * time.Second,
		MinimumCalls:        10,
		FailureRate:         0.5,
		ConsecutiveFailures: 3,
		OpenFor:             10 * time.Second,
		HalfOpenCalls:       2,
	}
)

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("httpservice", flag.ContinueOnError)
	fs.SetOutput(out)
	addr := fs.String("addr", ":"+envOr("PORT", "8080"), "listen address (default from $PORT)")
	redisURL := fs.String("redis", os.Getenv("REDIS_URL"), "Redis URL to share limits and breaker with other replicas (default $REDIS_URL; empty: per process)")
	keyPrefix := fs.String("prefix", "httpservice", "Redis key prefix of the shared state (replicas of one service use the same)")
	selftest := fs.Bool("selftest", false, "listen on a free loopback port, send a few requests, print the results and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	svc, err := newService(ctx, *redisURL, *keyPrefix, reg)
	if err != nil {
		return err
	}
	defer svc.Close()
	if *selftest {
		*addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: svc.Handler, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(out, "httpservice (%s) listening on %s\n", svc.Mode, ln.Addr())

	if *selftest {
		err = selfTest(ctx, "http://"+ln.Addr().String(), out)
	} else {
		<-ctx.Done()
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutdown); serr != nil && err == nil {
		err = serr
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// service is the HTTP handler and what it must close.
type service struct {
	Handler http.Handler
	Mode    string // "local" or "shared through Redis at host:port"
	closers []func() error
}

// Close releases the limiter, breaker, membership and client.
func (s *service) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
}

// newService builds the handler: a local limiter and breaker when redisURL
// is empty, Redis-backed ones under prefix otherwise. Metrics go to reg.
func newService(ctx context.Context, redisURL, prefix string, reg *prometheus.Registry) (*service, error) {
	metrics, err := bulwarkprom.New(reg)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(collectors.NewGoCollector())
	svc := &service{}
	var lim bulwark.Limiter
	var br bulwark.Breaker
	if redisURL == "" {
		svc.Mode = "local"
		if lim, err = local.NewSlidingWindow(limit, local.WithName("api"), local.WithObserver(metrics)); err != nil {
			return nil, err
		}
		if br, err = local.NewBreaker(breaker, local.WithName("upstream"), local.WithObserver(metrics)); err != nil {
			return nil, err
		}
	} else {
		opt, err := redis.ParseURL(redisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL %q: %w", redisURL, err)
		}
		svc.Mode = "shared through Redis at " + opt.Addr
		client := redis.NewClient(distributed.ClientOptions(opt, 0))
		svc.closers = append(svc.closers, client.Close)
		// The replicas count each other, so that while Redis is away each
		// one enforces its fair share of the limit.
		members, err := cluster.Join(client, cluster.WithPrefix(prefix))
		if err != nil {
			svc.Close()
			return nil, err
		}
		svc.closers = append(svc.closers, members.Close)
		store, err := distributed.New(client, distributed.WithPrefix(prefix),
			distributed.WithObserver(metrics), distributed.WithReplicaCounter(members))
		if err != nil {
			svc.Close()
			return nil, err
		}
		svc.closers = append(svc.closers, store.Close)
		if lim, err = store.SlidingWindow("api", limit); err != nil {
			svc.Close()
			return nil, err
		}
		if br, err = store.Breaker("upstream", breaker); err != nil {
			svc.Close()
			return nil, err
		}
	}
	limitMW, err := bulwarkhttp.Limit(lim, bulwarkhttp.WithName("api"), bulwarkhttp.WithObserver(metrics),
		bulwarkhttp.WithPolicy("api", limit.Period), bulwarkhttp.KeyByRoute(),
		bulwarkhttp.WithDegradedHeader("Bulwark-Degraded"))
	if err != nil {
		svc.Close()
		return nil, err
	}
	breakerMW, err := bulwarkhttp.Breaker(br, bulwarkhttp.WithName("upstream"), bulwarkhttp.WithObserver(metrics))
	if err != nil {
		svc.Close()
		return nil, err
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", limitMW(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})))
	mux.Handle("GET /work", limitMW(breakerMW(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") == "1" { // the upstream fails
			http.Error(w, "upstream failed", http.StatusBadGateway)
			return
		}
		fmt.Fprintln(w, "upstream answered")
	}))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	svc.Handler = mux
	return svc, nil
}

// selfTest sends a burst to /, failing calls to /work, and reads /metrics.
func selfTest(ctx context.Context, base string, out io.Writer) error {
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
		if err != nil {
			return 0, "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	codes := map[int]int{}
	for range 30 {
		code, _, err := get("/")
		if err != nil {
			return err
		}
		codes[code]++
	}
	fmt.Fprintf(out, "30 requests to /: %d answered 200, %d refused 429 (limit %v)\n", codes[200], codes[429], limit)

	var seq []string
	for range 5 {
		code, _, err := get("/work?fail=1")
		if err != nil {
			return err
		}
		seq = append(seq, fmt.Sprint(code))
	}
	fmt.Fprintf(out, "5 failing calls to /work: %s (3 failures in a row open the breaker fleet-wide)\n", strings.Join(seq, " "))

	code, body, err := get("/metrics")
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("/metrics answered %d", code)
	}
	fmt.Fprintln(out, "from /metrics:")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "bulwark_decisions_total{") || strings.HasPrefix(line, "bulwark_breaker_state{") ||
			strings.HasPrefix(line, "bulwark_breaker_rejected_total{") {
			fmt.Fprintln(out, " ", line)
		}
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
