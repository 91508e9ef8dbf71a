package control_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/control"
	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/bulwark-go/bulwark/policy"
)

// The users of the package doc's ACL set-up, for the prefix "acl".
var aclUsers = [][]any{
	{"ACL", "SETUSER", "replica", "on", ">replica-pw", "resetkeys", "resetchannels",
		"~acl:[^{]*", "%R~acl:{config}:*", "&acl:*",
		"-@all", "+@read", "+@write", "+@scripting", "+@pubsub", "+@connection", "-@dangerous", "+time"},
	{"ACL", "SETUSER", "operator", "on", ">operator-pw", "resetkeys", "resetchannels",
		"~acl:*", "&acl:*",
		"-@all", "+@read", "+@write", "+@scripting", "+@pubsub", "+@connection", "-@dangerous", "+time"},
}

// TestACLReplicaCannotWriteConfig: on a Redis 7 server with the documented
// users, a replica's user runs every decision (limiter, breaker, bulkhead),
// loads the live configuration and publishes its status, but cannot write
// the configuration: not through the store's script, nor directly; the
// operator's user can.
func TestACLReplicaCannotWriteConfig(t *testing.T) {
	srv := redistest.StartServer(t)
	admin := srv.Client(t)
	if v := admin.Info(ctx, "server").Val(); !strings.Contains(v, "redis_version:7") && !strings.Contains(v, "redis_version:8") {
		t.Skipf("ACL key permissions (%%R~) need Redis 7 or later: %s", strings.SplitN(v, "\n", 3)[1])
	}
	for _, u := range aclUsers {
		if err := admin.Do(ctx, u...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	as := func(user, pw string) *redis.Client {
		return srv.Client(t, func(o *redis.Options) { o.Username, o.Password = user, pw })
	}
	rep, op := as("replica", "replica-pw"), as("operator", "operator-pw")
	const prefix = "acl"

	ops := newStore(t, op, prefix)
	if _, err := ops.Assign(ctx, "checkout", []string{"ratelimit.limit=5"}, control.Meta{Who: "operator", Why: "acl test"}); err != nil {
		t.Fatalf("operator cannot write the configuration: %v", err)
	}

	st, err := distributed.New(rep, distributed.WithPrefix(prefix), distributed.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := control.NewReplica(rep, control.WithPrefix(prefix), control.WithHeartbeat(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defaults := policy.Spec{
		RateLimit:      &policy.RateLimit{Limit: intp(100), Key: "global"},
		CircuitBreaker: &policy.CircuitBreaker{},
		Bulkhead:       &policy.Bulkhead{MaxConcurrent: intp(2)},
	}
	s, err := r.Build("checkout", defaults, policy.WithStore(st))
	if err != nil {
		t.Fatal(err)
	}
	if r.Stale() || limitOf(s) != 5 {
		t.Fatalf("replica user: stale %v, limit %d; want the live limit 5", r.Stale(), limitOf(s))
	}
	for i := 0; i < 3; i++ {
		if err := s.Do(ctx, func(context.Context) error { return nil }); err != nil {
			t.Fatalf("decision as the replica user: %v", err)
		}
	}
	p := s.Load()
	if d, err := p.Limiter.Allow(ctx, "", 1); err != nil || d.Degraded {
		t.Fatalf("limiter as the replica user: %+v, %v (degraded means Redis refused it)", d, err)
	}
	if p.Breaker.(*distributed.Breaker).Degraded() {
		t.Fatal("breaker degraded as the replica user")
	}
	eventually(t, 5*time.Second, "replica status published", func() bool {
		sts, err := ops.Replicas(ctx)
		return err == nil && len(sts) == 1 && sts[0].Policies["checkout"].Version == 1
	})

	reps := newStore(t, rep, prefix)
	_, err = reps.Assign(ctx, "checkout", []string{"ratelimit.limit=500"}, control.Meta{Who: "replica"})
	if err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("replica user wrote the configuration through the script: %v", err)
	}
	for name, cmd := range map[string]*redis.StatusCmd{
		"HSET live":   redis.NewStatusCmd(ctx, "HSET", "acl:{config}:live", "checkout", `9 {}`),
		"SET version": redis.NewStatusCmd(ctx, "SET", "acl:{config}:version", "99"),
		"DEL history": redis.NewStatusCmd(ctx, "DEL", "acl:{config}:history:checkout"),
	} {
		_ = rep.Process(ctx, cmd)
		if err := cmd.Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("replica user: %s: %v, want NOPERM", name, err)
		}
	}
	if v, _ := ops.Version(ctx); v != 1 {
		t.Fatalf("version %d after the replica's attempts, want 1", v)
	}
}
