package bulwarkhttp

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Quota is what one response said about the client's quota: the IETF
// RateLimit and RateLimit-Policy fields (draft-ietf-httpapi-ratelimit-headers,
// also the earlier RateLimit-Limit / -Remaining / -Reset trio and the
// dictionary form "limit=10, remaining=5, reset=3"), the legacy
// X-RateLimit-Limit / -Remaining / -Reset fields, and Retry-After.
type Quota struct {
	// Policies has one entry per quota policy the response described.
	Policies []PolicyQuota
	// RetryAfter is the wait the server asked for (Retry-After, or a gRPC
	// pushback); 0 when it asked for none.
	RetryAfter time.Duration
	// Refused is true when the response refused the request for quota (a
	// 429, a gRPC RESOURCE_EXHAUSTED).
	Refused bool
}

// PolicyQuota is one quota policy in a [Quota].
type PolicyQuota struct {
	Name         string        // the policy's name; "" for the unnamed legacy fields
	Limit        int           // quota units per window ("q"); 0 when not said
	Window       time.Duration // the window ("w"); 0 when not said
	Remaining    int           // units left ("r"), when HasRemaining
	HasRemaining bool          // the response said how many units are left
	Reset        time.Duration // until the quota resets ("t"); 0 when not said
}

// Empty reports whether the response said nothing about the quota.
func (q Quota) Empty() bool { return len(q.Policies) == 0 && q.RetryAfter <= 0 && !q.Refused }

// QuotaFromResponse reads resp's quota fields, measuring an HTTP-date
// Retry-After against the response's Date field (else now). A 429 is
// Refused; so is a 503 that carries Retry-After.
func QuotaFromResponse(resp *http.Response, now time.Time) Quota {
	if resp == nil {
		return Quota{}
	}
	q := ParseQuota(resp.Header.Values, now)
	if ra, ok := parseRetryAfter(resp.Header, now); ok {
		q.RetryAfter = ra
	}
	q.Refused = resp.StatusCode == http.StatusTooManyRequests ||
		(resp.StatusCode == http.StatusServiceUnavailable && q.RetryAfter > 0)
	return q
}

// ParseQuota reads the RateLimit fields through get, which returns a
// field's values by lower-case name (http.Header.Values and
// metadata.MD.Get both fit). Retry-After is not read: it needs the
// response's Date, see [QuotaFromResponse]. now is used to turn a legacy
// X-RateLimit-Reset given as Unix seconds into a duration. Malformed
// members are skipped.
func ParseQuota(get func(name string) []string, now time.Time) Quota {
	var q Quota
	byName := map[string]int{}
	pol := func(name string) *PolicyQuota {
		if i, ok := byName[name]; ok {
			return &q.Policies[i]
		}
		byName[name] = len(q.Policies)
		q.Policies = append(q.Policies, PolicyQuota{Name: name})
		return &q.Policies[len(q.Policies)-1]
	}
	for _, v := range get("ratelimit-policy") {
		for _, m := range splitList(v) {
			name, params, ok := parseMember(m)
			if !ok {
				continue
			}
			p := pol(name)
			if n, ok := params["q"]; ok {
				p.Limit = int(n)
			}
			if w, ok := params["w"]; ok {
				p.Window = seconds(w)
			}
		}
	}
	for _, v := range get("ratelimit") {
		if dict, ok := parseDictionary(v); ok { // draft-07 form
			p := pol("")
			setTrio(p, dict["limit"], dict["remaining"], dict["reset"])
			continue
		}
		for _, m := range splitList(v) {
			name, params, ok := parseMember(m)
			if !ok {
				continue
			}
			p := pol(name)
			if r, ok := params["r"]; ok {
				p.Remaining, p.HasRemaining = int(r), true
			}
			if t, ok := params["t"]; ok {
				p.Reset = seconds(t)
			}
		}
	}
	for _, prefix := range []string{"ratelimit-", "x-ratelimit-"} {
		l, lok := firstInt(get(prefix + "limit"))
		r, rok := firstInt(get(prefix + "remaining"))
		t, tok := firstInt(get(prefix + "reset"))
		if !lok && !rok && !tok {
			continue
		}
		if tok && t > 1_000_000_000 { // Unix seconds, as some APIs send
			t = max(int64(time.Unix(t, 0).Sub(now).Round(time.Second)/time.Second), 0)
		}
		p := pol("")
		setTrio(p, opt{l, lok}, opt{r, rok}, opt{t, tok})
	}
	return q
}

type opt struct {
	v  int64
	ok bool
}

func setTrio(p *PolicyQuota, l, r, t opt) {
	if l.ok {
		p.Limit = int(l.v)
	}
	if r.ok {
		p.Remaining, p.HasRemaining = int(r.v), true
	}
	if t.ok {
		p.Reset = seconds(t.v)
	}
}

func seconds(n int64) time.Duration {
	if n > int64(1<<63-1)/int64(time.Second) {
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(n) * time.Second
}

func firstInt(vs []string) (int64, bool) {
	for _, v := range vs {
		v = strings.TrimSpace(v)
		if i := strings.IndexByte(v, ','); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return n, true
		}
	}
	return 0, false
}

// splitList splits a structured-field list at commas outside quoted
// strings.
func splitList(v string) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			if inQuote {
				i++
			}
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				out = append(out, strings.TrimSpace(v[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(v[start:]))
}

// parseMember parses `"name";k=1;k2=2` (or a token name) into the name and
// its non-negative integer parameters.
func parseMember(m string) (string, map[string]int64, bool) {
	if m == "" {
		return "", nil, false
	}
	var name, rest string
	if m[0] == '"' {
		end := -1
		var b strings.Builder
		for i := 1; i < len(m); i++ {
			if m[i] == '\\' && i+1 < len(m) {
				i++
				b.WriteByte(m[i])
				continue
			}
			if m[i] == '"' {
				end = i
				break
			}
			b.WriteByte(m[i])
		}
		if end < 0 {
			return "", nil, false
		}
		name, rest = b.String(), m[end+1:]
	} else {
		i := strings.IndexByte(m, ';')
		if i < 0 {
			i = len(m)
		}
		name, rest = strings.TrimSpace(m[:i]), m[i:]
		if name == "" || strings.ContainsAny(name, "= ") {
			return "", nil, false
		}
	}
	params := map[string]int64{}
	for _, p := range strings.Split(rest, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n >= 0 {
			params[strings.TrimSpace(k)] = n
		}
	}
	return name, params, true
}

// parseDictionary recognises the draft-07 form "limit=10, remaining=5,
// reset=3".
func parseDictionary(v string) (map[string]opt, bool) {
	d := map[string]opt{}
	for _, m := range splitList(v) {
		k, val, ok := strings.Cut(m, "=")
		if !ok {
			return nil, false
		}
		k = strings.TrimSpace(k)
		if k != "limit" && k != "remaining" && k != "reset" {
			return nil, false
		}
		if i := strings.IndexByte(val, ';'); i >= 0 {
			val = val[:i]
		}
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil || n < 0 {
			return nil, false
		}
		d[k] = opt{n, true}
	}
	return d, len(d) > 0
}
