package openapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/openapi"
)

const routeSpec = `openapi: 3.0.3
info: {title: r, version: "1"}
paths:
  /:
    get: {operationId: root, responses: {"200": {description: ok}}}
  /users:
    get: {operationId: listUsers, responses: {"200": {description: ok}}}
  /users/me:
    get: {operationId: me, responses: {"200": {description: ok}}}
  /users/{id}:
    get: {operationId: getUser, responses: {"200": {description: ok}}}
    delete: {operationId: deleteUser, responses: {"200": {description: ok}}}
  /users/{id}/avatar.png:
    get: {operationId: avatar, responses: {"200": {description: ok}}}
  /users/{id}/{file}.json:
    get: {operationId: userFile, responses: {"200": {description: ok}}}
  /users/me/settings:
    get: {operationId: mySettings, responses: {"200": {description: ok}}}
  /users/{id}/posts:
    get: {operationId: userPosts, responses: {"200": {description: ok}}}
  /v{version}/status:
    get: {operationId: status, responses: {"200": {description: ok}}}
`

func TestRouting(t *testing.T) {
	a, err := openapi.Parse([]byte(routeSpec))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/", "root"},
		{"GET", "/users", "listUsers"},
		{"GET", "/users/me", "me"},
		{"GET", "/users/42", "getUser"},
		{"DELETE", "/users/42", "deleteUser"},
		{"DELETE", "/users/me", "deleteUser"}, // me has no DELETE: the parameter route serves it
		{"GET", "/users/42/avatar.png", "avatar"},
		{"GET", "/users/42/notes.json", "userFile"},
		{"GET", "/users/me/settings", "mySettings"},
		{"GET", "/users/me/posts", "userPosts"}, // backtracks from the literal "me"
		{"GET", "/v2/status", "status"},
		{"HEAD", "/users/42", "getUser"}, // HEAD is served as GET
		{"HEAD", "/nope", ""},
		{"GET", "/v/status", ""}, // a parameter matches at least one character
		{"GET", "/users/", ""},
		{"GET", "/users//posts", ""},
		{"GET", "/users/1/.json", ""},
		{"POST", "/users", ""},
		{"BREW", "/users", ""},
		{"GET", "", ""},
		{"GET", "users", ""},
		{"GET", "/nope", ""},
	} {
		op, ok := a.Match(tc.method, tc.path)
		if got := op.ID; got != tc.want || ok != (tc.want != "") {
			t.Errorf("Match(%s %q) = %q, %v; want %q", tc.method, tc.path, got, ok, tc.want)
		}
	}
}

func TestRoutingBasePath(t *testing.T) {
	a, err := openapi.Parse([]byte(strings.Replace(routeSpec, "paths:", "servers: [{url: \"https://x.example/api/v1/\"}]\npaths:", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if op, ok := a.Match("GET", "/api/v1/users/me"); !ok || op.ID != "me" {
		t.Errorf("with base path = %q %v", op.ID, ok)
	}
	if _, ok := a.Match("GET", "/users/me"); ok {
		t.Error("a path without the base path matched")
	}
	if _, ok := a.Match("GET", "/api/v1x/users"); ok {
		t.Error("a path merely starting with the base path matched")
	}
	// WithBasePath overrides the server's.
	limited := strings.Replace(routeSpec, "paths:", "servers: [{url: \"https://x.example/api/v1/\"}]\nx-bulwark: {defaults: {ratelimit: {limit: 1, per: 1h, key: global}}}\npaths:", 1)
	b, err := openapi.Parse([]byte(limited))
	if err != nil {
		t.Fatal(err)
	}
	mw, err := b.Middleware(openapi.WithBasePath(""))
	if err != nil {
		t.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	var codes []int
	for _, p := range []string{"/users/me", "/users/me", "/api/v1/users/me"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		codes = append(codes, rec.Code)
	}
	if !eq(codes, []int{200, 429, 200}) {
		t.Errorf("with WithBasePath(\"\") = %v, want [200 429 200]", codes)
	}
}

// spec200 is a document of 200 operations on 100 paths, half of them with
// parameters, every one rate-limited.
func spec200() []byte {
	var b strings.Builder
	b.WriteString("openapi: 3.0.3\ninfo: {title: big, version: \"1\"}\nx-bulwark:\n  defaults:\n    ratelimit: {limit: 1000000000, per: 1s, key: global, scope: local}\npaths:\n")
	for i := range 50 {
		fmt.Fprintf(&b, "  /r%d/items:\n    get: {operationId: list%d, responses: {\"200\": {description: ok}}}\n    post: {operationId: create%d, responses: {\"200\": {description: ok}}}\n", i, i, i)
		fmt.Fprintf(&b, "  /r%d/items/{id}/parts/{part}:\n    get: {operationId: get%d, responses: {\"200\": {description: ok}}}\n    delete: {operationId: del%d, responses: {\"200\": {description: ok}}}\n", i, i, i)
	}
	return []byte(b.String())
}

func TestRoutingAllocatesNothing(t *testing.T) {
	a, err := openapi.Parse(spec200())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(a.Operations()); n != 200 {
		t.Fatalf("%d operations", n)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := a.Match("DELETE", "/r49/items/123/parts/abc"); !ok {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times", allocs)
	}
	// The middleware's routing step too: an unknown route costs nothing.
	mw, err := a.Middleware()
	if err != nil {
		t.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest("GET", "/unknown/route", nil)
	w := httptest.NewRecorder()
	if allocs := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) }); allocs != 0 {
		t.Errorf("routing an unknown request allocates %v times", allocs)
	}
}
