// Package bulwarkhttp puts bulwark's patterns in front of net/http servers
// and behind net/http clients.
//
// # Server middleware
//
// Each constructor returns a plain func(http.Handler) http.Handler, so it
// fits net/http, chi, gorilla/mux and any router that takes that shape, plus
// an error wrapping bulwark.ErrInvalidConfig for a bad argument or option:
//
//	limit, err := bulwarkhttp.Limit(limiter,
//		bulwarkhttp.KeyByIP(netip.MustParsePrefix("10.0.0.0/8")), // the load balancers
//		bulwarkhttp.WithPolicy("default", time.Minute),
//		bulwarkhttp.WithExcludedPaths("/healthz", "/metrics"))
//	if err != nil {
//		return err
//	}
//	http.ListenAndServe(addr, limit(mux))
//
// The middleware:
//
//   - [Limit]: rate limiting with a bulwark.Limiter; 429 with Retry-After
//     and the IETF RateLimit-Policy / RateLimit header fields (also on
//     allowed responses), optionally the older RateLimit-Limit / -Remaining
//     / -Reset trio; shadow mode to try a limit on live traffic.
//   - [Breaker]: 503 while a bulwark.Breaker is open; outcomes are reported
//     from the response status.
//   - [Bulkhead]: 503 when a bulwark.Bulkhead has no slot.
//   - [Shed]: 503 when a [Shedder] (a load shedder) refuses the request's
//     priority.
//   - [Timeout]: a deadline on the request context and 504 when the handler
//     has not answered in time.
//
// Every rejection goes through a replaceable [RejectFunc] ([DefaultReject]
// writes the status text); errors are mapped to statuses with errors.Is and
// their text never reaches the client. Retry-After is always whole seconds
// rounded up, so an obedient client never comes back too early; a
// [RetryAfterSource] such as a backpressure estimator can raise it
// ([WithBackpressure]).
//
// Keys: [KeyByIP] believes X-Forwarded-For only from an explicit list of
// trusted proxies, reading it from the right, so a client cannot pick its
// own bucket by writing the header; [KeyByForwarded] does the same with
// the RFC 7239 Forwarded field; [KeyByHeader], [KeyByRoute] and
// [WithKeyFunc] cover the rest.
//
// # Client transport
//
// [Transport] is an http.RoundTripper that retries idempotent requests
// (replaying bodies through GetBody), honours Retry-After on 429 and 503
// (delta-seconds and HTTP-date, capped and jittered), backs off
// exponentially otherwise, never waits past the request's deadline, and can
// guard each host with a breaker ([WithHostBreaker]) and a limiter
// ([WithHostLimiter]) and hedge slow GETs ([WithHedge]).
//
// # Clients that pace themselves
//
// A [Pacer] reads what servers say of the client's quota ([Quota]: the
// IETF RateLimit and RateLimit-Policy fields, the older RateLimit-* and
// X-RateLimit-* fields, Retry-After) and holds requests back in a bounded
// queue once the quota is spent, instead of sending requests that would
// be refused. One Pacer is shared by every goroutine and transport
// ([WithPacer]) and by bulwarkgrpc clients; [WithPacerStore] shares its
// holds across a fleet (distributed.Store.PaceHolds).
package bulwarkhttp
