package bulwarkgrpc

import (
	"context"
	"net"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// KeyFunc derives the rate-limit key of a call: the identity whose calls
// share one budget. method is the full method name ("/pkg.Service/Method").
// It runs on the call's goroutine for every call.
type KeyFunc func(ctx context.Context, method string) string

// KeyByPeer keys calls by the peer's IP address (without port): the
// default of [Limit]. A call with no peer information (an in-process
// transport) has the key "".
func KeyByPeer() KeyFunc { return peerKey }

func peerKey(ctx context.Context, _ string) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	s := p.Addr.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// KeyByMetadata keys calls by the first value of the incoming metadata key
// name (such as "x-api-key" or "x-tenant"), compared in lower case as gRPC
// does. A call without it falls back to fallback, or to the peer address
// when fallback is nil, so a client cannot escape its budget by leaving the
// key out.
func KeyByMetadata(name string, fallback KeyFunc) KeyFunc {
	if fallback == nil {
		fallback = peerKey
	}
	return func(ctx context.Context, method string) string {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get(name); len(v) > 0 && v[0] != "" {
				return "md:" + v[0]
			}
		}
		return fallback(ctx, method)
	}
}

// KeyByMethod keys calls by their full method name: one budget per method
// for all clients together.
func KeyByMethod() KeyFunc {
	return func(_ context.Context, method string) string { return method }
}

// KeyJoin keys calls by several keys at once, such as the peer and the
// method: one budget per combination.
// Nil entries are skipped.
func KeyJoin(keys ...KeyFunc) KeyFunc {
	var ks []KeyFunc
	for _, k := range keys {
		if k != nil {
			ks = append(ks, k)
		}
	}
	keys = ks
	return func(ctx context.Context, method string) string {
		var b []byte
		for i, k := range keys {
			if i > 0 {
				b = append(b, 0)
			}
			b = append(b, k(ctx, method)...)
		}
		return string(b)
	}
}
