// Command quickstart is the README's complete program: a fleet-wide limit
// of 10 requests a second (bursts of 20) per tenant, shared through Redis
// by every replica, with Prometheus metrics. REDIS_URL names the Redis
// (default redis://127.0.0.1:6379/0), ADDR the listen address (:8080).
package main

import (
	"log"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkhttp"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/telemetry/bulwarkprom"
)

func main() {
	opt := must(redis.ParseURL(env("REDIS_URL", "redis://127.0.0.1:6379/0")))
	metrics := must(bulwarkprom.New(prometheus.DefaultRegisterer))
	store := must(distributed.New(redis.NewClient(distributed.ClientOptions(opt, 0)), distributed.WithObserver(metrics)))
	perTenant := must(store.TokenBucket("api", bulwark.PerSecond(10).WithBurst(20)))
	limit := must(bulwarkhttp.Limit(perTenant, bulwarkhttp.KeyByHeader("X-Tenant"), bulwarkhttp.WithName("api")))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	mux.Handle("/", limit(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hello\n")) })))
	log.Fatal(http.ListenAndServe(env("ADDR", ":8080"), mux))
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
