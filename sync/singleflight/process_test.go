//go:build unix

package singleflight

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/redis/go-redis/v9"
)

const (
	envAddr    = "BULWARK_SF_ADDR"
	envPrefix  = "BULWARK_SF_PREFIX"
	envCluster = "BULWARK_SF_CLUSTER"
)

// On a standalone server and on a Cluster, a leader process killed with SIGKILL in the middle of its run is
// replaced once its lease expires: a waiter of another process leads with
// a larger fencing token, within the lease TTL of the kill (plus a
// generous margin for a loaded machine), although its poll interval is a
// minute.
func TestKilledLeaderIsReplaced(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { killedLeader(t, be.open) })
	}
}

func killedLeader(t *testing.T, open func(testing.TB, int) ([]redis.UniversalClient, string)) {
	const ttl = 600 * time.Millisecond
	if redistest.IsChild() {
		addrs := strings.Split(os.Getenv(envAddr), ",")
		var c redis.UniversalClient
		if os.Getenv(envCluster) == "1" {
			c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		} else {
			c = redis.NewClient(&redis.Options{Addr: addrs[0]})
		}
		defer c.Close()
		g, err := New(c, "kill", String{}, WithPrefix(os.Getenv(envPrefix)), WithLeaseTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		_, err = g.Do(context.Background(), "k", func(ctx context.Context, token uint64) (string, error) {
			fmt.Printf("LEADING %d\n", token)
			<-ctx.Done() // until killed
			return "", ctx.Err()
		})
		t.Fatalf("the child's run returned: %v", err)
		return
	}
	clients, prefix := open(t, 1)
	var addrs []string
	cluster := "0"
	switch c := clients[0].(type) {
	case *redis.Client:
		addrs = []string{c.Options().Addr}
	case *redis.ClusterClient:
		addrs, cluster = c.Options().Addrs, "1"
	default:
		t.Fatalf("client %T", c)
	}
	cmd := redistest.Child(t, t.Name(), envAddr+"="+strings.Join(addrs, ","), envPrefix+"="+prefix, envCluster+"="+cluster)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var childToken uint64
	select {
	case l := <-lines:
		if _, err := fmt.Sscanf(l, "LEADING %d", &childToken); err != nil {
			t.Fatalf("child said %q", l)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child never led")
	}
	g := openGroup(t, clients[0], prefix, "kill", String{}, WithLeaseTTL(ttl), WithPollInterval(time.Minute))
	led := make(chan time.Time, 1)
	res := make(chan Result[string], 1)
	go func() {
		r, err := g.Do(ctxT(t, 30*time.Second), "k", func(_ context.Context, token uint64) (string, error) {
			led <- time.Now()
			return fmt.Sprint(token), nil
		})
		if err != nil {
			t.Errorf("Do: %v", err)
		}
		res <- r
	}()
	eventually(t, 10*time.Second, "the waiter to join", func() bool { return waitersOf(g, "k") == 1 })
	// The child's keepalive holds the lease past its TTL: nobody leads.
	select {
	case <-led:
		t.Fatal("the waiter led while the child's lease was alive")
	case <-time.After(2 * ttl):
	}
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	var took time.Duration
	select {
	case at := <-led:
		took = at.Sub(killed)
	case <-time.After(30 * time.Second):
		t.Fatal("no caller took over")
	}
	r := <-res
	if !r.Leader || r.Token <= childToken {
		t.Fatalf("takeover result %+v, want a leader with a token above %d", r, childToken)
	}
	t.Logf("lease TTL %v: took over %v after the kill", ttl, took.Round(time.Millisecond))
	if took > ttl+2*time.Second {
		t.Fatalf("took over %v after the kill, want within the lease TTL %v (+2s margin)", took, ttl)
	}
}
