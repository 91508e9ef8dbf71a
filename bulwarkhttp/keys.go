package bulwarkhttp

import (
	"net/http"
	"net/netip"
	"strings"
)

// KeyByIP keys requests by client IP address.
//
// With no trusted proxy the key is the TCP peer's address
// (http.Request.RemoteAddr without its port), and X-Forwarded-For is
// ignored: any client can write that header, so believing it would let a
// client pick its own bucket, or spend a victim's.
//
// With trusted proxies (for example netip.MustParsePrefix("10.0.0.0/8") for
// the load balancers in front of the service) the header is believed only
// as far as trusted hops wrote it: when the peer is a trusted proxy the
// X-Forwarded-For entries are read from right to left, skipping entries
// that are themselves trusted proxies, and the first untrusted entry is the
// client. A malformed or "unknown" entry stops the walk at the last trusted
// hop, which then is the key. Spoofed entries a client puts at the left of
// the list are therefore never reached. Several X-Forwarded-For fields are
// read as one list, in order.
//
// The key is the address as spelled in RemoteAddr or the header entry
// (without port or brackets); finding it allocates nothing. Every prefix
// must be valid.
func KeyByIP(trustedProxies ...netip.Prefix) Option {
	return keyByIP("X-Forwarded-For", false, trustedProxies)
}

// KeyByForwarded is [KeyByIP] reading the standard Forwarded field (RFC
// 7239: the "for" parameter of each element) instead of X-Forwarded-For.
// Use it only when every trusted proxy writes Forwarded; a proxy that
// appends only X-Forwarded-For leaves a client-written Forwarded field
// untouched, and that field would be believed.
func KeyByForwarded(trustedProxies ...netip.Prefix) Option {
	return keyByIP("Forwarded", true, trustedProxies)
}

func keyByIP(header string, forwarded bool, trusted []netip.Prefix) Option {
	return func(o *options) {
		k := &ipKeyer{header: header, forwarded: forwarded}
		for _, p := range trusted {
			if !p.IsValid() {
				o.fail("bulwarkhttp: invalid trusted proxy prefix %v", p)
				return
			}
			k.trusted = append(k.trusted, p.Masked())
		}
		o.keyFunc = k.key
	}
}

// KeyByHeader keys requests by the first value of the named request header,
// such as an API key checked by an earlier middleware. Requests without the
// header share the empty key. Only use a header that a client cannot set
// freely, or authenticate it first: otherwise each client chooses its own
// bucket.
func KeyByHeader(name string) Option {
	return func(o *options) {
		if name == "" || !validHeaderName(name) {
			o.fail("bulwarkhttp: invalid key header name %q", name)
			return
		}
		ck := http.CanonicalHeaderKey(name)
		o.keyFunc = func(r *http.Request) string {
			if v := r.Header[ck]; len(v) > 0 {
				return v[0]
			}
			return ""
		}
	}
}

// KeyByRoute keys requests by route, so each route has one budget shared by
// every client. The route is http.Request.Pattern, which net/http.ServeMux
// sets before calling the handler registered for the pattern (so wrap the
// handlers you register, not the mux); when Pattern is empty the URL path is
// used, which gives one key per distinct path. For routers that keep their
// pattern elsewhere, use [WithKeyFunc].
func KeyByRoute() Option {
	return func(o *options) { o.keyFunc = routeKey }
}

func routeKey(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.URL.Path
}

// remoteAddrKey is the default key: the TCP peer's address.
func remoteAddrKey(r *http.Request) string {
	host, _, ok := parseHostPort(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	return host
}

type ipKeyer struct {
	header    string // canonical header name
	forwarded bool   // RFC 7239 syntax
	trusted   []netip.Prefix
}

func (k *ipKeyer) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range k.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (k *ipKeyer) key(r *http.Request) string {
	host, addr, ok := parseHostPort(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if len(k.trusted) == 0 || !k.isTrusted(addr) {
		return host
	}
	last := host
	vals := r.Header[k.header]
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			var elem string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				elem, v = v[j+1:], v[:j]
			} else {
				elem, v = v, ""
			}
			elem = trimOWS(elem)
			if elem == "" {
				continue
			}
			if k.forwarded {
				if elem, ok = forwardedFor(elem); !ok {
					return last
				}
			}
			s, a, ok := parseHostPort(elem)
			if !ok {
				return last
			}
			if !k.isTrusted(a) {
				return s
			}
			last = s
		}
	}
	return last
}

// ClientIP returns the client address of r as [KeyByIP] finds it: the TCP
// peer, or, when the peer is one of trustedProxies, the first untrusted
// X-Forwarded-For entry from the right. It returns "" when RemoteAddr holds
// no IP address (a Unix socket).
func ClientIP(r *http.Request, trustedProxies ...netip.Prefix) string {
	k := ipKeyer{header: "X-Forwarded-For"}
	for _, p := range trustedProxies {
		if p.IsValid() {
			k.trusted = append(k.trusted, p.Masked())
		}
	}
	if _, _, ok := parseHostPort(r.RemoteAddr); !ok {
		return ""
	}
	return k.key(r)
}

// parseHostPort reads "1.2.3.4", "1.2.3.4:80", "::1", "[::1]" or "[::1]:80"
// and returns the address text without port or brackets, and the address.
func parseHostPort(s string) (string, netip.Addr, bool) {
	// Pick the one spelling s can be before parsing: a failed parse
	// allocates its error, and the common case (ip:port) must not.
	host := s
	switch colon := strings.IndexByte(s, ':'); {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", netip.Addr{}, false
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" && (rest[0] != ':' || !digits(rest[1:])) {
			return "", netip.Addr{}, false
		}
	case colon >= 0 && strings.IndexByte(s[colon+1:], ':') < 0:
		// Exactly one colon: IPv4 with a port.
		if !digits(s[colon+1:]) {
			return "", netip.Addr{}, false
		}
		host = s[:colon]
	}
	if host == "" {
		return "", netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return "", netip.Addr{}, false
	}
	return host, a, true
}

func digits(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// forwardedFor returns the value of the "for" parameter of one Forwarded
// element ("for=192.0.2.1;proto=https"), without quotes.
func forwardedFor(elem string) (string, bool) {
	for elem != "" {
		var pair string
		if j := strings.IndexByte(elem, ';'); j >= 0 {
			pair, elem = elem[:j], elem[j+1:]
		} else {
			pair, elem = elem, ""
		}
		pair = trimOWS(pair)
		eq := strings.IndexByte(pair, '=')
		if eq < 0 || !strings.EqualFold(pair[:eq], "for") {
			continue
		}
		v := pair[eq+1:]
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return v, v != ""
	}
	return "", false
}
