package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
)

// memLayout is a key layout whose memory is measured: the store's prefix,
// the limiter's name and how user keys are spelled.
type memLayout struct {
	Name   string
	Prefix string
	Limit  string // limiter name
	KeyFmt string // fmt verb applied to the key's index
}

// memLayouts: the library's default prefix with a 16-byte user key, and the
// shortest layout (one-letter prefix and name, short keys).
var memLayouts = []memLayout{
	{Name: "default prefix, 16-byte key", Prefix: distributed.DefaultPrefix, Limit: "api", KeyFmt: "user:%011d"},
	{Name: "1-letter prefix and name", Prefix: "b", Limit: "t", KeyFmt: "%d"},
}

var memAlgorithms = []string{"token_bucket", "fixed_window", "sliding_window", "sliding_log"}

// memResult is the memory one algorithm's keys take in one layout.
type memResult struct {
	Algorithm   string `json:"algorithm"`
	Layout      string `json:"layout"`
	Keys        int    `json:"keys"`
	SampleKey   string `json:"sample_key"`
	Encoding    string `json:"encoding"`     // OBJECT ENCODING of the sample key
	MemoryUsage int64  `json:"memory_usage"` // median MEMORY USAGE over up to 1000 keys
	// PerKeyDelta is the growth of used_memory (less client buffers) per
	// key. The server's own allocations move used_memory by tens of
	// kilobytes either way, so it means something only over many keys
	// (the default 100k).
	PerKeyDelta float64 `json:"used_memory_delta_per_key"`
	Seconds     float64 `json:"seconds"`
}

// measureMemory writes n keys per algorithm and layout through a store on
// addr, a server of this program's own that it may FLUSHALL, and reports
// MEMORY USAGE and the used_memory delta per key (client buffers excluded). Limits are long (10 per
// hour) so no key expires during the measurement.
func measureMemory(ctx context.Context, addr string, n int) ([]memResult, error) {
	admin := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer admin.Close()
	client := redis.NewClient(distributed.ClientOptions(&redis.Options{Addr: addr, PoolSize: 16}, 2*time.Second))
	defer client.Close()
	lim := bulwark.Limit{Events: 10, Period: time.Hour}
	var out []memResult
	for _, lay := range memLayouts {
		store, err := distributed.New(client, distributed.WithPrefix(lay.Prefix), distributed.WithTimeout(2*time.Second))
		if err != nil {
			return nil, err
		}
		for _, alg := range memAlgorithms {
			r, err := measureOne(ctx, admin, store, lay, alg, lim, n)
			if err != nil {
				_ = store.Close()
				return nil, fmt.Errorf("%s, %s: %w", alg, lay.Name, err)
			}
			out = append(out, r)
		}
		_ = store.Close()
	}
	return out, nil
}

func measureOne(ctx context.Context, admin *redis.Client, store *distributed.Store, lay memLayout, alg string, lim bulwark.Limit, n int) (memResult, error) {
	var l bulwark.Limiter
	var err error
	switch alg {
	case "token_bucket":
		l, err = store.TokenBucket(lay.Limit, lim)
	case "fixed_window":
		l, err = store.FixedWindow(lay.Limit, lim)
	case "sliding_window":
		l, err = store.SlidingWindow(lay.Limit, lim)
	case "sliding_log":
		l, err = store.SlidingLog(lay.Limit, lim)
	default:
		return memResult{}, fmt.Errorf("unknown algorithm %q", alg)
	}
	if err != nil {
		return memResult{}, err
	}
	// One decision first, so the script cache and the client's connection
	// are not counted as key memory.
	if _, err := l.Allow(ctx, "warm-up", 1); err != nil {
		return memResult{}, err
	}
	if err := admin.FlushAll(ctx).Err(); err != nil {
		return memResult{}, err
	}
	before, err := usedMemory(ctx, admin)
	if err != nil {
		return memResult{}, err
	}
	t0 := time.Now()
	const workers = 32
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				d, err := l.Allow(ctx, fmt.Sprintf(lay.KeyFmt, i), 1)
				if err == nil && d.Degraded {
					err = fmt.Errorf("key %d decided without Redis", i)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return memResult{}, err
		}
	}
	secs := time.Since(t0).Seconds()
	after, err := usedMemory(ctx, admin)
	if err != nil {
		return memResult{}, err
	}
	size, err := admin.DBSize(ctx).Result()
	if err != nil {
		return memResult{}, err
	}
	if size != int64(n) {
		return memResult{}, fmt.Errorf("%d keys in Redis after writing %d", size, n)
	}
	sample := sampleKeys(ctx, admin, lay.Prefix, 1000)
	if len(sample) == 0 {
		return memResult{}, fmt.Errorf("no key under prefix %q", lay.Prefix)
	}
	usages := make([]int64, 0, len(sample))
	for _, k := range sample {
		u, err := admin.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			return memResult{}, err
		}
		usages = append(usages, u)
	}
	slices.Sort(usages)
	enc, err := admin.ObjectEncoding(ctx, sample[0]).Result()
	if err != nil {
		return memResult{}, err
	}
	return memResult{
		Algorithm: alg, Layout: lay.Name, Keys: n,
		SampleKey: sample[0], Encoding: enc,
		MemoryUsage: usages[len(usages)/2],
		PerKeyDelta: float64(after-before) / float64(n),
		Seconds:     secs,
	}, nil
}

// sampleKeys returns up to max keys starting with prefix+":".
func sampleKeys(ctx context.Context, admin *redis.Client, prefix string, max int) []string {
	var keys []string
	iter := admin.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) && len(keys) < max {
		keys = append(keys, iter.Val())
	}
	return keys
}

// usedMemory is used_memory less the clients' buffers (mem_clients_normal),
// which grow and shrink with the connections' traffic, not with the keys.
func usedMemory(ctx context.Context, admin *redis.Client) (int64, error) {
	info, err := admin.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	f := infoFields(info)
	used, err := strconv.ParseInt(f["used_memory"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("used_memory: %w", err)
	}
	clients, err := strconv.ParseInt(f["mem_clients_normal"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("mem_clients_normal: %w", err)
	}
	return used - clients, nil
}
