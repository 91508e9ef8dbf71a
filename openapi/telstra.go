package openapi

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark/policy"
)

// The x-telstra extension (Failsafe's spelling) is read as it is. Each of
// its pattern blocks present on an operation takes that system's defaults
// for the keys it leaves out, then becomes one layer of the operation's
// policy.Spec, under any x-bulwark layer of the same operation. The mapping
// is in the package documentation.

type telstraKind uint8

const (
	tInt telstraKind = iota + 1
	tNum
	tBool
	tStr
	tList
)

// telstraKeys lists each block's keys, their kinds and where they land in
// a policy.Spec ("" for keys read and checked but without an effect).
var telstraKeys = map[string]map[string]struct {
	kind  telstraKind
	field string
}{
	"ratelimit": {
		"enabled": {tBool, "ratelimit.enabled"}, "name": {tStr, "name"},
		"max_executions": {tInt, "ratelimit.limit"}, "per_time_secs": {tNum, "ratelimit.per"},
		"bucket_size": {tInt, "ratelimit.burst"}, "retry_after_strategy": {tStr, "ratelimit.retry_after"},
		"p95_baseline": {tNum, "ratelimit.backpressure.baseline"}, "min_latency": {tNum, ""},
		"min_retry_delay":   {tNum, "ratelimit.backpressure.min_retry_after"},
		"max_retry_penalty": {tNum, "ratelimit.backpressure.max_retry_after"}, "gradient_sensitivity": {tNum, ""},
	},
	"retry": {
		"enabled": {tBool, "retry.enabled"}, "name": {tStr, "name"},
		"attempts": {tInt, "retry.attempts"}, "delay": {tNum, "retry.delay"}, "backoff": {tNum, "retry.multiplier"},
		"max_delay": {tNum, "retry.max_delay"}, "exceptions": {tList, ""},
	},
	"circuitbreaker": {
		"enabled": {tBool, "circuitbreaker.enabled"}, "name": {tStr, "name"},
		"failure_threshold": {tInt, "circuitbreaker.consecutive_failures"},
		"recovery_timeout":  {tNum, "circuitbreaker.open_for"}, "half_open_requests": {tInt, "circuitbreaker.half_open_calls"},
	},
	"timeout": {
		"enabled": {tBool, "timeout"}, "name": {tStr, "name"}, "seconds": {tNum, "timeout"},
	},
}

// telstraRootKeys are the document-level x-telstra settings: read and
// checked, without an effect (bulwark protects whichever side it is wired
// on, and reports through the Observer given to it).
var telstraRootKeys = map[string][]string{
	"otel":       {"enabled", "endpoint"},
	"controller": {"enabled", "url"},
	"protection": {"type"},
}

// telstraLayer is an operation's x-telstra block turned into a Spec layer.
type telstraLayer struct {
	spec policy.Spec
	// fields maps a Spec field path to the x-telstra key path (relative to
	// the block) that set it, so problems found after merging point at the
	// key the user wrote.
	fields map[string]string
}

func telstraSec(f float64) *policy.Duration {
	return policy.D(time.Duration(math.Round(f * float64(time.Second))))
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func unknownKey(k string, valid []string) string {
	msg := fmt.Sprintf("unknown key %q", k)
	if s := policy.Suggest(k, valid); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return msg
}

func telstraNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// decodeTelstraRoot checks the document-level block.
func decodeTelstraRoot(v any) []policy.Problem {
	m, ok := v.(map[string]any)
	if !ok {
		return []policy.Problem{{Message: "must be an object"}}
	}
	var ps []policy.Problem
	for _, k := range keysOf(m) {
		sub, known := telstraRootKeys[k]
		if !known {
			ps = append(ps, policy.Problem{Path: k, Message: unknownKey(k, keysOf(telstraRootKeys)), Key: true})
			continue
		}
		inner, ok := m[k].(map[string]any)
		if !ok {
			ps = append(ps, policy.Problem{Path: k, Message: "must be an object"})
			continue
		}
		for _, ik := range keysOf(inner) {
			if !contains(sub, ik) {
				ps = append(ps, policy.Problem{Path: k + "." + ik, Message: unknownKey(ik, sub), Key: true})
			}
		}
		if k == "protection" {
			if t, ok := inner["type"].(string); ok && t != "ingress" && t != "egress" && t != "full" {
				ps = append(ps, policy.Problem{Path: "protection.type", Message: fmt.Sprintf("unknown value %q (one of ingress, egress, full)", t)})
			}
		}
	}
	return ps
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// decodeTelstra reads an operation's x-telstra block ({resiliency: {...}})
// with that system's defaults. Problem paths are relative to the block.
func decodeTelstra(v any) (telstraLayer, []policy.Problem) {
	l := telstraLayer{fields: map[string]string{}}
	m, ok := v.(map[string]any)
	if !ok {
		return l, []policy.Problem{{Message: "must be an object"}}
	}
	var ps []policy.Problem
	for _, k := range keysOf(m) {
		if k != "resiliency" {
			ps = append(ps, policy.Problem{Path: k, Message: unknownKey(k, []string{"resiliency"}), Key: true})
		}
	}
	res, ok := m["resiliency"].(map[string]any)
	if !ok {
		if _, present := m["resiliency"]; present {
			ps = append(ps, policy.Problem{Path: "resiliency", Message: "must be an object"})
		}
		return l, ps
	}
	vals := map[string]map[string]any{}
	for _, block := range keysOf(res) {
		keys, known := telstraKeys[block]
		if !known {
			ps = append(ps, policy.Problem{Path: "resiliency." + block, Message: unknownKey(block, keysOf(telstraKeys)), Key: true})
			continue
		}
		bm, ok := res[block].(map[string]any)
		if !ok {
			ps = append(ps, policy.Problem{Path: "resiliency." + block, Message: "must be an object"})
			continue
		}
		vals[block] = map[string]any{}
		for _, k := range keysOf(bm) {
			path := "resiliency." + block + "." + k
			spec, known := keys[k]
			if !known {
				ps = append(ps, policy.Problem{Path: path, Message: unknownKey(k, keysOf(keys)), Key: true})
				continue
			}
			if msg := checkTelstraKind(bm[k], spec.kind); msg != "" {
				ps = append(ps, policy.Problem{Path: path, Message: msg})
				continue
			}
			vals[block][k] = bm[k]
			if spec.field != "" {
				l.fields[spec.field] = path
			}
		}
	}
	l.spec = telstraSpec(vals)
	return l, ps
}

func checkTelstraKind(v any, k telstraKind) string {
	switch k {
	case tInt:
		f, ok := telstraNumber(v)
		if !ok || f != math.Trunc(f) {
			return fmt.Sprintf("must be an integer, got %v", v)
		}
	case tNum:
		f, ok := telstraNumber(v)
		if !ok || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e9 {
			return fmt.Sprintf("must be a number, got %v", v)
		}
	case tBool:
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("must be true or false, got %v", v)
		}
	case tStr:
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("must be a string, got %v", v)
		}
	case tList:
		if _, ok := v.([]any); !ok {
			return fmt.Sprintf("must be a list, got %v", v)
		}
	}
	return ""
}

func num(m map[string]any, k string, def float64) float64 {
	if v, ok := m[k]; ok {
		f, _ := telstraNumber(v)
		return f
	}
	return def
}

// telstraSpec builds the layer from checked values, defaults applied.
func telstraSpec(vals map[string]map[string]any) policy.Spec {
	var s policy.Spec
	name := func(m map[string]any) {
		if n, ok := m["name"].(string); ok && s.Name == "" {
			s.Name = n
		}
	}
	enabled := func(m map[string]any) *bool {
		if b, ok := m["enabled"].(bool); ok {
			return &b
		}
		return nil
	}
	if m, ok := vals["ratelimit"]; ok {
		name(m)
		limit := int(num(m, "max_executions", 100))
		burst := int(num(m, "bucket_size", float64(limit)))
		strategy, _ := m["retry_after_strategy"].(string)
		retryAfter := policy.RetryAfterBackpressure
		switch strategy {
		case "fixed":
			retryAfter = policy.RetryAfterLimiter
		case "", "backpressure", "utilization":
		default:
			retryAfter = strategy // rejected by Validate, at the key written
		}
		s.RateLimit = &policy.RateLimit{
			Enabled: enabled(m), Algorithm: policy.TokenBucket, Key: "route",
			Limit: &limit, Per: telstraSec(num(m, "per_time_secs", 60)), Burst: &burst,
			RetryAfter: retryAfter,
			Backpressure: &policy.Backpressure{
				Baseline:      telstraSec(num(m, "p95_baseline", 0.2)),
				MinRetryAfter: telstraSec(num(m, "min_retry_delay", 1.0)),
				MaxRetryAfter: telstraSec(num(m, "max_retry_penalty", 15.0)),
			},
		}
	}
	if m, ok := vals["circuitbreaker"]; ok {
		name(m)
		threshold := int(num(m, "failure_threshold", 5))
		rate := 1.0
		s.CircuitBreaker = &policy.CircuitBreaker{
			Enabled: enabled(m), ConsecutiveFailures: &threshold, MinimumCalls: new(max(threshold, 1)), FailureRate: &rate,
			OpenFor: telstraSec(num(m, "recovery_timeout", 30)), HalfOpenCalls: new(int(num(m, "half_open_requests", 3))),
		}
	}
	if m, ok := vals["retry"]; ok {
		name(m)
		mult := num(m, "backoff", 2.0)
		backoff := policy.BackoffExponential
		if mult == 1 {
			backoff = policy.BackoffConstant
		}
		s.Retry = &policy.Retry{
			Enabled: enabled(m), Attempts: new(int(num(m, "attempts", 3))), Delay: telstraSec(num(m, "delay", 1.0)),
			Backoff: backoff, Multiplier: &mult, MaxDelay: telstraSec(num(m, "max_delay", 60)),
			Jitter: policy.JitterNone, Statuses: []int{500, 502, 503, 504},
		}
	}
	if m, ok := vals["timeout"]; ok {
		name(m)
		s.Timeout = telstraSec(num(m, "seconds", 30))
		if e := enabled(m); e != nil && !*e {
			s.Timeout = policy.D(0)
		}
	}
	return s
}

// telstraField maps a Spec problem path back to the x-telstra key.
func (l telstraLayer) telstraField(specPath string) (string, bool) {
	for p := specPath; p != ""; {
		if k, ok := l.fields[p]; ok {
			return k, true
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return "", false
}
