package policy_test

import (
	"encoding/json"
	"testing"

	"github.com/bulwark-go/bulwark/policy"
)

// FuzzParse: no input makes Parse, Validate, Merge or Build panic, and a
// Spec that parses survives a JSON round trip unchanged.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"ratelimit": {"limit": 10, "per": "1m", "burst": 3, "key": "header:X"}}`,
		`{"circuitbreaker": {"failure_rate": 0.5, "slow_call": 1}, "timeout": 2}`,
		`{"retry": {"statuses": [500, 503], "jitter": "none"}, "hedge": {"delay": "1ms"}}`,
		`{"bulkhead": {"max_concurrent": 1, "max_wait": "1s"}, "timeout": "500ms", "shed": {"max_in_flight": 3}}`,
		`{"enabled": false, "shadow": true, "name": "x"}`, `[]`, `null`, `{"ratelimit": null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := policy.Parse(data)
		if err != nil {
			return
		}
		_ = s.Validate()
		m := s.Merge(s)
		if !policy.Equal(s, m) {
			t.Fatalf("s.Merge(s) differs from s: %v", policy.Diff(s, m))
		}
		out, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := policy.Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(%s)) = %v", out, err)
		}
		if !policy.Equal(s, back) {
			t.Fatalf("round trip changed %v", policy.Diff(s, back))
		}
		if st, err := policy.Build("fuzz", s); err == nil {
			_ = st.Close()
		}
	})
}
