package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const badSpec = "../../openapi/testdata/bad.yaml"

func TestOpenAPILint(t *testing.T) {
	code, stdout, stderr := runCLI(t, "openapi", "lint", badSpec)
	if code != exitFailure {
		t.Errorf("lint of a bad spec exits %d, want 1 (stderr %q)", code, stderr)
	}
	want, err := os.ReadFile("../../openapi/testdata/bad.golden")
	if err != nil {
		t.Fatal(err)
	}
	// The golden file names the spec as the openapi module's test sees it.
	wantOut := strings.ReplaceAll(string(want), "testdata/bad.yaml", badSpec)
	if stdout != wantOut {
		t.Errorf("lint output:\n%s\nwant:\n%s", stdout, wantOut)
	}
	if !strings.Contains(stderr, "11 problem(s)") {
		t.Errorf("stderr = %q", stderr)
	}

	code, stdout, stderr = runCLI(t, "openapi", "lint", "../../openapi/testdata/pets.yaml")
	if code != exitOK || stdout != "" || stderr != "" {
		t.Errorf("lint of a clean spec = %d %q %q", code, stdout, stderr)
	}
	for _, args := range [][]string{{"openapi"}, {"openapi", "lint"}, {"openapi", "frob"}, {"openapi", "gen", badSpec}} {
		if code, _, _ := runCLI(t, args...); code != exitUsage {
			t.Errorf("%q exits %d, want 2", args, code)
		}
	}
	if code, _, _ := runCLI(t, "openapi", "lint", "no/such/file.yaml"); code != exitFailure {
		t.Errorf("lint of a missing file exits %d", code)
	}
	if code, _, _ := runCLI(t, "openapi", "gen", badSpec, "-o", t.TempDir(), "--no-tidy"); code != exitFailure {
		t.Errorf("gen of a bad spec exits %d, want 1", code)
	}
}

const genSpec = `openapi: 3.0.3
info: {title: Gen Check, version: "1"}
servers: [{url: "http://localhost/api"}]
x-bulwark:
  defaults:
    timeout: 2s
paths:
  /widgets:
    get:
      operationId: list-widgets
      x-bulwark:
        ratelimit: {limit: 2, per: 1h, key: global}
      responses: {"200": {description: ok}}
  /widgets/{widget-id}/files/{name}.json:
    get:
      responses: {"200": {description: ok}}
  /type:
    post:
      operationId: type
      responses: {"200": {description: ok}}
`

func goCmd(t *testing.T, ctx context.Context, dir string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestOpenAPIGenBuildsAndRuns(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the gen test needs the go command: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte(genSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "svc")
	code, stdout, stderr := runCLI(t, "openapi", "gen", spec, "-o", out, "--bulwark", root)
	if code != exitOK {
		t.Fatalf("gen = %d\n%s\n%s", code, stdout, stderr)
	}
	for _, f := range []string{"go.mod", "go.sum", "main.go", "handlers.go", "policies.go", "main_test.go", "Dockerfile", "openapi.yaml"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("gen wrote no %s", f)
		}
	}
	handlers, _ := os.ReadFile(filepath.Join(out, "handlers.go"))
	for _, want := range []string{`"GET /api/widgets", listWidgets`, `"GET /api/widgets/{widgetId}/files/{seg3}", getWidgetsByWidgetIdFilesByNameJson`, `"POST /api/type", typeOp`} {
		if !strings.Contains(string(handlers), want) {
			t.Errorf("handlers.go lacks %s:\n%s", want, handlers)
		}
	}
	goCmd(t, ctx, out, "build", "-o", "svc", ".")
	goCmd(t, ctx, out, "vet", "./...")
	goCmd(t, ctx, out, "test", "./...")

	// Run it and see the declared limit answer 429.
	cmd := exec.CommandContext(ctx, filepath.Join(out, "svc"))
	cmd.Env = append(os.Environ(), "ADDR=127.0.0.1:0", "REDIS_URL=")
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(logs)
	var addr string
	for sc.Scan() {
		if _, a, ok := strings.Cut(sc.Text(), "listening on "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("the service did not say where it listens")
	}
	go func() { _, _ = io.Copy(io.Discard, logs) }()
	var codes []int
	for range 3 {
		resp, err := http.Get("http://" + addr + "/api/widgets")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	}
	if codes[0] != 501 || codes[1] != 501 || codes[2] != 429 {
		t.Errorf("GET /api/widgets x3 = %v, want [501 501 429]", codes)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), `name="list-widgets"`) {
		t.Errorf("/metrics does not mention the list-widgets policy")
	}
}

func TestOpenAPIGenPoliciesOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my-policies")
	code, stdout, stderr := runCLI(t, "openapi", "gen", "../../openapi/testdata/pets.yaml", "-o", dir, "--policies-only")
	if code != exitOK {
		t.Fatalf("gen --policies-only = %d %s %s", code, stdout, stderr)
	}
	got, err := os.ReadFile(filepath.Join(dir, "policies.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"package mypolicies", `"listPets":`, "`" + `{"ratelimit":{"limit":3,"per":"1m0s","key":"global"},"timeout":"2s"}` + "`", "func Middleware("} {
		if !strings.Contains(string(got), want) {
			t.Errorf("policies.go lacks %s", want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("--policies-only wrote %d files", len(entries))
	}
	if code, _, _ := runCLI(t, "openapi", "gen", "../../openapi/testdata/pets.yaml", "-o", dir, "--policies-only", "--package", "no-good"); code != exitUsage {
		t.Errorf("a bad --package exits %d", code)
	}
	if code, _, _ := runCLI(t, "openapi", "gen", "../../openapi/testdata/pets.yaml", "-o", dir, "--package", "x"); code != exitUsage {
		t.Errorf("--package on a service exits %d", code)
	}
}

func TestOpenAPIGenKeepsTheServiceCode(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	if err := os.WriteFile(spec, []byte(genSpec), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "svc")
	if code, stdout, stderr := runCLI(t, "openapi", "gen", spec, "-o", out, "--no-tidy"); code != exitOK {
		t.Fatalf("gen = %d %s %s", code, stdout, stderr)
	}
	mine := []byte("package main\n\n// my handlers\n")
	if err := os.WriteFile(filepath.Join(out, "handlers.go"), mine, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "policies.go"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ := runCLI(t, "openapi", "gen", spec, "-o", out, "--no-tidy")
	if code != exitOK || !strings.Contains(stdout, "kept "+filepath.Join(out, "handlers.go")) {
		t.Errorf("regenerate = %d %q", code, stdout)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "handlers.go")); string(got) != string(mine) {
		t.Error("regenerating overwrote handlers.go")
	}
	if got, _ := os.ReadFile(filepath.Join(out, "policies.go")); !strings.Contains(string(got), "DO NOT EDIT") {
		t.Error("regenerating did not rewrite policies.go")
	}
	if code, _, _ := runCLI(t, "openapi", "gen", spec, "-o", out, "--module", "bad module", "--no-tidy"); code != exitUsage {
		t.Errorf("a bad --module exits %d", code)
	}
}

func TestOpenAPIGenRejectsConflictingRoutes(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "spec.yaml")
	doc := `openapi: 3.0.3
info: {title: c, version: "1"}
paths:
  /a/{x}:
    get: {operationId: one, responses: {"200": {description: ok}}}
  /{y}/b:
    get: {operationId: two, responses: {"200": {description: ok}}}
`
	if err := os.WriteFile(spec, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "openapi", "gen", spec, "-o", filepath.Join(dir, "svc"), "--no-tidy")
	if code != exitFailure || !strings.Contains(stderr, "conflict") {
		t.Errorf("conflicting routes: %d %q", code, stderr)
	}
}

func TestOpenAPIGenInsideTheCheckoutReplaces(t *testing.T) {
	dir, err := os.MkdirTemp(".", "gen-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if code, stdout, stderr := runCLI(t, "openapi", "gen", "../../openapi/testdata/pets.yaml", "-o", dir, "--no-tidy"); code != exitOK {
		t.Fatalf("gen = %d %s %s", code, stdout, stderr)
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"github.com/bulwark-go/bulwark => ../../..",
		"github.com/bulwark-go/bulwark/openapi => ../../../openapi",
		"github.com/bulwark-go/bulwark/telemetry/bulwarkprom => ../../../telemetry/bulwarkprom",
		"module pets",
	} {
		if !strings.Contains(string(mod), want) {
			t.Errorf("go.mod lacks %q:\n%s", want, mod)
		}
	}
	if code, _, _ := runCLI(t, "openapi", "gen", "../../openapi/testdata/pets.yaml", "-o", t.TempDir(), "--bulwark", t.TempDir(), "--no-tidy"); code != exitUsage {
		t.Errorf("--bulwark at a directory that is no checkout exits %d", code)
	}
}
