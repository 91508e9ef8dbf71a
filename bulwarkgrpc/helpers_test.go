package bulwarkgrpc

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The test service, declared by hand so that no generated code is needed:
// /test.Echo/Say (unary), /test.Echo/Watch (server streaming: three
// replies), /test.Echo/Chat (bidirectional: echoes until the client
// closes). Messages are wrapperspb.StringValue.
const (
	methodSay   = "/test.Echo/Say"
	methodWatch = "/test.Echo/Watch"
	methodChat  = "/test.Echo/Chat"
)

// echo is the service's behaviour. Each unary request is a command:
// "ok" answers "ok"; "code=N" fails with code N; "header code=N" sends
// response headers first; "pushback=MS code=N" adds the pushback trailer;
// "block" waits for ctx (or forever with "block-hard" until release is
// closed).
type echo struct {
	calls   atomic.Int64
	release chan struct{}
	onCall  func(ctx context.Context, in string) // optional hook
	entered chan string                          // optional: receives each command on entry
}

func newEcho() *echo { return &echo{release: make(chan struct{})} }

func (e *echo) say(ctx context.Context, in string) (string, error) {
	n := e.calls.Add(1)
	if strings.HasPrefix(in, "first ") && n > 1 {
		return "ok", nil // the command applies to the first call only
	}
	if e.entered != nil {
		e.entered <- in
	}
	if e.onCall != nil {
		e.onCall(ctx, in)
	}
	var code codes.Code
	for _, f := range strings.Fields(in) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "header":
			_ = grpc.SendHeader(ctx, metadata.Pairs("x-sent", "1"))
		case "code":
			n, _ := strconv.Atoi(v)
			code = codes.Code(n)
		case "pushback":
			_ = grpc.SetTrailer(ctx, metadata.Pairs(PushbackKey, v))
		case "block":
			select {
			case <-ctx.Done():
				return "", status.FromContextError(ctx.Err()).Err()
			case <-e.release:
			}
		case "block-hard":
			<-e.release
		case "panic":
			panic("handler bug")
		case "retryinfo":
			ms, _ := strconv.Atoi(v)
			st, _ := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(ms) * time.Millisecond)})
			return "", st.Err()
		case "deadline":
			dl, ok := ctx.Deadline()
			if !ok {
				return "none", nil
			}
			return time.Until(dl).Round(time.Second).String(), nil
		}
	}
	if code != codes.OK {
		return "", status.Error(code, "failed on purpose")
	}
	return "ok", nil
}

type echoServer interface{}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "test.Echo",
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Say",
		Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) {
				out, err := srv.(*echo).say(ctx, req.(*wrapperspb.StringValue).GetValue())
				if err != nil {
					return nil, err
				}
				return wrapperspb.String(out), nil
			}
			if ic == nil {
				return h(ctx, in)
			}
			return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: methodSay}, h)
		},
	}},
	Streams: []grpc.StreamDesc{
		{
			StreamName:    "Watch",
			ServerStreams: true,
			Handler: func(srv any, ss grpc.ServerStream) error {
				in := new(wrapperspb.StringValue)
				if err := ss.RecvMsg(in); err != nil {
					return err
				}
				e := srv.(*echo)
				if n := e.calls.Add(1); n == 1 && strings.HasPrefix(in.GetValue(), "first-fail") {
					ss.SetTrailer(metadata.Pairs(PushbackKey, "10"))
					return status.Error(codes.Unavailable, "not yet")
				}
				if in.GetValue() == "block" {
					<-ss.Context().Done()
					return ss.Context().Err()
				}
				if in.GetValue() == "hold" {
					<-e.release
				}
				for i := range 3 {
					if err := ss.SendMsg(wrapperspb.String(fmt.Sprint(in.GetValue(), i))); err != nil {
						return err
					}
				}
				if strings.HasPrefix(in.GetValue(), "code=") {
					n, _ := strconv.Atoi(strings.TrimPrefix(in.GetValue(), "code="))
					return status.Error(codes.Code(n), "failed on purpose")
				}
				return nil
			},
		},
		{
			StreamName:    "Chat",
			ServerStreams: true,
			ClientStreams: true,
			Handler: func(srv any, ss grpc.ServerStream) error {
				srv.(*echo).calls.Add(1)
				for {
					in := new(wrapperspb.StringValue)
					if err := ss.RecvMsg(in); err == io.EOF {
						return nil
					} else if err != nil {
						return err
					}
					if err := ss.SendMsg(in); err != nil {
						return err
					}
				}
			},
		},
	},
}

// startServer serves e on a loopback TCP port with the given options and
// returns its address.
func startServer(t testing.TB, e *echo, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	srv.RegisterService(&echoDesc, e)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		closeRelease(e)
		srv.Stop()
		wg.Wait()
	})
	return lis.Addr().String()
}

func closeRelease(e *echo) {
	select {
	case <-e.release:
	default:
		close(e.release)
	}
}

// startBufconn serves e over an in-memory listener and returns a
// connection to it.
func startBufconn(t testing.TB, e *echo, sopts []grpc.ServerOption, dopts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(sopts...)
	srv.RegisterService(&echoDesc, e)
	go func() { _ = srv.Serve(lis) }()
	dopts = append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, dopts...)
	conn, err := grpc.NewClient("passthrough:///bufnet", dopts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		closeRelease(e)
		srv.Stop()
	})
	return conn
}

func dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// say calls /test.Echo/Say with in and returns the reply, the error and
// the response metadata.
func say(ctx context.Context, conn *grpc.ClientConn, in string, opts ...grpc.CallOption) (string, error, metadata.MD, metadata.MD) {
	var hdr, trl metadata.MD
	out := new(wrapperspb.StringValue)
	opts = append(opts, grpc.Header(&hdr), grpc.Trailer(&trl))
	err := conn.Invoke(ctx, methodSay, wrapperspb.String(in), out, opts...)
	return out.GetValue(), err, hdr, trl
}

var watchDesc = &grpc.StreamDesc{StreamName: "Watch", ServerStreams: true}
var chatDesc = &grpc.StreamDesc{StreamName: "Chat", ServerStreams: true, ClientStreams: true}

// watch opens /test.Echo/Watch with in and reads it to the end.
func watch(ctx context.Context, conn *grpc.ClientConn, in string) ([]string, error, grpc.ClientStream) {
	cs, err := conn.NewStream(ctx, watchDesc, methodWatch)
	if err != nil {
		return nil, err, nil
	}
	if err := cs.SendMsg(wrapperspb.String(in)); err != nil {
		return nil, err, cs
	}
	if err := cs.CloseSend(); err != nil {
		return nil, err, cs
	}
	var got []string
	for {
		m := new(wrapperspb.StringValue)
		if err := cs.RecvMsg(m); err == io.EOF {
			return got, nil, cs
		} else if err != nil {
			return got, err, cs
		}
		got = append(got, m.GetValue())
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t testing.TB, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("status code = %v (%v), want %v", got, err, want)
	}
}

type stringMsg = wrapperspb.StringValue

func stringMsgOf(s string) *stringMsg { return wrapperspb.String(s) }

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
