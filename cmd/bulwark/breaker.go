package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/distributed"
)

const breakerSynopsis = `Usage: bulwark breaker reset|open NAME --redis URL [--prefix P] [--for D]

Acts on a fleet-wide circuit breaker (distributed.Store.Breaker) for every
replica at once:

  reset  closes it with an empty window; outcomes of calls admitted before
         are ignored (a new generation starts)
  open   opens it as if it had tripped, for --for; then it goes half-open
         and trial calls decide as usual

Replicas learn of the change at once through pub/sub, or at their next
refresh. NAME must be a breaker that has state under the prefix: run
"bulwark inspect" to list them.`

// breakerInfo is one breaker as inspect lists it.
type breakerInfo struct {
	Name   string
	State  string // closed, open, half-open
	Detail string
}

func runBreaker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("breaker", breakerSynopsis, stderr)
	url := fs.String("redis", "", "Redis URL, e.g. redis://127.0.0.1:6379 (required)")
	prefix := fs.String("prefix", distributed.DefaultPrefix, "the key prefix the services use (distributed.WithPrefix)")
	openFor := fs.Duration("for", bulwark.DefaultBreakerConfig().OpenFor, "open: how long the breaker stays open before it goes half-open")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || (pos[0] != "reset" && pos[0] != "open") {
		return usagef("want: bulwark breaker reset|open NAME --redis URL, got %q", pos)
	}
	action, name := pos[0], pos[1]
	if *openFor < time.Millisecond {
		return usagef("--for must be at least 1ms, got %v", *openFor)
	}
	client, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer client.Close()
	store, err := distributed.New(client, distributed.WithPrefix(*prefix), distributed.WithTimeout(pingTimeout))
	if err != nil {
		return usagef("%v", err)
	}
	defer store.Close()
	before, err := store.BreakerState(ctx, name)
	if err != nil {
		return fmt.Errorf("reading breaker %q: %w", name, err)
	}
	if !before.Exists {
		return unknownBreaker(ctx, store, name, *prefix)
	}
	cfg := bulwark.DefaultBreakerConfig()
	cfg.OpenFor = *openFor
	b, err := store.Breaker(name, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	if action == "reset" {
		err = b.Reset(ctx)
	} else {
		err = b.ForceOpen(ctx)
	}
	if err != nil {
		return err
	}
	after, err := store.BreakerState(ctx, name)
	if err != nil {
		return fmt.Errorf("reading breaker %q: %w", name, err)
	}
	fmt.Fprintf(stdout, "breaker %q under prefix %q: %s -> %s (generation %d)\n",
		name, *prefix, before.State, after.State, after.Generation)
	if after.State == bulwark.Open && !after.OpenUntil.IsZero() {
		fmt.Fprintf(stdout, "half-open in %v\n", after.OpenUntil.Sub(after.Now).Round(time.Millisecond))
	}
	return nil
}

// unknownBreaker is the error for a breaker without state: it names the
// breakers that exist under the prefix.
func unknownBreaker(ctx context.Context, store *distributed.Store, name, prefix string) error {
	names, err := store.Breakers(ctx)
	if err != nil || len(names) == 0 {
		return fmt.Errorf("no breaker named %q under prefix %q", name, prefix)
	}
	slices.Sort(names)
	return fmt.Errorf("no breaker named %q under prefix %q (breakers there: %s)", name, prefix, strings.Join(names, ", "))
}

// inspectBreakers reads the state of each breaker whose keys were found,
// by its key tag.
func inspectBreakers(ctx context.Context, client redis.UniversalClient, prefix string, tags map[string]bool) ([]breakerInfo, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	store, err := distributed.New(client, distributed.WithPrefix(prefix), distributed.WithTimeout(pingTimeout))
	if err != nil {
		return nil, usagef("%v", err)
	}
	defer store.Close()
	var out []breakerInfo
	for tag := range tags {
		name, ok := rawPart(tag)
		if !ok {
			out = append(out, breakerInfo{Name: displayPart(tag), State: "?", Detail: "name stored hashed: state not readable by name"})
			continue
		}
		info, err := store.BreakerState(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("reading breaker %q: %w", name, err)
		}
		if !info.Exists { // expired since the scan
			continue
		}
		bi := breakerInfo{Name: displayPart(tag), State: info.State.String()}
		switch info.State {
		case bulwark.Closed:
			bi.Detail = fmt.Sprintf("%d calls, %d failures, %d slow in the window; %d consecutive failures",
				info.Calls, info.Failures, info.SlowCalls, info.ConsecutiveFailures)
		case bulwark.Open:
			if !info.OpenUntil.IsZero() {
				bi.Detail = fmt.Sprintf("half-open in %v", info.OpenUntil.Sub(info.Now).Round(time.Millisecond))
			}
		case bulwark.HalfOpen:
			bi.Detail = fmt.Sprintf("%d trial calls granted, %d succeeded", info.TrialsGranted, info.TrialsSucceeded)
		}
		bi.Detail += fmt.Sprintf(" (generation %d)", info.Generation)
		out = append(out, bi)
	}
	slices.SortFunc(out, func(a, b breakerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
