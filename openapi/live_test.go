package openapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/openapi"
	"github.com/bulwark-go/bulwark/policy"
)

// TestLiveConfig: with WithLiveConfig, a live change of an operation's
// policy (here: its rate limit put in shadow mode, then rolled back)
// applies to the running middleware on the next requests, on the same
// fleet-wide bucket.
func TestLiveConfig(t *testing.T) {
	a, err := openapi.Parse([]byte(`openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /orders:
    get:
      operationId: listOrders
      x-bulwark:
        ratelimit: {limit: 3, per: 1h, key: global}
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := redistest.Default(t)
	prefix := strings.TrimSuffix(redistest.Prefix(t, c), ":")
	live, err := control.NewReplica(c, control.WithPrefix(prefix), control.WithPollInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Close() })
	var stack *policy.Stack
	srv := newServer(t, a, okHandler(&served{}), openapi.WithStore(fleetStore(t, prefix)), openapi.WithLiveConfig(live),
		openapi.WithStackHook(func(_ openapi.Operation, s *policy.Stack) { stack = s }))
	if got := statuses(t, 4, "GET", srv.URL+"/orders"); !eq(got, []int{200, 200, 200, 429}) {
		t.Fatalf("under the document's limit = %v", got)
	}
	ops, err := control.New(c, control.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	// The replica registers the document's values as the defaults, over
	// which a change is validated.
	waitFor(t, func() bool {
		e, err := ops.Get(context.Background(), "listOrders")
		return err == nil && e.Defaults != nil
	})
	if _, err := ops.Assign(context.Background(), "listOrders", []string{"ratelimit.shadow=true"}, control.Meta{Why: "test"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return stack.Load().LimitShadow })
	if got := statuses(t, 2, "GET", srv.URL+"/orders"); !eq(got, []int{200, 200}) {
		t.Fatalf("in shadow mode = %v", got)
	}
	if _, err := ops.Rollback(context.Background(), "listOrders", 0, control.Meta{Why: "enforce again"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return !stack.Load().LimitShadow })
	// The bucket spent before shadow mode is still spent.
	if got := statuses(t, 1, "GET", srv.URL+"/orders"); !eq(got, []int{429}) {
		t.Fatalf("enforced again = %v", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("live change not applied within 3s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
