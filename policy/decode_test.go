package policy_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/policy"
)

func TestDurationJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{`"500ms"`, 500 * time.Millisecond, true},
		{`"1m30s"`, 90 * time.Second, true},
		{`2`, 2 * time.Second, true},
		{`0.25`, 250 * time.Millisecond, true},
		{`"1.5"`, 1500 * time.Millisecond, true},
		{`"soon"`, 0, false},
		{`true`, 0, false},
		{`1e300`, 0, false},
	} {
		var d policy.Duration
		err := json.Unmarshal([]byte(tc.in), &d)
		if (err == nil) != tc.ok || (tc.ok && d.Std() != tc.want) {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v, ok %v", tc.in, d, err, tc.want, tc.ok)
		}
	}
	b, err := json.Marshal(policy.Duration(1500 * time.Millisecond))
	if err != nil || string(b) != `"1.5s"` {
		t.Errorf("Marshal = %s, %v; want \"1.5s\"", b, err)
	}
}

func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		t.Fatal("got no error")
	}
	if !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("error %v does not wrap ErrInvalidConfig", err)
	}
	var out []string
	for _, p := range policy.Problems(err) {
		out = append(out, p.String())
	}
	return out
}

func wantProblems(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d problems %q, want %d: %q", len(got), got, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func TestParseUnknownKeysSuggest(t *testing.T) {
	_, err := policy.Parse([]byte(`{
		"ratelimit": {"limt": 5, "per": "1m", "algoritm": "token_bucket"},
		"circuitbreaker": {"failure_rte": 0.5},
		"bulkhaed": {"max_concurrent": 3},
		"zzzzzz": 1
	}`))
	got := problems(t, err)
	wantProblems(t, got,
		`bulkhaed: unknown key "bulkhaed"; did you mean "bulkhead"?`,
		`circuitbreaker.failure_rte: unknown key "failure_rte"; did you mean "failure_rate"?`,
		`ratelimit.algoritm: unknown key "algoritm"; did you mean "algorithm"?`,
		`ratelimit.limt: unknown key "limt"; did you mean "limit"?`,
		`zzzzzz: unknown key "zzzzzz"`,
	)
	if strings.Contains(got[4], "did you mean") {
		t.Errorf("a key far from every valid one got a suggestion: %q", got[4])
	}
	for _, p := range policy.Problems(err) {
		if !p.Key {
			t.Errorf("unknown-key problem %v not marked Key", p)
		}
	}
}

func TestParseWrongTypes(t *testing.T) {
	_, err := policy.Parse([]byte(`{
		"enabled": "yes",
		"ratelimit": {"limit": "ten", "per": "5 minutes", "burst": 1.5},
		"retry": {"statuses": [503, "x"]},
		"timeout": null,
		"hedge": 3
	}`))
	wantProblems(t, problems(t, err),
		`enabled: must be true or false, got the string "yes"`,
		`hedge: must be an object, got the number 3`,
		`ratelimit.burst: must be a whole number, got 1.5`,
		`ratelimit.limit: must be a whole number, got the string "ten"`,
		`ratelimit.per: "5 minutes" is not a duration`,
		`retry.statuses.1: must be a whole number, got the string "x"`,
		`timeout: must not be null`,
	)
}

func TestParseNotJSON(t *testing.T) {
	if _, err := policy.Parse([]byte(`{"ratelimit":`)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("Parse(truncated) = %v, want ErrInvalidConfig", err)
	}
	if _, err := policy.Parse([]byte(`{} {}`)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("Parse(two objects) = %v, want ErrInvalidConfig", err)
	}
	var s policy.Spec
	if err := json.Unmarshal([]byte(`{"ratelimit": {"limit": 1, "bogus": 2}}`), &s); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatalf("json.Unmarshal with an unknown key = %v, want ErrInvalidConfig", err)
	}
}

func TestDecodeYAMLShapes(t *testing.T) {
	// gopkg.in/yaml.v3 gives ints and map[string]any; v2 gives map[any]any.
	s, err := policy.Decode(map[string]any{
		"ratelimit": map[any]any{"limit": 100, "per": "1m", "burst": int64(20), "key": "header:x-tenant"},
		"timeout":   2,
	})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if *s.RateLimit.Limit != 100 || s.RateLimit.Per.Std() != time.Minute || *s.RateLimit.Burst != 20 || s.Timeout.Std() != 2*time.Second {
		t.Fatalf("Decode = %+v", s.RateLimit)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	in := `{"name":"checkout","shadow":true,"ratelimit":{"algorithm":"sliding_window","limit":100,"per":"1m0s","burst":20,"key":"header:X-Tenant","scope":"fleet","retry_after":"backpressure","backpressure":{"window":50,"baseline":"200ms"}},"circuitbreaker":{"window":"10s","minimum_calls":20,"failure_rate":0.5,"consecutive_failures":0,"open_for":"30s","scope":"local"},"bulkhead":{"max_concurrent":10,"max_wait":"100ms","max_waiting":50},"timeout":"2s","retry":{"attempts":3,"delay":"100ms","backoff":"exponential","max_delay":"5s","jitter":"full","statuses":[502,503]},"hedge":{"delay":"50ms","max":2},"shed":{"max_in_flight":200,"priority":"header:X-Priority"}}`
	s, err := policy.Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("round trip:\n got %s\nwant %s", out, in)
	}
	back, err := policy.Parse(out)
	if err != nil || !policy.Equal(s, back) {
		t.Errorf("Parse(Marshal) differs: %v %v", err, policy.Diff(s, back))
	}
}

func TestKeys(t *testing.T) {
	if got := policy.Keys("bulkhead"); strings.Join(got, ",") != "enabled,lease_ttl,max_concurrent,max_wait,max_waiting,scope" {
		t.Errorf("Keys(bulkhead) = %v", got)
	}
	if got := policy.Keys("ratelimit.backpressure"); len(got) != 4 {
		t.Errorf("Keys(ratelimit.backpressure) = %v", got)
	}
	if got := policy.Keys("timeout"); got != nil {
		t.Errorf("Keys(timeout) = %v, want nil", got)
	}
	if got := policy.Keys("nope"); got != nil {
		t.Errorf("Keys(nope) = %v, want nil", got)
	}
}

func TestSuggest(t *testing.T) {
	valid := []string{"limit", "per", "burst", "algorithm", "max_concurrent"}
	for _, tc := range []struct{ in, want string }{
		{"limt", "limit"}, {"LIMIT", "limit"}, {"lmiit", "limit"}, {"brust", "burst"},
		{"algorythm", "algorithm"}, {"max_concurent", "max_concurrent"}, {"pr", "per"},
		{"xyz", ""}, {"", ""}, {"concurrency", ""},
	} {
		if got := policy.Suggest(tc.in, valid); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "ip", true}, {"ip", "ip", true}, {"route", "route", true}, {"global", "global", true},
		{"header:x-tenant", "header:X-Tenant", true}, {"query:api_key", "query:api_key", true},
		{"header:", "", false}, {"header:a b", "", false}, {"cookie:x", "", false}, {"ipp", "", false},
	} {
		k, err := policy.ParseKey(tc.in)
		if (err == nil) != tc.ok || (tc.ok && k.String() != tc.want) {
			t.Errorf("ParseKey(%q) = %v, %v; want %q ok=%v", tc.in, k, err, tc.want, tc.ok)
		}
	}
	_, err := policy.ParseKey("heder:X-Tenant")
	if err == nil || !strings.Contains(err.Error(), `did you mean "header"`) {
		t.Errorf("ParseKey(heder:...) = %v, want a suggestion", err)
	}
}
