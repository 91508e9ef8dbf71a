package bulwarktest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// ContainerStartTimeout bounds the start of one container (not its
// server's readiness, which the server start waits for).
const ContainerStartTimeout = time.Minute

// containerRunner starts each server as a container of image on the host's
// network, with the server's directory mounted at the same path and the
// test's user and group, so the files it writes stay the test's.
type containerRunner struct {
	eng   *engine
	image string
	log   tclog.Logger
}

// containerRunnerFor returns the runner of the Container backend, skipping
// or failing the test when no engine answers and failing it when the image
// cannot be had.
func containerRunnerFor(tb testing.TB, image string) redistest.Runner {
	tb.Helper()
	e, err := sharedEngine()
	if err != nil {
		noEngine(tb, err)
		return nil
	}
	if image == "" {
		image = LocalImage
	}
	ctx, cancel := context.WithTimeout(context.Background(), ImageBuildTimeout)
	defer cancel()
	if image == LocalImage {
		requireImageSource(ctx, tb, e, image)
	}
	if err := e.ensureImage(ctx, image); err != nil {
		tb.Fatalf("bulwarktest: image %s: %v", image, err)
	}
	return &containerRunner{eng: e, image: image, log: quietLogger{}}
}

// requireImageSource skips the test, or fails it when EnvRequireDocker or
// EnvRequireRedis is set, when image (LocalImage) is missing and there is
// no redis-server binary to build it from.
func requireImageSource(ctx context.Context, tb testing.TB, e *engine, image string) {
	tb.Helper()
	if _, err := e.cli.ImageInspect(ctx, image); err == nil {
		return
	}
	_, err := serverBinary()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("bulwarktest: the image %s is missing and there is no redis-server binary to build it from (%v): install redis-server, or pass WithImage(\"redis:7\") where a registry can be reached", image, err)
	if os.Getenv(EnvRequireDocker) != "" || os.Getenv(EnvRequireRedis) != "" {
		tb.Fatalf("%s; %s or %s is set, so the test must run", msg, EnvRequireDocker, EnvRequireRedis)
		return
	}
	tb.Skipf("%s; set %s=1 to make this a failure", msg, EnvRequireDocker)
}

func (r *containerRunner) String() string { return "container of " + r.image }

func (r *containerRunner) Start(dir string, args []string, stdout string) (redistest.Process, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ContainerStartTimeout)
	defer cancel()
	user := strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid())
	req := testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:  r.image,
			Cmd:    append([]string{"redis-server"}, args...),
			Labels: kitLabels(),
			ConfigModifier: func(c *container.Config) {
				c.User = user
				c.WorkingDir = dir
			},
			HostConfigModifier: func(hc *container.HostConfig) {
				hc.NetworkMode = "host"
				hc.Binds = []string{dir + ":" + dir}
			},
		},
		Started: true,
		Logger:  r.log,
	}
	ctr, err := testcontainers.GenericContainer(ctx, req)
	if err != nil {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
		return nil, fmt.Errorf("start container of %s: %w", r.image, err)
	}
	p := &containerProcess{cli: r.eng.cli, ctr: ctr, id: ctr.GetContainerID(), done: make(chan struct{})}
	if info, err := ctr.Inspect(ctx); err == nil && info.State != nil {
		p.pid = info.State.Pid
	}
	go p.wait(stdout)
	return p, nil
}

// containerProcess is a running container of the kit.
type containerProcess struct {
	cli  *testcontainers.DockerClient
	ctr  testcontainers.Container
	id   string
	pid  int
	done chan struct{}

	mu      sync.Mutex
	removed bool
}

// wait closes done when the container has stopped, after appending its
// output to the file stdout.
func (p *containerProcess) wait(stdout string) {
	defer close(p.done)
	res := p.cli.ContainerWait(context.Background(), p.id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case <-res.Result:
	case <-res.Error:
	}
	ctx, cancel := context.WithTimeout(context.Background(), EngineTimeout)
	defer cancel()
	logs, err := p.cli.ContainerLogs(ctx, p.id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return
	}
	defer logs.Close()
	f, err := os.OpenFile(stdout, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = stdcopy.StdCopy(f, f, logs)
}

// Kill kills the container (thawing it first), waits for it to stop and
// removes it.
func (p *containerProcess) Kill() error {
	ctx, cancel := context.WithTimeout(context.Background(), EngineTimeout)
	defer cancel()
	_, _ = p.cli.ContainerUnpause(ctx, p.id, client.ContainerUnpauseOptions{})
	_, err := p.cli.ContainerKill(ctx, p.id, client.ContainerKillOptions{Signal: "KILL"})
	select {
	case <-p.done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.removed {
		p.removed = true
		if rmErr := p.ctr.Terminate(ctx); rmErr != nil {
			_, rmErr = p.cli.ContainerRemove(ctx, p.id, client.ContainerRemoveOptions{Force: true})
			err = errors.Join(err, rmErr)
		}
	}
	return err
}

func (p *containerProcess) Pause() error {
	ctx, cancel := context.WithTimeout(context.Background(), EngineTimeout)
	defer cancel()
	_, err := p.cli.ContainerPause(ctx, p.id, client.ContainerPauseOptions{})
	return err
}

func (p *containerProcess) Resume() error {
	ctx, cancel := context.WithTimeout(context.Background(), EngineTimeout)
	defer cancel()
	_, err := p.cli.ContainerUnpause(ctx, p.id, client.ContainerUnpauseOptions{})
	return err
}

func (p *containerProcess) Done() <-chan struct{} { return p.done }
func (p *containerProcess) Pid() int              { return p.pid }

// quietLogger drops testcontainers-go's progress messages; failures come
// back as errors.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}
