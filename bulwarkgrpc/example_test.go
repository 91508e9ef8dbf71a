package bulwarkgrpc_test

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/bulwarkgrpc"
	"github.com/bulwark-go/bulwark/local"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// A server limiting each client to one call per minute, serving gRPC's
// health service over an in-memory connection.
func ExampleLimit() {
	limiter, _ := local.NewTokenBucket(bulwark.PerMinute(1))
	limit, err := bulwarkgrpc.Limit(limiter, bulwarkgrpc.WithKey(bulwarkgrpc.KeyByMetadata("x-api-key", nil)))
	if err != nil {
		fmt.Println(err)
		return
	}
	lis := bufconn.Listen(1 << 16)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(limit.Unary()), grpc.ChainStreamInterceptor(limit.Stream()))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, _ := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-api-key", "k1")
	for range 2 {
		var trailer metadata.MD
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
		fmt.Print(status.Code(err))
		if p := trailer.Get(bulwarkgrpc.PushbackKey); len(p) == 1 {
			ms, _ := strconv.Atoi(p[0]) // the exact wait, in ms rounded up
			fmt.Printf(", retry in %ds", (ms+500)/1000)
		}
		fmt.Println()
	}
	// Output:
	// OK
	// ResourceExhausted, retry in 60s
}
