package serve_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/leakcheck"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/openapi/serve"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestServeWithRedis(t *testing.T) {
	c := redistest.Default(t)
	prefix := redistest.Prefix(t, c)
	addr := c.(*redis.Client).Options().Addr
	srv, err := serve.New("../testdata/pets.yaml", "redis://"+addr+"/0",
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "pets") }),
		serve.WithPrefix(strings.TrimSuffix(prefix, ":")))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var codes []int
	for range 4 {
		code, _ := get(t, srv, "/v1/pets")
		codes = append(codes, code)
	}
	if codes[2] != 200 || codes[3] != 429 {
		t.Errorf("listPets through serve = %v", codes)
	}
	if code, body := get(t, srv, serve.HealthPath); code != 200 || body != "ok\n" {
		t.Errorf("health = %d %q", code, body)
	}
	code, body := get(t, srv, serve.MetricsPath)
	if code != 200 || !strings.Contains(body, `bulwark_decisions_total{degraded="false",name="listPets",pattern="token_bucket",result="denied"} 1`) {
		t.Errorf("metrics = %d, missing listPets' denial:\n%s", code, grep(body, "bulwark_decisions_total"))
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestServeLocalAndErrors(t *testing.T) {
	srv, err := serve.New("../testdata/pets.yaml", "", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if code, _ := get(t, srv, serve.HealthPath); code != 200 {
		t.Errorf("local health = %d", code)
	}
	if _, err := serve.New("../testdata/bad.yaml", "", http.NotFoundHandler()); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("bad spec = %v", err)
	}
	if _, err := serve.New("../testdata/pets.yaml", "http://nope", http.NotFoundHandler()); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("bad URL = %v", err)
	}
	if _, err := serve.New("../testdata/pets.yaml", "", nil); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("nil handler = %v", err)
	}
}
