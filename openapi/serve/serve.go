// Package serve is the one-call way to run a service behind the policies
// its OpenAPI document declares: a spec, a Redis URL and a handler in, a
// protected handler with Prometheus metrics out.
//
//	srv, err := serve.New("openapi.yaml", os.Getenv("REDIS_URL"), mux)
//	if err != nil {
//		log.Fatal(err)
//	}
//	defer srv.Close()
//	log.Fatal(http.ListenAndServe(":8080", srv))
//
// It lives apart from package openapi so that a program using openapi
// alone does not link the Prometheus client: only this package imports the
// bulwarkprom module.
package serve

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/openapi"
	"github.com/bulwark-go/bulwark/telemetry/bulwarkprom"
)

// The paths Server answers itself, before the policies.
const (
	MetricsPath = "/metrics"
	HealthPath  = "/healthz"
)

// Option configures New.
type Option func(*config)

type config struct {
	prefix string
	api    []openapi.Option
	reg    *prometheus.Registry
}

// WithPrefix sets the Redis key prefix of the fleet-wide state (default
// "bulwark:" followed by the document's info.title in lower case, letters,
// digits and dashes only), which every replica of the service must share.
func WithPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithOptions passes options on to openapi's Middleware (trusted proxies,
// a reject handler, a stack hook, ...).
func WithOptions(opts ...openapi.Option) Option {
	return func(c *config) { c.api = append(c.api, opts...) }
}

// WithRegistry makes /metrics serve reg, with bulwark's metrics registered
// on it, instead of a registry of the Server's own (which also holds the
// Go and process collectors).
func WithRegistry(reg *prometheus.Registry) Option { return func(c *config) { c.reg = reg } }

// Server is a protected handler: GET /metrics (Prometheus text format),
// GET /healthz ("ok", or 503 "degraded" while Redis is unreachable and the
// policies decide locally), and every other request through the document's
// policies to the handler given to New.
type Server struct {
	mux      *http.ServeMux
	store    *distributed.Store
	client   *redis.Client
	API      *openapi.API
	Registry *prometheus.Registry
}

var notSlug = regexp.MustCompile(`[^a-z0-9-]+`)

// New loads the document at specPath (rejecting it whole when any x-bulwark
// or x-telstra block is wrong), connects to the Redis at redisURL
// ("redis://[:password@]host:port/db", or "rediss://" for TLS) for the
// fleet-wide policies, and returns the Server wrapping h. An empty redisURL
// keeps every policy local to the process. New does not wait for Redis:
// while it is unreachable the fleet-wide policies decide locally (see
// package distributed), and /healthz says so.
func New(specPath, redisURL string, h http.Handler, opts ...Option) (*Server, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: serve: nil handler", bulwark.ErrInvalidConfig)
	}
	api, err := openapi.Load(specPath)
	if err != nil {
		return nil, err
	}
	return NewAPI(api, redisURL, h, opts...)
}

// NewAPI is New for a document already loaded (for instance parsed from an
// embedded copy with openapi.Parse).
func NewAPI(api *openapi.API, redisURL string, h http.Handler, opts ...Option) (*Server, error) {
	if api == nil || h == nil {
		return nil, fmt.Errorf("%w: serve: nil API or handler", bulwark.ErrInvalidConfig)
	}
	cfg := &config{}
	for _, o := range opts {
		if o != nil {
			o(cfg)
		}
	}
	s := &Server{API: api, Registry: cfg.reg, mux: http.NewServeMux()}
	if s.Registry == nil {
		s.Registry = prometheus.NewRegistry()
		s.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	obs, err := bulwarkprom.New(s.Registry)
	if err != nil {
		return nil, err
	}
	mwOpts := append([]openapi.Option{openapi.WithObserver(obs)}, cfg.api...)
	if redisURL != "" {
		ropts, err := redis.ParseURL(redisURL)
		if err != nil {
			return nil, fmt.Errorf("%w: serve: redis URL: %v", bulwark.ErrInvalidConfig, err)
		}
		s.client = redis.NewClient(distributed.ClientOptions(ropts, 0))
		prefix := cfg.prefix
		if prefix == "" {
			title := ""
			if info := api.Document().Info; info != nil {
				title = strings.Trim(notSlug.ReplaceAllString(strings.ToLower(info.Title), "-"), "-")
			}
			prefix = strings.TrimSuffix("bulwark:"+title, ":")
		}
		s.store, err = distributed.New(s.client, distributed.WithPrefix(prefix), distributed.WithObserver(obs))
		if err != nil {
			_ = s.client.Close()
			return nil, err
		}
		mwOpts = append(mwOpts, openapi.WithStore(s.store))
	}
	mw, err := api.Middleware(mwOpts...)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	s.mux.Handle("GET "+MetricsPath, promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET "+HealthPath, s.health)
	s.mux.Handle("/", mw(h))
	return s, nil
}

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.store != nil && !s.store.Healthy() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("degraded\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops the fleet-wide policies and closes the Redis client.
func (s *Server) Close() error {
	var errs []error
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	if s.client != nil {
		errs = append(errs, s.client.Close())
	}
	return errors.Join(errs...)
}
