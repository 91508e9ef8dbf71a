package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// TestBreakerCommands opens and resets a fleet-wide breaker from the
// command line and checks the state a service's own store reads, and what
// inspect lists.
func TestBreakerCommands(t *testing.T) {
	ctx := context.Background()
	client := redistest.Default(t)
	prefix := strings.TrimSuffix(redistest.Prefix(t, client), ":")
	url := "redis://" + client.(*redis.Client).Options().Addr
	store, err := distributed.New(client, distributed.WithPrefix(prefix), distributed.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := bulwark.DefaultBreakerConfig()
	b, err := store.Breaker("payments", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Reset(ctx); err != nil { // writes the breaker's state
		t.Fatal(err)
	}
	state := func() bulwark.State {
		t.Helper()
		info, err := store.BreakerState(ctx, "payments")
		if err != nil || !info.Exists {
			t.Fatalf("BreakerState = %+v, %v", info, err)
		}
		return info.State
	}

	code, out, errOut := runCLI(t, "breaker", "open", "payments", "--redis", url, "--prefix", prefix, "--for", "1m")
	if code != exitOK {
		t.Fatalf("breaker open: exit %d, stderr:\n%s", code, errOut)
	}
	if !strings.Contains(out, `breaker "payments" under prefix "`+prefix+`": closed -> open`) || !strings.Contains(out, "half-open in ") {
		t.Errorf("breaker open output:\n%s", out)
	}
	if got := state(); got != bulwark.Open {
		t.Errorf("state after open = %v, want open", got)
	}

	code, out, _ = runCLI(t, "inspect", "--redis", url, "--prefix", prefix)
	if code != exitOK || !strings.Contains(out, "BREAKERS (1)") || !strings.Contains(out, "payments  open") {
		t.Errorf("inspect: exit %d, output:\n%s", code, out)
	}

	code, out, errOut = runCLI(t, "breaker", "reset", "payments", "--redis", url, "--prefix", prefix)
	if code != exitOK {
		t.Fatalf("breaker reset: exit %d, stderr:\n%s", code, errOut)
	}
	if !strings.Contains(out, "open -> closed") {
		t.Errorf("breaker reset output:\n%s", out)
	}
	if got := state(); got != bulwark.Closed {
		t.Errorf("state after reset = %v, want closed", got)
	}

	code, _, errOut = runCLI(t, "breaker", "reset", "checkout", "--redis", url, "--prefix", prefix)
	want := `no breaker named "checkout" under prefix "` + prefix + `" (breakers there: payments)`
	if code != exitFailure || !strings.Contains(errOut, want) {
		t.Errorf("unknown breaker: exit %d, stderr %q; want exit 1 and %q", code, errOut, want)
	}

	for _, args := range [][]string{
		{"breaker", "close", "payments", "--redis", url},
		{"breaker", "reset", "--redis", url},
		{"breaker", "reset", "a", "b", "--redis", url},
		{"breaker", "open", "payments", "--redis", url, "--for", "0s"},
		{"breaker", "reset", "payments"},
	} {
		if code, _, errOut := runCLI(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d; stderr %q", args, code, exitUsage, errOut)
		}
	}
}
