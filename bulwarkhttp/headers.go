package bulwarkhttp

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark-go/bulwark"
)

// Canonical header names, so the middleware can write the header map
// directly without canonicalising on every request.
const (
	headerRetryAfter         = "Retry-After"
	headerRateLimitPolicy    = "Ratelimit-Policy"
	headerRateLimit          = "Ratelimit"
	headerRateLimitLimit     = "Ratelimit-Limit"
	headerRateLimitRemaining = "Ratelimit-Remaining"
	headerRateLimitReset     = "Ratelimit-Reset"
)

// RetryAfterSeconds converts a wait into the delta-seconds of a Retry-After
// field: whole seconds, rounded up, never down, so a client that obeys the
// header never comes back too early. 1.2s becomes 2; 0 or less becomes 0.
func RetryAfterSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// quoteString formats s as a structured-field sf-string.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// rateLimitFields are the pre-formatted parts of the RateLimit header
// fields that do not change from request to request.
type rateLimitFields struct {
	headers bool
	legacy  bool
	policy  string // quoted policy name
	window  int64  // "w" in seconds, 0 to leave it out
}

// write sets the RateLimit header fields for d, and Retry-After when
// retryAfter >= 0. reset is the "t" parameter in seconds. All values are
// formatted into one buffer and become one string and one slice, so a
// response costs two allocations however many fields it carries.
func (f *rateLimitFields) write(h http.Header, d bulwark.Decision, reset, retryAfter int64) {
	var buf [256]byte
	var ends [6]int
	var names [6]string
	b := buf[:0]
	n := 0
	limit := int64(max(d.Limit, 0))
	remaining := int64(min(max(d.Remaining, 0), max(d.Limit, 0)))
	if f.headers {
		b = append(b, f.policy...)
		b = append(b, ";q="...)
		b = strconv.AppendInt(b, limit, 10)
		if f.window > 0 {
			b = append(b, ";w="...)
			b = strconv.AppendInt(b, f.window, 10)
		}
		names[n], ends[n] = headerRateLimitPolicy, len(b)
		n++
		b = append(b, f.policy...)
		b = append(b, ";r="...)
		b = strconv.AppendInt(b, remaining, 10)
		b = append(b, ";t="...)
		b = strconv.AppendInt(b, reset, 10)
		names[n], ends[n] = headerRateLimit, len(b)
		n++
	}
	if f.legacy {
		b = strconv.AppendInt(b, limit, 10)
		names[n], ends[n] = headerRateLimitLimit, len(b)
		n++
		b = strconv.AppendInt(b, remaining, 10)
		names[n], ends[n] = headerRateLimitRemaining, len(b)
		n++
		b = strconv.AppendInt(b, reset, 10)
		names[n], ends[n] = headerRateLimitReset, len(b)
		n++
	}
	if retryAfter >= 0 {
		b = strconv.AppendInt(b, retryAfter, 10)
		names[n], ends[n] = headerRetryAfter, len(b)
		n++
	}
	if n == 0 {
		return
	}
	s := string(b)
	vals := make([]string, n)
	start := 0
	for i := range n {
		vals[i] = s[start:ends[i]]
		start = ends[i]
		// A capacity of one keeps a later Add on one field from writing
		// into the next field's value.
		h[names[i]] = vals[i : i+1 : i+1]
	}
}

// setRetryAfter sets Retry-After to d rounded up, when d > 0.
func setRetryAfter(h http.Header, d time.Duration) {
	if d > 0 {
		h[headerRetryAfter] = []string{strconv.FormatInt(RetryAfterSeconds(d), 10)}
	}
}

// DefaultReject writes rej.Status with a short fixed plain-text body: the
// status text, such as "Too Many Requests". It never reveals rej.Err.
func DefaultReject(w http.ResponseWriter, _ *http.Request, rej Rejection) {
	status := rej.Status
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, http.StatusText(status)+"\n")
}
