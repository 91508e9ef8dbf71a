package bulwark_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// consumerMain returns a program importing every non-internal package of
// the core module (go list ./...), as an application would.
func consumerMain(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "./...").Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	var b strings.Builder
	b.WriteString("package main\n\nimport (\n")
	n := 0
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "/internal/") || strings.HasSuffix(pkg, "/internal") {
			continue
		}
		fmt.Fprintf(&b, "\t_ %q\n", pkg)
		n++
	}
	if n < 10 {
		t.Fatalf("go list ./... found only %d public packages in the core module:\n%s", n, out)
	}
	b.WriteString(")\n\nfunc main() {}\n")
	return b.String()
}

// forbiddenInCore are modules that only tests, benchmarks or the other
// modules of the repository may bring: none may reach a user of the core.
var forbiddenInCore = []string{
	"github.com/alicebob/miniredis", "github.com/yuin/gopher-lua", "go.uber.org/goleak",
	"github.com/hashicorp/golang-lru", "github.com/sony/gobreaker", "github.com/go-redis/redis_rate",
	"golang.org/x/time", "github.com/prometheus/", "go.opentelemetry.io/", "github.com/testcontainers/",
	"github.com/getkin/kin-openapi", "google.golang.org/grpc", "gopkg.in/yaml", "golang.org/x/perf",
}

// goRedisOnly is a program that uses go-redis and nothing else: the floor
// a user of the core module pays anyway.
const goRedisOnly = `package main

import _ "github.com/redis/go-redis/v9"

func main() {}
`

// TestCoreConsumerModules builds two modules outside the workspace, one
// importing every core package and one importing go-redis alone, and
// compares the modules their go.sum files list: the core must add none
// (no test-only, benchmark or integration dependency reaches its users),
// none of forbiddenInCore may appear, and README.md states the count.
func TestCoreConsumerModules(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test runs go mod tidy in modules of its own")
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	mods := consumerSum(t, consumerMain(t), "require github.com/bulwark-go/bulwark v0.0.0\n\nreplace github.com/bulwark-go/bulwark => "+root+"\n")
	floor := consumerSum(t, goRedisOnly, "require github.com/redis/go-redis/v9 v9.23.0\n")
	for _, m := range mods {
		for _, bad := range forbiddenInCore {
			if strings.HasPrefix(m, bad) {
				t.Errorf("module %s reaches a user of the core module", m)
			}
		}
	}
	if strings.Join(mods, " ") != strings.Join(floor, " ") {
		t.Errorf("the core's users get modules go-redis alone does not bring:\ncore:     %v\ngo-redis: %v", mods, floor)
	}
	t.Logf("a module importing the core lists %d modules in its go.sum (go-redis alone: %d): %s", len(mods), len(floor), strings.Join(mods, ", "))
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`lists (\d+) modules in its ` + "`go.sum`").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md does not state the go.sum module count (\"lists N modules in its `go.sum`\")")
	}
	if n, _ := strconv.Atoi(string(m[1])); n != len(mods) {
		t.Errorf("README.md says %d modules; the consumer's go.sum lists %d: %v", n, len(mods), mods)
	}
}

// consumerSum tidies a module of its own holding main and the go.mod lines
// req, builds it, and returns the sorted modules its go.sum lists.
func consumerSum(t *testing.T, main, req string) []string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/consumer\n\ngo 1.26.0\n\n"+req), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644))
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-o", os.DevNull, "."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v in a consumer module: %v\n%s", args, err, out)
		}
	}
	sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(sum), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			seen[f[0]] = true
		}
	}
	mods := make([]string, 0, len(seen))
	for m := range seen {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	return mods
}
