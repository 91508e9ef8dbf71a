package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/bulwarktest"
)

// The image the compose test builds from the host's Prometheus, when the
// prometheus package is installed: the official image cannot be pulled
// without a registry.
const localPrometheusImage = "bulwarktest/prometheus:local"

// composeLimit is examples/httpservice's limit on each route (20 requests
// per second, a sliding window shared through Redis).
const composeLimit = 20

// TestComposeFleet brings up docker-compose.yml (Redis, three replicas of
// examples/httpservice built from a binary built here, and Prometheus when
// an image for it can be had), checks that every replica answers, that
// together they admit no more than the one fleet-wide limit allows, that the
// limit lives in the compose Redis, and that Prometheus scrapes the three
// replicas; then it tears the project down.
func TestComposeFleet(t *testing.T) {
	bulwarktest.RequireDocker(t)
	compose := composeCommand(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	begin := time.Now()
	phase := func(what string) { t.Logf("%s at %v", what, time.Since(begin).Round(time.Millisecond)) }

	// Images: Redis and Prometheus from binaries installed here, the
	// replicas from a static binary built now.
	if ok, err := bulwarktest.ImageExists(ctx, bulwarktest.LocalImage); err != nil {
		t.Fatal(err)
	} else if !ok {
		if out, err := bulwarktest.BuildImage(ctx); err != nil {
			t.Fatalf("building %s: %v\n%s", bulwarktest.LocalImage, err, out)
		}
	}
	services := []string{"redis", "replica-1", "replica-2", "replica-3"}
	promImage := ""
	if _, err := os.Stat("/usr/bin/prometheus"); err == nil {
		out, err := bulwarktest.ImageFromBinary(ctx, localPrometheusImage, "/usr/bin/prometheus", "/bin/prometheus",
			`ENTRYPOINT ["/bin/prometheus"]`,
			`CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/tmp/prometheus"]`)
		if err != nil {
			t.Fatalf("building %s: %v\n%s", localPrometheusImage, err, out)
		}
		promImage = localPrometheusImage
		services = append(services, "prometheus")
	} else {
		t.Logf("Prometheus is not started: its image cannot be pulled without a registry, and there is no /usr/bin/prometheus to build one from (apt-get install prometheus)")
	}
	bin := filepath.Join(root, "examples/httpservice/bin/httpservice")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./httpservice")
	build.Dir = filepath.Join(root, "examples")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/httpservice: %v\n%s", err, out)
	}

	phase("images and binary built")
	ports := freePorts(t, 5)
	env := append(os.Environ(),
		"BULWARK_REDIS_IMAGE="+bulwarktest.LocalImage,
		"BULWARK_REDIS_PORT="+strconv.Itoa(ports[0]),
		"BULWARK_REPLICA1_PORT="+strconv.Itoa(ports[1]),
		"BULWARK_REPLICA2_PORT="+strconv.Itoa(ports[2]),
		"BULWARK_REPLICA3_PORT="+strconv.Itoa(ports[3]),
		"BULWARK_PROMETHEUS_PORT="+strconv.Itoa(ports[4]),
	)
	if promImage != "" {
		env = append(env, "BULWARK_PROMETHEUS_IMAGE="+promImage)
	}
	project := "bulwarkcompose" + strconv.Itoa(os.Getpid())
	run := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, compose[0], append(append(compose[1:], "-p", project), args...)...)
		cmd.Dir, cmd.Env = root, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := run(ctx, "logs", "--no-color", "--tail", "50")
			t.Logf("compose logs:\n%s", out)
		}
		if out, err := run(ctx, "down", "-v", "--remove-orphans", "--rmi", "local", "-t", "1"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	if out, err := run(ctx, append([]string{"up", "-d", "--build"}, services...)...); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}

	phase("compose up done")
	// Every replica answers, each from its own container.
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	urls := []string{
		fmt.Sprintf("http://127.0.0.1:%d/", ports[1]),
		fmt.Sprintf("http://127.0.0.1:%d/", ports[2]),
		fmt.Sprintf("http://127.0.0.1:%d/", ports[3]),
	}
	hosts := map[string]bool{}
	for _, u := range urls {
		if took, ok := waitFor(90*time.Second, func() bool {
			body, status, _, err := get(client, u)
			if err == nil && status == http.StatusOK {
				hosts[body] = true
				return true
			}
			return false
		}); !ok {
			t.Fatalf("replica %s did not answer 200 within %v", u, took)
		}
	}
	if len(hosts) != 3 {
		t.Fatalf("the replicas answered %v, want three distinct hosts", hosts)
	}

	phase("replicas answer")
	// Together they admit what one limit of 20 per second allows, not
	// three times that: 90 requests at once, 30 on each replica.
	var admitted, limited, degraded, failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 30 {
		wg.Go(func() {
			for i := range 3 {
				_, status, hdr, err := get(client, urls[(w+i)%3])
				switch {
				case err != nil:
					failed.Add(1)
				case status == http.StatusOK:
					admitted.Add(1)
				case status == http.StatusTooManyRequests:
					limited.Add(1)
				default:
					failed.Add(1)
				}
				if hdr.Get("Bulwark-Degraded") != "" {
					degraded.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// A sliding window of 20 per second admits at most 20 in any second:
	// at most 20 per started second of the burst, plus the window the
	// earlier requests (the readiness checks) left partly full.
	bound := int64(composeLimit) * (int64(elapsed/time.Second) + 2)
	t.Logf("90 requests over %v: %d admitted (bound %d), %d limited, %d degraded, %d failed",
		elapsed.Round(time.Millisecond), admitted.Load(), bound, limited.Load(), degraded.Load(), failed.Load())
	if failed.Load() != 0 || degraded.Load() != 0 {
		t.Errorf("%d requests failed and %d were decided without Redis, want none", failed.Load(), degraded.Load())
	}
	if admitted.Load() == 0 || admitted.Load() > bound {
		t.Errorf("the fleet admitted %d of 90 requests in %v, want between 1 and %d (one shared limit of %d/s)", admitted.Load(), elapsed, bound, composeLimit)
	}
	if limited.Load() == 0 {
		t.Errorf("no request was limited: the replicas do not share the limit")
	}

	// The limit's state is in the compose project's Redis.
	rc := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0])})
	t.Cleanup(func() { _ = rc.Close() })
	keys, err := rc.Keys(ctx, "httpservice*").Result()
	if err != nil || len(keys) == 0 {
		t.Errorf("keys httpservice* in the compose Redis: %q, %v; want the shared limit's", keys, err)
	}

	if promImage != "" {
		promURL := fmt.Sprintf("http://127.0.0.1:%d/api/v1/targets", ports[4])
		var up int
		if took, ok := waitFor(90*time.Second, func() bool {
			up = upTargets(client, promURL)
			return up == 3
		}); !ok {
			t.Errorf("Prometheus scrapes %d replicas after %v, want 3", up, took)
		}
		phase("Prometheus scrapes the replicas")
	}
}

// composeCommand returns "docker compose" when the plugin answers, else
// "docker-compose"; with neither the test is skipped or failed as for a
// missing engine.
func composeCommand(t *testing.T) []string {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	msg := "neither docker compose nor docker-compose is installed (apt-get install docker-compose, or .ci/docker-setup.sh)"
	if os.Getenv(bulwarktest.EnvRequireDocker) != "" {
		t.Fatalf("%s; %s is set", msg, bulwarktest.EnvRequireDocker)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, bulwarktest.EnvRequireDocker)
	return nil
}

// freePorts returns n distinct free TCP ports.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func get(c *http.Client, url string) (string, int, http.Header, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), resp.StatusCode, resp.Header, err
}

// upTargets returns how many of Prometheus's active targets are up.
func upTargets(c *http.Client, url string) int {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var v struct {
		Data struct {
			ActiveTargets []struct {
				Health string `json:"health"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return 0
	}
	n := 0
	for _, tg := range v.Data.ActiveTargets {
		if tg.Health == "up" {
			n++
		}
	}
	return n
}
