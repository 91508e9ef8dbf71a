package bulwarkgrpc

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/bulwark-go/bulwark"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Metadata keys written or read by the interceptors. gRPC metadata keys
// are lower case.
const (
	// PushbackKey is the trailer gRPC clients read for a server's retry
	// advice, in whole milliseconds (gRPC's retry design, A6): a
	// non-negative value means "retry after exactly this long", a negative
	// or malformed one "do not retry".
	PushbackKey = "grpc-retry-pushback-ms"
	// DefaultDegradedKey is the metadata key that carries "true" when a
	// limiter decided locally because its shared store was unreachable
	// (see [WithDegradedTrailer]).
	DefaultDegradedKey = "bulwark-degraded"
	// RateLimitKey and RateLimitPolicyKey carry the IETF RateLimit and
	// RateLimit-Policy fields (draft-ietf-httpapi-ratelimit-headers) in
	// metadata, with the same syntax as the HTTP fields.
	RateLimitKey       = "ratelimit"
	RateLimitPolicyKey = "ratelimit-policy"
)

// Error is a rejection by an interceptor: a gRPC status that also matches,
// with errors.Is, the bulwark sentinel behind it (bulwark.ErrRateLimited,
// bulwark.ErrOpen, bulwark.ErrBulkheadFull, bulwark.ErrTimeout…).
// status.FromError and status.Code read its status.
type Error struct {
	st    *status.Status
	cause error
}

// Error returns the status's text.
func (e *Error) Error() string { return e.st.Err().Error() }

// GRPCStatus returns the status sent to the peer.
func (e *Error) GRPCStatus() *status.Status { return e.st }

// Unwrap returns the bulwark error behind the rejection.
func (e *Error) Unwrap() error { return e.cause }

func rejection(c codes.Code, msg string, cause error) *Error {
	return &Error{st: status.New(c, msg), cause: cause}
}

// rateLimited is the RESOURCE_EXHAUSTED status for a denied decision, with
// a google.rpc.RetryInfo detail giving the exact wait.
func rateLimited(d bulwark.Decision) *Error {
	st := status.New(codes.ResourceExhausted, "rate limited")
	if ds, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d.RetryAfter)}); err == nil {
		st = ds
	}
	return &Error{st: st, cause: d.Err()}
}

// pushbackMillis formats a wait as the grpc-retry-pushback-ms value: whole
// milliseconds, rounded up, so a client that obeys it is never early.
func pushbackMillis(d time.Duration) string {
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return strconv.FormatInt(max(ms, 0), 10)
}

// fromError turns an error from a pattern (not a rejection) into a status
// error: a context's error becomes CANCELED or DEADLINE_EXCEEDED, anything
// else the given code with a fixed message (the error's text never reaches
// the peer).
func fromError(err error, c codes.Code, msg string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return rejection(c, msg, err)
}

// DefaultIsFailure is how the breakers count a call's outcome by its
// status code, from the dependency's point of view. Failures (the
// dependency is unhealthy or overloaded): UNKNOWN, DEADLINE_EXCEEDED,
// RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DATA_LOSS. Everything else is
// a success for its health: OK, and the codes that say the request was
// wrong or refused on its merits (INVALID_ARGUMENT, NOT_FOUND,
// ALREADY_EXISTS, PERMISSION_DENIED, UNAUTHENTICATED,
// FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED) — a healthy
// service answers those — and CANCELED, which the caller caused.
func DefaultIsFailure(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.DeadlineExceeded, codes.ResourceExhausted,
		codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// trailerSetter collects metadata for the call's trailer.
type trailerSetter func(metadata.MD)
