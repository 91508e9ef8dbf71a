package main

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The repository root, where docker-compose.yml lives, seen from this
// package's directory.
const root = "../.."

type composeFile struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Build   *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		DependsOn   []string          `yaml:"depends_on"`
	} `yaml:"services"`
}

type prometheusFile struct {
	Global struct {
		ScrapeInterval string `yaml:"scrape_interval"`
	} `yaml:"global"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// defaultOf returns the value a compose variable reference such as
// "${NAME:-default}" takes when NAME is unset, or s itself when it is no
// such reference.
func defaultOf(s string) string {
	if rest, ok := strings.CutPrefix(s, "${"); ok {
		if _, def, ok := strings.Cut(strings.TrimSuffix(rest, "}"), ":-"); ok {
			return def
		}
	}
	return s
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true) // a misspelt key fails the test
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestComposeFile checks docker-compose.yml without Docker: Redis, three
// replicas built from this example's Dockerfile and pointed at that Redis,
// distinct host ports, and a Prometheus whose configuration (mounted from
// the repository) scrapes exactly those replicas on the port they listen
// on.
func TestComposeFile(t *testing.T) {
	var c composeFile
	readYAML(t, filepath.Join(root, "docker-compose.yml"), &c)

	redis, ok := c.Services["redis"]
	if !ok || defaultOf(redis.Image) != "redis:7" {
		t.Errorf("service redis = %+v, want image redis:7 by default", redis)
	}
	replicas := []string{"replica-1", "replica-2", "replica-3"}
	hostPorts := map[string]string{}
	var targets []string
	for _, name := range replicas {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		if s.Build == nil {
			t.Errorf("%s has no build section", name)
			continue
		}
		df := filepath.Join(root, s.Build.Context, s.Build.Dockerfile)
		if _, err := os.Stat(df); err != nil {
			t.Errorf("%s: Dockerfile %s: %v", name, df, err)
		}
		if got := s.Environment["REDIS_URL"]; got != "redis://redis:6379" {
			t.Errorf("%s: REDIS_URL = %q, want redis://redis:6379", name, got)
		}
		port := s.Environment["PORT"]
		if port == "" {
			t.Errorf("%s: no PORT", name)
		}
		if !slices.Contains(s.DependsOn, "redis") {
			t.Errorf("%s does not depend on redis", name)
		}
		if len(s.Ports) != 1 {
			t.Errorf("%s: ports %q, want one mapping", name, s.Ports)
			continue
		}
		i := strings.LastIndex(s.Ports[0], ":")
		host, container := s.Ports[0][:max(i, 0)], s.Ports[0][i+1:]
		if container != port {
			t.Errorf("%s: port mapping %q does not reach PORT %s", name, s.Ports[0], port)
		}
		if other, dup := hostPorts[host]; dup {
			t.Errorf("%s and %s both publish host port %s", name, other, host)
		}
		hostPorts[host] = name
		targets = append(targets, name+":"+port)
	}

	prom, ok := c.Services["prometheus"]
	if !ok {
		t.Fatal("no service prometheus")
	}
	var config string
	for _, v := range prom.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		if strings.HasPrefix(dst, "/etc/prometheus/prometheus.yml") {
			config = filepath.Join(root, src)
		}
	}
	if config == "" {
		t.Fatalf("prometheus mounts no /etc/prometheus/prometheus.yml: %q", prom.Volumes)
	}
	var p prometheusFile
	readYAML(t, config, &p)
	var scraped []string
	for _, sc := range p.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s, the service serves /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			scraped = append(scraped, st.Targets...)
		}
	}
	slices.Sort(scraped)
	slices.Sort(targets)
	if !slices.Equal(scraped, targets) {
		t.Errorf("prometheus scrapes %q, want the replicas %q", scraped, targets)
	}
}

// TestDockerfile checks that the image is built FROM scratch from the
// binary built on the host (no Go image, no registry), and that the
// repository's .dockerignore lets exactly that binary into the build context.
func TestDockerfile(t *testing.T) {
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const bin = "examples/httpservice/bin/httpservice"
	var froms []string
	copied := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			froms = append(froms, fields[1])
		case "COPY":
			if len(fields) == 3 && fields[1] == bin {
				copied = true
			}
		}
	}
	if !slices.Equal(froms, []string{"scratch"}) {
		t.Errorf("FROM lines %q, want scratch only", froms)
	}
	if !copied {
		t.Errorf("no COPY %s", bin)
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Fields(string(ignore)); !slices.Contains(lines, "*") || !slices.Contains(lines, "!"+bin) {
		t.Errorf(".dockerignore does not keep only %s: %q", bin, ignore)
	}
}
