package bulwarktest

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// Environment variables read by the kit.
const (
	// EnvBackend chooses the backend of servers started without
	// WithBackend: "binary", "container" or "auto" (the default).
	EnvBackend = "BULWARK_TEST_BACKEND"
	// EnvRequireRedis, when set, fails instead of skipping a test that needs
	// the redis-server binary when there is none.
	EnvRequireRedis = redistest.EnvRequireRedis
	// EnvRequireDocker, when set, fails instead of skipping a test that
	// needs a Docker engine when none answers.
	EnvRequireDocker = "BULWARK_REQUIRE_DOCKER"
	// EnvServerPath names the redis-server binary to use instead of the one
	// on PATH (the Binary backend, and the source of LocalImage).
	EnvServerPath = redistest.EnvServerPath
)

// Backend says where the kit runs its servers.
type Backend int

const (
	// Auto uses Binary when a redis-server binary is installed and
	// Container otherwise.
	Auto Backend = iota
	// Binary runs the redis-server binary as child processes of the test.
	Binary
	// Container runs every server in a Docker container started through
	// testcontainers-go, on the host's network.
	Container
)

// String returns "auto", "binary" or "container".
func (b Backend) String() string {
	switch b {
	case Auto:
		return "auto"
	case Binary:
		return "binary"
	case Container:
		return "container"
	}
	return fmt.Sprintf("Backend(%d)", int(b))
}

// ParseBackend parses the names String returns.
func ParseBackend(s string) (Backend, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return Auto, nil
	case "binary":
		return Binary, nil
	case "container", "docker":
		return Container, nil
	}
	return Auto, fmt.Errorf("bulwarktest: unknown backend %q: want binary, container or auto", s)
}

// Backends lists the backends a test table can run over: Binary and
// Container.
var Backends = []Backend{Binary, Container}

// Option configures StartRedis, StartCluster and StartSentinel.
type Option func(*config)

type config struct {
	backend    Backend
	hasBackend bool
	image      string
	args       []string
	port       int
	masters    int
	replicas   int
	hasRepl    bool
}

// WithBackend chooses the backend (default: EnvBackend, else Auto).
func WithBackend(b Backend) Option { return func(c *config) { c.backend, c.hasBackend = b, true } }

// WithImage runs the Container backend on image (for example "redis:7",
// pulled by Docker when it is missing) instead of LocalImage. The image must
// run "redis-server" given as its command, as the official image does. It
// implies the Container backend unless WithBackend says otherwise.
func WithImage(image string) Option {
	return func(c *config) {
		c.image = image
		if !c.hasBackend {
			c.backend = Container
		}
	}
}

// WithArgs appends redis.conf directives to the command line of every
// server, e.g. WithArgs("--maxmemory", "2mb"). Not for Sentinel.
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// WithPort makes Redis listen on port instead of a free one; the test fails
// with an error saying the port is taken when it is in use. Only for StartRedis.
func WithPort(port int) Option { return func(c *config) { c.port = port } }

// WithMasters sets the number of masters of a Cluster (default 3).
func WithMasters(n int) Option { return func(c *config) { c.masters = n } }

// WithReplicas sets the replicas per master of a Cluster (default 0) or of
// the master of a Sentinel deployment (default 1).
func WithReplicas(n int) Option { return func(c *config) { c.replicas, c.hasRepl = n, true } }

func buildConfig(tb testing.TB, opts []Option) *config {
	tb.Helper()
	c := &config{}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	if !c.hasBackend && c.image == "" {
		b, err := ParseBackend(os.Getenv(EnvBackend))
		if err != nil {
			tb.Fatalf("%v (from %s)", err, EnvBackend)
		}
		c.backend = b
	}
	if c.backend < Auto || c.backend > Container {
		tb.Fatalf("bulwarktest: invalid backend %v", c.backend)
	}
	return c
}

// runner returns the redistest runner of the configured backend, skipping or
// failing the test when the backend cannot run here.
func (c *config) runner(tb testing.TB) redistest.Runner {
	tb.Helper()
	b := c.backend
	if b == Auto {
		b = autoBackend()
	}
	if b == Binary {
		return redistest.BinaryRunner(redistest.RequireServer(tb))
	}
	return containerRunnerFor(tb, c.image)
}

// autoBackend is Binary when redis-server can be found, else Container.
func autoBackend() Backend {
	if p := os.Getenv(EnvServerPath); p != "" {
		if _, err := os.Stat(p); err == nil {
			return Binary
		}
	}
	if _, err := exec.LookPath("redis-server"); err == nil {
		return Binary
	}
	return Container
}
