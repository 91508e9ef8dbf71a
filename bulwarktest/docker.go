package bulwarktest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// Labels the kit puts on every container it starts. A container whose
// LabelPID process no longer runs on the LabelHost host was left behind by a
// test binary that was killed; the kit removes such containers the first
// time it connects to the engine.
const (
	LabelKit  = "org.bulwark-go.bulwarktest"      // "1"
	LabelPID  = "org.bulwark-go.bulwarktest.pid"  // the test binary's process id
	LabelHost = "org.bulwark-go.bulwarktest.host" // the test binary's host name
)

// EngineTimeout bounds how long the kit waits for the Docker engine to
// answer before it counts the engine as down.
const EngineTimeout = 10 * time.Second

// ErrNoEngine is wrapped by the error of a Docker engine that cannot be
// reached.
var ErrNoEngine = errors.New("no Docker engine")

// engine is the process's connection to the Docker engine.
type engine struct {
	cli *testcontainers.DockerClient
}

var shared struct {
	mu  sync.Mutex
	eng *engine
}

func init() {
	// The reaper (Ryuk) is an image from a registry; the kit removes its
	// containers itself.
	if _, ok := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !ok {
		_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
}

// connectEngine connects to the engine testcontainers-go finds (DOCKER_HOST,
// ~/.testcontainers.properties, the default socket) or to the one opts
// name, and checks that it answers.
func connectEngine(ctx context.Context, opts ...client.Opt) (*engine, error) {
	ctx, cancel := context.WithTimeout(ctx, EngineTimeout)
	defer cancel()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoEngine, err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("%w at %s: %v", ErrNoEngine, cli.DaemonHost(), err)
	}
	return &engine{cli: cli}, nil
}

// sharedEngine returns the process's engine connection, connecting (and
// removing containers left behind by dead test binaries) the first time.
// A failure is not remembered: a later call tries again.
func sharedEngine() (*engine, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.eng != nil {
		return shared.eng, nil
	}
	e, err := connectEngine(context.Background())
	if err != nil {
		return nil, err
	}
	e.sweep(context.Background())
	shared.eng = e
	return e, nil
}

// closeEngine closes the shared connection (Main calls it before the leak
// check, so no idle HTTP connection goroutine is left).
func closeEngine() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.eng != nil {
		_ = shared.eng.cli.Close()
		shared.eng = nil
	}
}

// RequireDocker returns when a Docker engine answers. When none does, it
// skips the test with a message saying how to get one, or fails it when
// EnvRequireDocker is set.
func RequireDocker(tb testing.TB) {
	tb.Helper()
	if _, err := sharedEngine(); err != nil {
		noEngine(tb, err)
	}
}

func noEngine(tb testing.TB, err error) {
	tb.Helper()
	const how = "start one (Linux: dockerd, or .ci/docker-setup.sh in the bulwark repository; set DOCKER_HOST for another engine) or use the binary backend"
	if os.Getenv(EnvRequireDocker) != "" {
		tb.Fatalf("bulwarktest: %v; %s is set, so tests that need Docker must run: %s", err, EnvRequireDocker, how)
		return
	}
	tb.Skipf("bulwarktest: %v; skipping a test that needs Docker (%s; set %s=1 to make this a failure)", err, how, EnvRequireDocker)
}

// sweep removes containers of the kit left behind on this host by test
// binaries that no longer run.
func (e *engine) sweep(ctx context.Context) {
	host, _ := os.Hostname()
	ctx, cancel := context.WithTimeout(ctx, EngineTimeout)
	defer cancel()
	res, err := e.cli.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", LabelKit+"=1", LabelHost+"="+host),
	})
	if err != nil {
		return
	}
	for _, c := range res.Items {
		pid, err := strconv.Atoi(c.Labels[LabelPID])
		if err != nil || pid == os.Getpid() || processRuns(pid) {
			continue
		}
		_, _ = e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
}

// processRuns reports whether a process with this id exists.
func processRuns(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// kitLabels are the labels of a container started now.
func kitLabels() map[string]string {
	host, _ := os.Hostname()
	return map[string]string{
		LabelKit:  "1",
		LabelPID:  strconv.Itoa(os.Getpid()),
		LabelHost: host,
	}
}
