package semaphore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// Environment passed from a parent test to its child processes.
const (
	envAddr   = "BULWARK_SEM_ADDR"
	envPrefix = "BULWARK_SEM_PREFIX"
)

// addrOf returns the address of a test client.
func addrOf(t *testing.T, c redis.UniversalClient) string {
	t.Helper()
	rc, ok := c.(*redis.Client)
	if !ok {
		t.Fatalf("test client is %T, want *redis.Client", c)
	}
	return rc.Options().Addr
}

// childClient connects a child process to its parent's Redis.
func childClient(t *testing.T) (redis.UniversalClient, string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: os.Getenv(envAddr)})
	t.Cleanup(func() { _ = c.Close() })
	return c, os.Getenv(envPrefix)
}

// leaseRecord is one lease as a child process saw it, with wall-clock
// times in nanoseconds (all processes share the machine's clock).
type leaseRecord struct {
	proc, worker     int
	token            uint64
	acquireStart     int64 // Acquire called
	releaseReturned  int64 // Release returned
	acquiredReturned int64 // Acquire returned
}

const (
	mpProcs    = 4
	mpWorkers  = 16
	mpCapacity = 10
	mpRounds   = 15
)

// enterScript counts a holder in and tracks the most seen at once.
var enterScript = redis.NewScript(`
local v = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 60000)
if v > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], v, 'PX', 60000)
end
return v`)

// 4 processes x 16 goroutines share a semaphore of 10: a counter kept
// beside the critical section never sees more than 10 holders, and fencing
// tokens grow across processes.
func TestMultiProcessNeverExceedsCapacity(t *testing.T) {
	if redistest.IsChild() {
		multiProcessChild(t)
		return
	}
	e := newEnv(t)
	addr := addrOf(t, e.client)
	outs := make([]*bytes.Buffer, mpProcs)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range mpProcs {
		cmd := redistest.Child(t, t.Name(), envAddr+"="+addr, envPrefix+"="+e.prefix, "BULWARK_SEM_PROC="+strconv.Itoa(i))
		outs[i] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[i], outs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cmd.Wait(); err != nil {
				t.Errorf("child %d: %v\n%s", i, err, outs[i])
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if t.Failed() {
		return
	}

	var recs []leaseRecord
	for _, out := range outs {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r leaseRecord
			if _, err := fmt.Sscanf(sc.Text(), "LEASE %d %d %d %d %d %d", &r.proc, &r.worker, &r.token, &r.acquireStart, &r.acquiredReturned, &r.releaseReturned); err == nil {
				recs = append(recs, r)
			}
		}
	}
	if want := mpProcs * mpWorkers * mpRounds; len(recs) != want {
		t.Fatalf("lease records: got %d, want %d", len(recs), want)
	}
	ctx := ctxT(t, 5*time.Second)
	maxSeen, err := e.client.Get(ctx, e.prefix+"max").Int64()
	if err != nil {
		t.Fatal(err)
	}
	cur, err := e.client.Get(ctx, e.prefix+"cur").Int64()
	if err != nil {
		t.Fatal(err)
	}
	if maxSeen > mpCapacity || maxSeen < 2 || cur != 0 {
		t.Fatalf("holders at once: max %d (want 2..%d), at the end %d (want 0)", maxSeen, mpCapacity, cur)
	}
	checkTokens(t, recs)
	first, last := recs[0].acquireStart, recs[0].releaseReturned
	for _, r := range recs {
		first, last = min(first, r.acquireStart), max(last, r.releaseReturned)
	}
	span := time.Duration(last - first)
	t.Logf("%d processes x %d goroutines, capacity %d: %d leases in %v (%.0f acquire+release/s), most holders at once %d; whole test %v",
		mpProcs, mpWorkers, mpCapacity, len(recs), span.Round(time.Millisecond), float64(len(recs))/span.Seconds(), maxSeen, elapsed.Round(time.Millisecond))

	w := e.open(t, mpCapacity)
	if got := available(t, w); got != mpCapacity {
		t.Errorf("Available at the end: got %d, want %d", got, mpCapacity)
	}
	if got := waiting(t, w); got != 0 {
		t.Errorf("Waiting at the end: got %d, want 0", got)
	}
	redistest.CheckTTLs(t, e.client, e.prefix, FenceTTL)
}

// checkTokens checks fencing tokens: all distinct, increasing along each
// goroutine, and larger than the token of every lease released before the
// lease was asked for, whatever process held it.
func checkTokens(t *testing.T, recs []leaseRecord) {
	t.Helper()
	seen := make(map[uint64]bool, len(recs))
	lastOf := map[[2]int]uint64{}
	byStart := append([]leaseRecord(nil), recs...)
	sort.Slice(byStart, func(i, j int) bool { return byStart[i].acquireStart < byStart[j].acquireStart })
	for _, r := range byStart {
		if seen[r.token] {
			t.Fatalf("token %d issued twice", r.token)
		}
		seen[r.token] = true
		k := [2]int{r.proc, r.worker}
		if r.token <= lastOf[k] {
			t.Fatalf("process %d goroutine %d: token %d after %d", r.proc, r.worker, r.token, lastOf[k])
		}
		lastOf[k] = r.token
	}
	byRelease := append([]leaseRecord(nil), recs...)
	sort.Slice(byRelease, func(i, j int) bool { return byRelease[i].releaseReturned < byRelease[j].releaseReturned })
	var maxReleased uint64
	var from leaseRecord
	j, checked := 0, 0
	for _, r := range byStart {
		for j < len(byRelease) && byRelease[j].releaseReturned < r.acquireStart {
			if byRelease[j].token > maxReleased {
				maxReleased, from = byRelease[j].token, byRelease[j]
			}
			j++
		}
		if r.token <= maxReleased {
			t.Fatalf("process %d: token %d is not above %d of a lease process %d released before it asked", r.proc, r.token, maxReleased, from.proc)
		}
		if from.proc != r.proc && maxReleased > 0 {
			checked++
		}
	}
	if checked == 0 {
		t.Error("no lease followed a release by another process: ordering across processes untested")
	}
}

func multiProcessChild(t *testing.T) {
	client, prefix := childClient(t)
	proc, _ := strconv.Atoi(os.Getenv("BULWARK_SEM_PROC"))
	w, err := New(client, "mp", mpCapacity, WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	keys := []string{prefix + "cur", prefix + "max"}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	var wg sync.WaitGroup
	for g := range mpWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for range mpRounds {
				startNs := time.Now().UnixNano()
				l, err := w.Acquire(ctx, 1)
				if err != nil {
					t.Errorf("Acquire: %v", err)
					return
				}
				gotNs := time.Now().UnixNano()
				if err := enterScript.Run(ctx, client, keys).Err(); err != nil {
					t.Errorf("enter: %v", err)
				}
				time.Sleep(time.Millisecond) // the critical section
				if err := client.Decr(ctx, keys[0]).Err(); err != nil {
					t.Errorf("leave: %v", err)
				}
				if err := l.Release(ctx); err != nil {
					t.Errorf("Release: %v", err)
				}
				mu.Lock()
				fmt.Fprintf(out, "LEASE %d %d %d %d %d %d\n", proc, g, l.Token(), startNs, gotNs, time.Now().UnixNano())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// A holder process SIGKILLed while holding slots gives them back within
// one lease TTL; while it lives, keepalive holds them past the TTL.
func TestKilledHolderCapacityReturns(t *testing.T) {
	const ttl = 600 * time.Millisecond
	if redistest.IsChild() {
		client, prefix := childClient(t)
		w, err := New(client, "kill", 4, WithPrefix(prefix), WithLeaseTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		l := mustAcquire(t, w, 3)
		fmt.Printf("HELD %s\n", l.ID())
		time.Sleep(time.Minute) // until killed
		return
	}
	e := newEnv(t)
	e.name = "kill"
	w := e.open(t, 4, WithLeaseTTL(ttl), WithPollInterval(time.Minute))
	cmd := redistest.Child(t, t.Name(), envAddr+"="+addrOf(t, e.client), envPrefix+"="+e.prefix)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := readHeld(stdout)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	time.Sleep(3 * ttl) // real time: the child's keepalive must hold its lease past the TTL
	holders, err := w.Holders(ctxT(t, 5*time.Second))
	if err != nil || len(holders) != 1 || holders[0].ID != id || holders[0].Weight != 3 {
		t.Fatalf("Holders after 3 TTLs: got (%+v, %v), want the child's lease %s of weight 3", holders, err, id)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = cmd.Wait()
	l := mustAcquire(t, w, 4) // needs the child's 3 slots
	took := time.Since(killed)
	t.Logf("capacity back %v after SIGKILL (lease TTL %v)", took, ttl)
	if took > ttl+2*time.Second {
		t.Errorf("capacity came back after %v, want within about the lease TTL %v", took, ttl)
	}
	mustRelease(t, l)
	if n, err := e.client.Exists(context.Background(), w.keys.leases, w.keys.holders).Result(); err != nil || n != 0 {
		t.Errorf("lease keys after all released: %d exist (%v), want 0", n, err)
	}
}

// readHeld reads the child's "HELD <id>" line.
func readHeld(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "HELD "); ok {
			go func() { _, _ = io.Copy(io.Discard, r) }()
			return id, nil
		}
	}
	return "", errors.New("exited without holding a lease")
}

// A Redis restart that loses every key: held leases are reported lost at
// their next renewal, no slot stays taken, a waiter gets through, and
// fencing tokens keep growing although the counter is gone.
func TestRedisRestartLosesNothingForLong(t *testing.T) {
	srv := redistest.StartServer(t)
	client := srv.Client(t)
	prefix := redistest.Prefix(t, client)
	const ttl = 500 * time.Millisecond
	lost := make(chan error, 4)
	w, err := New(client, "restart", 3, WithPrefix(prefix), WithLeaseTTL(ttl),
		WithOnLeaseLost(func(_ *Lease, err error) { lost <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a := mustAcquire(t, w, 1)
	b := mustAcquire(t, w, 2)
	waiter := make(chan *Lease, 1)
	go func() {
		l, err := w.Acquire(ctxT(t, 20*time.Second), 3)
		if err != nil {
			t.Errorf("waiter: %v", err)
		}
		waiter <- l
	}()
	eventually(t, 5*time.Second, "the waiter to queue", func() bool { return waiting(t, w) == 1 })

	srv.Kill()
	srv.Restart()
	for _, l := range []*Lease{a, b} {
		select {
		case <-l.Lost():
		case <-time.After(10 * time.Second):
			t.Fatal("Lost not closed after Redis restarted empty")
		}
		if err := <-lost; !errors.Is(err, ErrLeaseLost) {
			t.Errorf("lost callback: %v", err)
		}
	}
	c := <-waiter
	if c == nil {
		t.FailNow()
	}
	if c.Token() <= b.Token() {
		t.Errorf("token after the restart: got %d, want above %d", c.Token(), b.Token())
	}
	mustRelease(t, c)
	if got := available(t, w); got != 3 {
		t.Errorf("Available after the restart: got %d, want 3", got)
	}
	for _, l := range []*Lease{a, b} {
		if err := l.Release(ctxT(t, 5*time.Second)); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("Release of a lease lost in the restart: got %v, want ErrLeaseLost", err)
		}
	}
}

// With persistence on, a restart keeps the leases: a live holder keeps its
// slots through keepalive, and a holder that died meanwhile frees its slots
// within one lease TTL of the restart.
func TestRedisRestartWithPersistence(t *testing.T) {
	srv := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	client := srv.Client(t)
	prefix := redistest.Prefix(t, client)
	const ttl = 2 * time.Second
	live, err := New(client, "restart", 3, WithPrefix(prefix), WithLeaseTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dead, err := New(client, "restart", 3, WithPrefix(prefix), WithLeaseTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	kept := mustAcquire(t, live, 1)
	mustAcquire(t, dead, 2)
	_ = dead.Close() // stops renewing: a holder that died

	srv.Kill()
	srv.Restart()
	restarted := time.Now()
	eventually(t, ttl+3*time.Second, "the dead holder's slots", func() bool {
		n, err := live.Available(context.Background())
		return err == nil && n == 2
	})
	t.Logf("dead holder's slots back %v after the restart (lease TTL %v)", time.Since(restarted), ttl)
	time.Sleep(ttl) // real time: the live lease must survive past its TTL
	select {
	case <-kept.Lost():
		t.Fatalf("the live lease was lost across a persistent restart: %v", kept.Err())
	default:
	}
	mustRelease(t, kept)
	if got := available(t, live); got != 3 {
		t.Errorf("Available: got %d, want 3", got)
	}
}

// A reply lost on the network makes go-redis run the acquire script again
// (it retries after a read timeout). The retry carries the same lease id, so
// it returns the lease the first run granted: the slots are counted once.
func TestRetriedAcquireGrantsOnce(t *testing.T) {
	srv := redistest.StartServer(t)
	direct := srv.Client(t)
	prefix := redistest.Prefix(t, direct)
	proxy := redistest.NewProxy(t, srv.Addr())
	flaky := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ReadTimeout: 100 * time.Millisecond, MaxRetries: 3, PoolSize: 1})
	t.Cleanup(func() { _ = flaky.Close() })

	other, err := New(direct, "drop", 5, WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	w, err := New(flaky, "drop", 5, WithPrefix(prefix), WithPollInterval(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	kept := mustAcquire(t, other, 2)
	warm := mustAcquire(t, w, 1) // the flaky client's connection is set up and the script cached
	mustRelease(t, warm)

	before := evalCalls(t, direct)
	dropped := proxy.DroppedReplies()
	proxy.DropReplies(true)
	type result struct {
		l   *Lease
		err error
	}
	res := make(chan result, 1)
	go func() {
		l, err := w.Acquire(ctxT(t, 10*time.Second), 3)
		res <- result{l, err}
	}()
	// The first run reached the server and its reply was discarded (the
	// server having run it is not enough: its reply may not have reached
	// the proxy yet, and would be forwarded). Let the retry through.
	eventually(t, 5*time.Second, "the acquire script's reply to be dropped", func() bool {
		return proxy.DroppedReplies() > dropped && evalCalls(t, direct) > before
	})
	proxy.DropReplies(false)
	r := <-res
	if r.err != nil {
		t.Fatalf("Acquire after a lost reply: %v", r.err)
	}
	runs := evalCalls(t, direct) - before
	t.Logf("acquire script runs for one Acquire: %d", runs)
	if runs < 2 {
		t.Fatalf("acquire script runs: got %d, want a retry (at least 2)", runs)
	}
	holders, err := other.Holders(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(holders) != 2 {
		t.Fatalf("Holders: got %+v, want the kept lease and one lease of the retried Acquire", holders)
	}
	used, err := direct.HGet(context.Background(), other.keys.holders, "used").Int64()
	if err != nil || used != 5 {
		t.Fatalf("used slots: got %d (%v), want 5 (2 + 3 counted once)", used, err)
	}
	mustRelease(t, r.l)
	mustRelease(t, kept)
	if got := available(t, other); got != 5 {
		t.Errorf("Available: got %d, want 5", got)
	}
}

// evalCalls returns how many EVAL and EVALSHA calls the server has run.
func evalCalls(t *testing.T, c redis.UniversalClient) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "cmdstat_evalsha:") || strings.HasPrefix(line, "cmdstat_eval:") {
			if i := strings.Index(line, "calls="); i >= 0 {
				n, _ := strconv.ParseInt(strings.SplitN(line[i+6:], ",", 2)[0], 10, 64)
				total += n
			}
		}
	}
	return total
}
