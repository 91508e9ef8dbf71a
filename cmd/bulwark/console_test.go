package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/policy"
)

const testToken = "console-test-token-0123456789"

// startConsole serves the console of prefix on a loopback port.
func startConsole(t *testing.T, c redis.UniversalClient, prefix string) *httptest.Server {
	t.Helper()
	store, err := control.New(c, control.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	dist, err := distributed.New(c, distributed.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	ts.Config.Handler = newConsole(store, dist, testToken, ts.Listener.Addr().String())
	ts.Start()
	t.Cleanup(func() {
		ts.Close()
		_ = dist.Close()
	})
	return ts
}

var consoleDefaults = policy.Spec{
	RateLimit:      &policy.RateLimit{Limit: intp(1000), Key: "global"},
	CircuitBreaker: &policy.CircuitBreaker{},
	Bulkhead:       &policy.Bulkhead{MaxConcurrent: intp(8)},
}

// TestConsoleInBrowser: the console in a real headless Chromium shows the
// replicas and policies of a running fleet; a write without the token is
// refused; the breaker opened from the page (its button, with the token)
// is open on every replica; a field edited from the page and rolled back
// from its history reaches every replica. The page's screenshot is saved.
func TestConsoleInBrowser(t *testing.T) {
	b := startBrowser(t)
	c := redistest.Default(t)
	prefix := strings.TrimSuffix(redistest.Prefix(t, c), ":")
	rs := startReplicas(t, c.(*redis.Client).Options().Addr, prefix, 3, consoleDefaults)
	ts := startConsole(t, c, prefix)
	store, _ := control.New(c, control.WithPrefix(prefix))

	b.open(ts.URL + "/")
	b.waitTrue(`document.querySelectorAll("tr.replica").length === 3 && document.getElementById("policy-checkout")`, 20*time.Second)
	var text string
	b.eval("document.body.innerText", &text)
	for _, want := range []string{"replica-1", "replica-2", "replica-3", "checkout", "ratelimit.limit", "1000", "breaker", "bulkhead"} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q:\n%s", want, text)
		}
	}

	// Without the token: refused, nothing written.
	var status int
	b.eval(`fetch("/api/breaker", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({name: "checkout", action: "open", reason: "no token"})}).then(r => r.status)`, &status)
	if status != http.StatusUnauthorized {
		t.Fatalf("write without the token: status %d, want 401", status)
	}
	b.eval(`fetch("/api/breaker", {method: "POST", headers: {"Content-Type": "application/json", "X-Bulwark-Token": "wrong-token-wrong-token"},
		body: JSON.stringify({name: "checkout", action: "open", reason: "bad token"})}).then(r => r.status)`, &status)
	if status != http.StatusUnauthorized {
		t.Fatalf("write with a wrong token: status %d, want 401", status)
	}
	if v, err := store.Version(context.Background()); err != nil || v != 0 {
		t.Fatalf("version %d, %v after refused writes; want 0", v, err)
	}

	for i, r := range rs {
		if st := r.stack.Load().Breaker.State(context.Background()); st != bulwark.Closed {
			t.Fatalf("replica %d: breaker %v before the click", i+1, st)
		}
	}
	// With the token, from the page's own button.
	b.eval(`(() => { const i = document.getElementById("token"); i.value = "`+testToken+`";
		i.dispatchEvent(new Event("change")); document.getElementById("open-checkout").click(); return true; })()`, nil)
	clicked := time.Now()
	for i, r := range rs {
		for r.stack.Load().Breaker.State(context.Background()) != bulwark.Open {
			if time.Since(clicked) > 5*time.Second {
				t.Fatalf("replica %d: breaker not open 5s after the click", i+1)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := r.stack.Do(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, bulwark.ErrOpen) {
			t.Fatalf("replica %d: call admitted by an opened breaker: %v", i+1, err)
		}
	}
	t.Logf("breaker open on every replica %v after the click", time.Since(clicked))
	b.waitTrue(`document.querySelector("#policy-checkout .breaker-state").textContent === "open (forced)" &&
		document.querySelector("#policy-checkout .history") && document.getElementById("msg").className === "done"`, 10*time.Second)
	h, err := store.History(context.Background(), "checkout", 0)
	if err != nil || len(h) != 1 || !strings.HasPrefix(h[0].Who, "console@") {
		t.Fatalf("history %+v, %v", h, err)
	}
	b.waitTrue(`/[1-9][0-9]* decisions/.test(document.getElementById("policy-checkout").innerText)`, 10*time.Second)
	b.waitTrue(`[...document.querySelectorAll("tr.replica")].every(r => r.innerText.includes("checkout v1"))`, 10*time.Second)

	// Edit a field from the page, then roll it back from the history.
	b.eval(`(() => { const f = document.querySelector("#policy-checkout form.edit");
		f.querySelector("input[name=field]").value = "ratelimit.limit=500";
		f.querySelector("input[name=reason]").value = "edited in the browser";
		document.getElementById("set-checkout").click(); return true; })()`, nil)
	waitReplicas(t, rs, "limit 500 from the page", func(p *policy.Parts) bool { return p.Limit.Events == 500 })
	b.waitTrue(`document.querySelectorAll("#policy-checkout button.rollback").length === 1`, 10*time.Second)
	b.eval(`(() => { document.querySelector("#policy-checkout button.rollback").click(); return true; })()`, nil)
	waitReplicas(t, rs, "rolled back from the page", func(p *policy.Parts) bool {
		return p.Limit.Events == 1000 && p.BreakerForce == policy.ForceOpen
	})
	if h, err := store.History(context.Background(), "checkout", 0); err != nil || len(h) != 3 || h[1].Why != "edited in the browser" || h[0].RollbackOf != 1 {
		t.Fatalf("history after edit and rollback: %+v, %v", h, err)
	}
	b.waitTrue(`[...document.querySelectorAll("tr.replica")].every(r => r.innerText.includes("checkout v3"))`, 10*time.Second)

	shot := b.screenshot()
	dir := os.Getenv("BULWARK_ARTEFACTS")
	if dir == "" {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "bulwark-console.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
}

func waitReplicas(t *testing.T, rs []*replica, what string, cond func(*policy.Parts) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for i, r := range rs {
		for !cond(r.stack.Load()) {
			if time.Now().After(deadline) {
				t.Fatalf("replica %d: %s: not within 5s", i+1, what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestConsoleWriteGuards: writes from another origin, without JSON or
// without the token are refused before anything is done; a request naming
// another host is refused (DNS rebinding).
func TestConsoleWriteGuards(t *testing.T) {
	c := redistest.Default(t)
	prefix := strings.TrimSuffix(redistest.Prefix(t, c), ":")
	ts := startConsole(t, c, prefix)
	body := `{"name":"checkout","fields":["ratelimit.limit=5"],"reason":"x"}`
	for _, tc := range []struct {
		name    string
		headers map[string]string
		host    string
		want    int
	}{
		{"no token", map[string]string{"Content-Type": "application/json"}, "", http.StatusUnauthorized},
		{"other origin", map[string]string{"Content-Type": "application/json", tokenHeader: testToken, "Origin": "http://evil.example"}, "", http.StatusForbidden},
		{"cross site", map[string]string{"Content-Type": "application/json", tokenHeader: testToken, "Sec-Fetch-Site": "cross-site"}, "", http.StatusForbidden},
		{"form post", map[string]string{"Content-Type": "application/x-www-form-urlencoded", tokenHeader: testToken}, "", http.StatusUnsupportedMediaType},
		{"rebound host", map[string]string{"Content-Type": "application/json", tokenHeader: testToken}, "evil.example", http.StatusMisdirectedRequest},
		{"ok", map[string]string{"Content-Type": "application/json", tokenHeader: testToken}, "", http.StatusOK},
	} {
		req, _ := http.NewRequest("POST", ts.URL+"/api/set", strings.NewReader(body))
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	store, _ := control.New(c, control.WithPrefix(prefix))
	if v, _ := store.Version(context.Background()); v != 1 {
		t.Fatalf("version %d, want 1 (only the guarded write)", v)
	}
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("CSP %q", csp)
	}
}
