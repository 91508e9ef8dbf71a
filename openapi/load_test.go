package openapi_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/openapi"
	"github.com/bulwark-go/bulwark/policy"
)

func load(t testing.TB, name string) *openapi.API {
	t.Helper()
	a, err := openapi.Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	return a
}

func opByID(t *testing.T, a *openapi.API, id string) openapi.Operation {
	t.Helper()
	for _, op := range a.Operations() {
		if op.ID == id {
			return op
		}
	}
	t.Fatalf("no operation %q", id)
	return openapi.Operation{}
}

func TestLoadMergesLayers(t *testing.T) {
	a := load(t, "pets.yaml")
	if a.BasePath() != "/v1" {
		t.Errorf("BasePath = %q", a.BasePath())
	}
	list := opByID(t, a, "listPets")
	if rl := list.Spec.RateLimit; *rl.Limit != 3 || rl.Per.Std() != time.Minute || rl.Key != "global" || list.Spec.TimeoutDuration().Std() != 2*time.Second {
		t.Errorf("listPets inherits wrongly: %+v timeout %v", *rl, list.Spec.TimeoutDuration())
	}
	get := opByID(t, a, "getPet")
	if rl := get.Spec.RateLimit; *rl.Limit != 2 || rl.Key != "header:X-Tenant" || get.Name != "getPet" {
		t.Errorf("getPet (path item layer) = %+v", *rl)
	}
	if opByID(t, a, "createPet").Spec.HasRateLimit() {
		t.Error("enabled: false did not switch createPet's inherited limit off")
	}
	if !opByID(t, a, "deletePet").Spec.IsShadow() {
		t.Error("deletePet is not in shadow mode")
	}
	if op, ok := a.Match("GET", "/v1/pets/7/photos/3.jpg"); !ok || op.ID != "getPhoto" {
		t.Errorf("Match photo = %v %v", op.ID, ok)
	}
}

func TestParseRejectsWholeWithPositions(t *testing.T) {
	data, err := os.ReadFile("testdata/bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := openapi.Parse(data)
	if a != nil || !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("Parse(bad) = %v, %v", a, err)
	}
	var e *openapi.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not *openapi.Error", err)
	}
	e.File = "testdata/bad.yaml"
	var got []string
	for _, p := range e.Problems {
		got = append(got, e.Format(p))
	}
	golden := filepath.Join("testdata", "bad.golden")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		_ = os.WriteFile(golden, []byte(strings.Join(got, "\n")+"\n"), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(got, "\n") + "\n"; g != string(want) {
		t.Errorf("problems:\n%s\nwant:\n%s", g, want)
	}
}

func TestLint(t *testing.T) {
	ps, err := openapi.Lint("testdata/pets.yaml")
	if err != nil || len(ps) != 0 {
		t.Errorf("Lint(pets) = %v, %v; want clean", ps, err)
	}
	ps, err = openapi.Lint("testdata/bad.yaml")
	if err != nil || len(ps) == 0 {
		t.Errorf("Lint(bad) = %v, %v", ps, err)
	}
	if _, err := openapi.Lint("testdata/missing.yaml"); err == nil {
		t.Error("Lint of a missing file: no error")
	}
}

func TestParseNotADocument(t *testing.T) {
	for _, in := range []string{"a: [", "openapi: 3.0.3\npaths: 5\n"} {
		_, err := openapi.Parse([]byte(in))
		var e *openapi.Error
		if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Line == 0 {
			t.Errorf("Parse(%q) = %v", in, err)
		}
	}
}

func TestTelstraREADMEExample(t *testing.T) {
	a := load(t, "inventory.yaml")
	list := opByID(t, a, "listInventories")
	rl := list.Spec.RateLimit
	if *rl.Limit != 5000 || rl.Per.Std() != time.Minute || *rl.Burst != 5000 || rl.RetryAfter != policy.RetryAfterBackpressure ||
		rl.Backpressure.Baseline.Std() != 300*time.Millisecond || rl.Backpressure.MinRetryAfter.Std() != time.Second ||
		rl.Backpressure.MaxRetryAfter.Std() != 15*time.Second || rl.Key != "route" {
		t.Errorf("listInventories ratelimit = %+v / %+v", *rl, *rl.Backpressure)
	}
	if list.Spec.Timeout != nil || list.Spec.HasRetry() {
		t.Errorf("listInventories has patterns it did not declare: %+v", list.Spec)
	}
	create := opByID(t, a, "createInventory")
	if r := create.Spec.Retry; *create.Spec.RateLimit.Limit != 1000 || *r.Attempts != 3 || r.Delay.Std() != 500*time.Millisecond ||
		*r.Multiplier != 2 || r.MaxDelay.Std() != time.Minute || r.Backoff != policy.BackoffExponential {
		t.Errorf("createInventory = %+v retry %+v", *create.Spec.RateLimit, *r)
	}
	get := opByID(t, a, "getInventory")
	if get.Spec.TimeoutDuration().Std() != 5*time.Second {
		t.Errorf("getInventory timeout = %v", get.Spec.TimeoutDuration())
	}
	if del := opByID(t, a, "deleteInventory"); del.Declared {
		t.Errorf("deleteInventory declares nothing, got %+v", del.Spec)
	}
}

func TestTelstraDefaults(t *testing.T) {
	a, err := openapi.Parse([]byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /x:
    get:
      x-telstra:
        resiliency:
          ratelimit: {}
          retry: {}
          circuitbreaker: {}
          timeout: {}
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	op := a.Operations()[0]
	s := op.Spec
	if op.Name != "GET:/x" {
		t.Errorf("name without operationId = %q", op.Name)
	}
	if *s.RateLimit.Limit != 100 || s.RateLimit.Per.Std() != time.Minute || *s.RateLimit.Burst != 100 {
		t.Errorf("ratelimit defaults = %+v", *s.RateLimit)
	}
	if *s.Retry.Attempts != 3 || s.Retry.Delay.Std() != time.Second || *s.Retry.Multiplier != 2 || s.Retry.MaxDelay.Std() != time.Minute {
		t.Errorf("retry defaults = %+v", *s.Retry)
	}
	if cb := s.CircuitBreaker; *cb.ConsecutiveFailures != 5 || cb.OpenFor.Std() != 30*time.Second || *cb.HalfOpenCalls != 3 {
		t.Errorf("breaker defaults = %+v", *cb)
	}
	if s.TimeoutDuration().Std() != 30*time.Second {
		t.Errorf("timeout default = %v", s.TimeoutDuration())
	}
}

func TestParseJSONPositionsAndDuplicateIDs(t *testing.T) {
	doc := `{
  "openapi": "3.0.3",
  "info": {"title": "j", "version": "1"},
  "paths": {
    "/a": {"get": {"operationId": "same", "x-bulwark": {"ratelimit": {"limit": 0}}, "responses": {"200": {"description": "ok"}}}},
    "/b": {"get": {"operationId": "same", "responses": {"200": {"description": "ok"}}}}
  }
}`
	_, err := openapi.Parse([]byte(doc))
	var e *openapi.Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse = %v", err)
	}
	var got []string
	for _, p := range e.Problems {
		got = append(got, e.Format(p))
	}
	want := []string{
		`spec:5:80: paths./a.get.x-bulwark.ratelimit.limit: must be at least 1, got 0`,
		`spec:6:35: paths./b.get.operationId: operationId "same" is also GET /a's: operations would share their policies' state`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNilAPI(t *testing.T) {
	var a *openapi.API
	if a.Operations() != nil || a.BasePath() != "" || a.Document() != nil {
		t.Error("a nil API is not empty")
	}
	if _, ok := a.Match("GET", "/"); ok {
		t.Error("a nil API matched")
	}
	if _, err := a.Middleware(); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("nil Middleware = %v", err)
	}
	if _, err := a.Transport(nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("nil Transport = %v", err)
	}
}

func TestOperationIDAsName(t *testing.T) {
	doc := `openapi: 3.0.3
info: {title: n, version: "1"}
paths:
  /a:
    get:
      operationId: "list all"
      x-bulwark: {timeout: 1s}
      responses: {"200": {description: ok}}
  /b:
    get:
      operationId: "no policies here"
      responses: {"200": {description: ok}}
  /c:
    get:
      operationId: "named apart"
      x-bulwark: {name: c-read, timeout: 1s}
      responses: {"200": {description: ok}}
`
	_, err := openapi.Parse([]byte(doc))
	var e *openapi.Error
	if !errors.As(err, &e) || len(e.Problems) != 1 {
		t.Fatalf("Parse = %v", err)
	}
	if p := e.Problems[0]; p.Path != "paths./a.get.operationId" || p.Line != 6 ||
		!strings.Contains(p.Message, `operationId "list all" cannot name the operation's policies`) {
		t.Errorf("problem = %+v", p)
	}
}
