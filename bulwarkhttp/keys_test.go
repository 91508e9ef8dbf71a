package bulwarkhttp

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/bulwark-go/bulwark"
)

func TestKeyByIPTrustedProxies(t *testing.T) {
	lb := netip.MustParsePrefix("10.0.0.0/8")
	v6 := netip.MustParsePrefix("2001:db8::/32")
	for _, tc := range []struct {
		name      string
		opt       Option
		remote    string
		xff       []string
		forwarded []string
		want      string
	}{
		{
			name:   "no trusted proxy: spoofed header from any peer is ignored",
			opt:    KeyByIP(),
			remote: "203.0.113.5:1234",
			xff:    []string{"1.1.1.1"},
			want:   "203.0.113.5",
		},
		{
			name:   "untrusted peer: spoofed header is ignored",
			opt:    KeyByIP(lb),
			remote: "203.0.113.5:1234",
			xff:    []string{"198.51.100.7"},
			want:   "203.0.113.5",
		},
		{
			name:   "trusted peer: rightmost untrusted entry is the client",
			opt:    KeyByIP(lb),
			remote: "10.0.0.1:443",
			xff:    []string{"1.1.1.1, 198.51.100.7"},
			want:   "198.51.100.7",
		},
		{
			name:   "chain of trusted proxies is skipped",
			opt:    KeyByIP(lb),
			remote: "10.0.0.1:443",
			xff:    []string{"6.6.6.6, 198.51.100.7, 10.0.0.9 , 10.3.2.1"},
			want:   "198.51.100.7",
		},
		{
			name:   "several header fields read as one list",
			opt:    KeyByIP(lb),
			remote: "10.0.0.1:443",
			xff:    []string{"6.6.6.6, 198.51.100.7", "10.0.0.9"},
			want:   "198.51.100.7",
		},
		{
			name:   "every entry trusted: leftmost known hop",
			opt:    KeyByIP(lb),
			remote: "10.0.0.1:443",
			xff:    []string{"10.0.0.3, 10.0.0.2"},
			want:   "10.0.0.3",
		},
		{
			name:   "malformed entry stops at the last trusted hop",
			opt:    KeyByIP(lb),
			remote: "10.0.0.1:443",
			xff:    []string{"198.51.100.7, garbage, 10.0.0.2"},
			want:   "10.0.0.2",
		},
		{
			name:   "no header from trusted peer: the peer",
			opt:    KeyByIP(lb),
			remote: "10.0.0.1:443",
			want:   "10.0.0.1",
		},
		{
			name:   "entries with ports and empty elements",
			opt:    KeyByIP(lb),
			remote: "10.0.0.1:443",
			xff:    []string{"198.51.100.7:5555, , 10.0.0.5:80"},
			want:   "198.51.100.7",
		},
		{
			name:   "ipv6 peer and entries",
			opt:    KeyByIP(v6),
			remote: "[2001:db8::1]:443",
			xff:    []string{"2a00::1, 2001:db8:ffff::9"},
			want:   "2a00::1",
		},
		{
			name:   "ipv4-mapped peer matches an ipv4 prefix",
			opt:    KeyByIP(lb),
			remote: "[::ffff:10.0.0.1]:443",
			xff:    []string{"198.51.100.7"},
			want:   "198.51.100.7",
		},
		{
			name:      "KeyByIP ignores Forwarded",
			opt:       KeyByIP(lb),
			remote:    "10.0.0.1:443",
			forwarded: []string{"for=6.6.6.6"},
			want:      "10.0.0.1",
		},
		{
			name:      "Forwarded: rightmost untrusted for=",
			opt:       KeyByForwarded(lb),
			remote:    "10.0.0.1:443",
			forwarded: []string{`for=6.6.6.6, For="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.2;by=10.0.0.1`},
			want:      "2001:db8:cafe::17",
		},
		{
			name:      "Forwarded: unknown stops at the last trusted hop",
			opt:       KeyByForwarded(lb),
			remote:    "10.0.0.1:443",
			forwarded: []string{"for=198.51.100.7, for=unknown"},
			want:      "10.0.0.1",
		},
		{
			name:      "Forwarded: element without for=",
			opt:       KeyByForwarded(lb),
			remote:    "10.0.0.1:443",
			forwarded: []string{"proto=https"},
			want:      "10.0.0.1",
		},
		{
			name:      "Forwarded: ignored from an untrusted peer",
			opt:       KeyByForwarded(lb),
			remote:    "198.51.100.7:443",
			forwarded: []string{"for=6.6.6.6"},
			want:      "198.51.100.7",
		},
		{
			name:   "unix socket peer",
			opt:    KeyByIP(lb),
			remote: "@",
			want:   "@",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &scriptedLimiter{decisions: []bulwark.Decision{{Allowed: true, Limit: 1}}}
			h := must(t)(Limit(l, tc.opt))(okHandler)
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tc.forwarded {
				r.Header.Add("Forwarded", v)
			}
			serve(h, r)
			if got := l.lastKey(); got != tc.want {
				t.Errorf("key = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.1.1:80"
	r.Header.Set("X-Forwarded-For", "6.6.6.6, 198.51.100.7")
	if got := ClientIP(r); got != "10.1.1.1" {
		t.Errorf("untrusted: got %q", got)
	}
	if got := ClientIP(r, netip.MustParsePrefix("10.0.0.0/8")); got != "198.51.100.7" {
		t.Errorf("trusted: got %q", got)
	}
	r.RemoteAddr = "not an address"
	if got := ClientIP(r); got != "" {
		t.Errorf("no address: got %q", got)
	}
}

func TestKeyByIPAllocatesNothing(t *testing.T) {
	o, err := buildOptions([]Option{KeyByIP(netip.MustParsePrefix("10.0.0.0/8"))})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:443"
	r.Header.Set("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.2")
	var k string
	if n := testing.AllocsPerRun(100, func() { k = o.keyFunc(r) }); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
	if k != "198.51.100.7" {
		t.Errorf("key = %q", k)
	}
}

func TestKeyByHeaderAndRoute(t *testing.T) {
	l := &scriptedLimiter{decisions: []bulwark.Decision{{Allowed: true, Limit: 1}}}
	h := must(t)(Limit(l, KeyByHeader("x-api-key")))(okHandler)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Api-Key", "k1")
	serve(h, r)
	if got := l.lastKey(); got != "k1" {
		t.Errorf("header key = %q", got)
	}
	serve(h, httptest.NewRequest("GET", "/", nil))
	if got := l.lastKey(); got != "" {
		t.Errorf("missing header key = %q, want empty", got)
	}

	mw := must(t)(Limit(l, KeyByRoute()))
	mux := http.NewServeMux()
	mux.Handle("GET /users/{id}", mw(okHandler))
	serve(mux, httptest.NewRequest("GET", "/users/42", nil))
	if got := l.lastKey(); got != "GET /users/{id}" {
		t.Errorf("route key = %q", got)
	}
	serve(mw(okHandler), httptest.NewRequest("GET", "/plain/path", nil))
	if got := l.lastKey(); got != "/plain/path" {
		t.Errorf("route key without pattern = %q", got)
	}

	custom := must(t)(Limit(l, WithKeyFunc(func(r *http.Request) string { return "tenant-" + r.URL.Query().Get("t") })))
	serve(custom(okHandler), httptest.NewRequest("GET", "/?t=7", nil))
	if got := l.lastKey(); got != "tenant-7" {
		t.Errorf("custom key = %q", got)
	}
}
