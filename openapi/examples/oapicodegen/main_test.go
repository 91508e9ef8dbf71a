package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestGeneratedServerBehindGeneratedPolicies(t *testing.T) {
	h, err := newHandler()
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	// listPets: limit 2, global.
	var codes []int
	for range 3 {
		codes = append(codes, get("/pets").Code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != http.StatusTooManyRequests {
		t.Errorf("GET /pets x3 = %v, want [200 200 429]", codes)
	}
	// getPet: the default limit (100 per minute by ip), its own policy name.
	rec := get("/pets/1")
	if rec.Code != 200 || rec.Header().Get("RateLimit-Policy") != `"getPet";q=100;w=60` {
		t.Errorf("GET /pets/1 = %d %q", rec.Code, rec.Header().Get("RateLimit-Policy"))
	}
	if rec := get("/pets/2"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /pets/2 = %d", rec.Code)
	}
	if _, ok := PolicyOf("listPets"); !ok {
		t.Error("no listPets policy")
	}
}
