package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/distributed"
	"github.com/bulwark-go/bulwark/sync/semaphore"
)

const inspectSynopsis = `Usage: bulwark inspect --redis URL [--prefix P]

Lists what the library stores in Redis under a key prefix: the rate limiters
(by algorithm and name, with the number of keys each holds), the fleet-wide
circuit breakers (with their state) and the cluster-wide bulkheads and
semaphores (with the leases held now), and the replica groups of package
cluster (with their live members). It only reads (SCAN, GET, TIME and
read-only scripts).`

// algorithms maps the algorithm segment of a limiter key to its name.
var algorithms = map[string]string{
	"tb": "token bucket",
	"fw": "fixed window",
	"sw": "sliding window",
	"sl": "sliding log",
}

// scanBatch is the COUNT hint of each SCAN.
const scanBatch = 1000

func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", inspectSynopsis, stderr)
	url := fs.String("redis", "", "Redis URL, e.g. redis://127.0.0.1:6379 (required)")
	prefix := fs.String("prefix", distributed.DefaultPrefix, "the key prefix the services use (distributed.WithPrefix)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("inspect takes no arguments, got %q", pos)
	}
	if *prefix == "" {
		return usagef("--prefix must not be empty")
	}
	client, err := connect(ctx, *url)
	if err != nil {
		return err
	}
	defer client.Close()
	rep, err := inspect(ctx, client, *prefix)
	if err != nil {
		return err
	}
	rep.write(stdout, client.Options().Addr, *prefix)
	return nil
}

// limiterInfo is one limiter found under the prefix.
type limiterInfo struct {
	Algorithm string // "token bucket", ...
	Name      string // decoded name ("~..." forms decoded, hashed ones shown as "(hashed ...)")
	Multi     bool   // a Multi limit: Name is "<multi name>/<limit name>"
	Keys      int    // Redis keys it holds (one per user key in use)
}

// semaphoreInfo is one semaphore (or distributed bulkhead) found under the
// prefix.
type semaphoreInfo struct {
	Name    string
	Leases  int   // live leases
	Slots   int64 // slots they hold
	Waiting int64 // queued acquirers
}

// groupInfo is one cluster membership group: the replicas heartbeating
// into "<prefix>:members:{<group>}".
type groupInfo struct {
	Name string
	Live int64 // members whose heartbeat has not expired
}

// report is everything inspect found.
type report struct {
	Limiters   []limiterInfo
	Semaphores []semaphoreInfo
	Breakers   []breakerInfo
	Groups     []groupInfo
	Other      []string // keys under the prefix that no known layout explains
}

// inspect scans every key under prefix and groups them by the layouts of
// packages distributed and sync/semaphore.
func inspect(ctx context.Context, client redis.UniversalClient, prefix string) (*report, error) {
	keys, err := scanPrefix(ctx, client, prefix)
	if err != nil {
		return nil, err
	}
	rep := &report{}
	limiters := map[limiterInfo]int{}
	sems := map[string]bool{}
	breakers := map[string]bool{}
	for _, k := range keys {
		rest := k[len(prefix)+1:] // after "<prefix>:"
		alg, tail, _ := strings.Cut(rest, ":")
		switch {
		case algorithms[alg] != "":
			li, ok := parseLimiterKey(alg, tail)
			if !ok {
				rep.Other = append(rep.Other, k)
				continue
			}
			limiters[li]++
		case alg == "sem":
			tag, ok := semaphoreTag(tail)
			if !ok {
				rep.Other = append(rep.Other, k)
				continue
			}
			sems[tag] = true
		case alg == "members":
			g, ok := strings.CutPrefix(tail, "{")
			g, ok2 := strings.CutSuffix(g, "}")
			if !ok || !ok2 || g == "" {
				rep.Other = append(rep.Other, k)
				continue
			}
			gi, err := inspectGroup(ctx, client, k, g)
			if err != nil {
				return nil, err
			}
			rep.Groups = append(rep.Groups, gi)
		case alg == "br":
			tag, ok := breakerTag(tail)
			if !ok {
				rep.Other = append(rep.Other, k)
				continue
			}
			breakers[tag] = true
		default:
			rep.Other = append(rep.Other, k)
		}
	}
	for li, n := range limiters {
		li.Keys = n
		rep.Limiters = append(rep.Limiters, li)
	}
	slices.SortFunc(rep.Limiters, func(a, b limiterInfo) int {
		return strings.Compare(a.Algorithm+"\x00"+a.Name, b.Algorithm+"\x00"+b.Name)
	})
	for tag := range sems {
		si, err := inspectSemaphore(ctx, client, prefix, tag)
		if err != nil {
			return nil, err
		}
		rep.Semaphores = append(rep.Semaphores, si)
	}
	slices.SortFunc(rep.Semaphores, func(a, b semaphoreInfo) int { return strings.Compare(a.Name, b.Name) })
	rep.Breakers, err = inspectBreakers(ctx, client, prefix, breakers)
	if err != nil {
		return nil, err
	}
	slices.Sort(rep.Other)
	return rep, nil
}

// scanPrefix returns every key starting with "<prefix>:", from every master
// when client is a cluster client.
func scanPrefix(ctx context.Context, client redis.UniversalClient, prefix string) ([]string, error) {
	match := globEscape(prefix) + ":*"
	var keys []string
	scan := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			batch, next, err := node.Scan(ctx, cursor, match, scanBatch).Result()
			if err != nil {
				return fmt.Errorf("scanning keys under %q: %w", prefix, err)
			}
			keys = append(keys, batch...)
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	if cc, ok := client.(*redis.ClusterClient); ok {
		var nodes []*redis.Client
		err := cc.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
			nodes = append(nodes, c) // collected, then scanned one at a time
			return nil
		})
		if err != nil {
			return nil, err
		}
		for _, n := range nodes {
			if err := scan(ctx, n); err != nil {
				return nil, err
			}
		}
	} else if err := scan(ctx, client); err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// globEscape escapes the SCAN MATCH glob characters in s.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if strings.IndexByte(`*?[]\`, c) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// parseLimiterKey decodes the part after "<prefix>:<alg>:" of a limiter
// key: "{<name>:<key>}" for a single limiter, "{<tag>}<multi>:<limit>:<key>"
// for one limit of a Multi.
func parseLimiterKey(alg, tail string) (limiterInfo, bool) {
	if !strings.HasPrefix(tail, "{") {
		return limiterInfo{}, false
	}
	inner, after, ok := strings.Cut(tail[1:], "}")
	if !ok {
		return limiterInfo{}, false
	}
	li := limiterInfo{Algorithm: algorithms[alg]}
	if after == "" { // single limiter: {<name>:<key>}
		name, _, ok := strings.Cut(inner, ":")
		if !ok {
			return limiterInfo{}, false
		}
		li.Name = displayPart(name)
		return li, true
	}
	multi, rest, ok := strings.Cut(after, ":")
	if !ok {
		return limiterInfo{}, false
	}
	limit, _, ok := strings.Cut(rest, ":")
	if !ok {
		return limiterInfo{}, false
	}
	li.Name, li.Multi = displayPart(multi)+"/"+displayPart(limit), true
	return li, true
}

// rawPart reverses the name encoding of package distributed: readable
// names are kept and "~"+base64url is decoded; "!"+hash (names longer than
// 48 bytes that are not plain text, or longer than 64) cannot be reversed.
func rawPart(p string) (string, bool) {
	switch {
	case strings.HasPrefix(p, "~"):
		b, err := base64.RawURLEncoding.DecodeString(p[1:])
		return string(b), err == nil
	case strings.HasPrefix(p, "!"):
		return "", false
	}
	return p, true
}

// displayPart shows an encoded name part: plain names as they are, others
// quoted, hashed ones by the start of their hash.
func displayPart(p string) string {
	raw, ok := rawPart(p)
	switch {
	case !ok && strings.HasPrefix(p, "!"):
		return "(hashed " + p[1:min(len(p), 13)] + "…)"
	case !ok:
		return p
	case strings.HasPrefix(p, "~"):
		return fmt.Sprintf("%q", raw)
	}
	return raw
}

// breakerTag returns the hash tag of a breaker key "{<tag>}:s" or
// "{<tag>}:c" (after "<prefix>:br:").
func breakerTag(tail string) (string, bool) {
	if !strings.HasPrefix(tail, "{") {
		return "", false
	}
	tag, part, ok := strings.Cut(tail[1:], "}:")
	if !ok || tag == "" || (part != "s" && part != "c") {
		return "", false
	}
	return tag, true
}

// semaphoreTag returns the hash tag of a semaphore key
// "{<tag>}:<part>" (after "<prefix>:sem:").
func semaphoreTag(tail string) (string, bool) {
	if !strings.HasPrefix(tail, "{") {
		return "", false
	}
	tag, part, ok := strings.Cut(tail[1:], "}:")
	if !ok || tag == "" || strings.Contains(part, ":") {
		return "", false
	}
	switch part {
	case "leases", "holders", "waiters", "waitexp", "fence":
		return tag, true
	}
	return "", false
}

// inspectSemaphore reads the live leases of the semaphore with hash tag
// tag: through semaphore.Holders when the name can be decoded from the tag
// ("b"+base64url), otherwise by counting live entries of its leases set.
func inspectSemaphore(ctx context.Context, client redis.UniversalClient, prefix, tag string) (semaphoreInfo, error) {
	if strings.HasPrefix(tag, "b") {
		if name, err := base64.RawURLEncoding.DecodeString(tag[1:]); err == nil && len(name) > 0 {
			// The capacity does not matter for reading holders.
			sem, err := semaphore.New(client, string(name), 1, semaphore.WithPrefix(prefix+":"))
			if err != nil {
				return semaphoreInfo{}, err
			}
			defer sem.Close()
			holders, err := sem.Holders(ctx)
			if err != nil {
				return semaphoreInfo{}, fmt.Errorf("reading semaphore %q: %w", name, err)
			}
			waiting, err := sem.Waiting(ctx)
			if err != nil {
				return semaphoreInfo{}, fmt.Errorf("reading semaphore %q: %w", name, err)
			}
			si := semaphoreInfo{Name: string(name), Leases: len(holders), Waiting: waiting}
			for _, h := range holders {
				si.Slots += h.Weight
			}
			return si, nil
		}
	}
	// A hashed name: count the leases whose expiry (Redis time, µs) is ahead.
	now, err := client.Time(ctx).Result()
	if err != nil {
		return semaphoreInfo{}, err
	}
	key := prefix + ":sem:{" + tag + "}:leases"
	n, err := client.ZCount(ctx, key, fmt.Sprintf("(%d", now.UnixMicro()), "+inf").Result()
	if err != nil {
		return semaphoreInfo{}, fmt.Errorf("reading %s: %w", key, err)
	}
	return semaphoreInfo{Name: "(hashed " + tag[1:min(len(tag), 13)] + "…)", Leases: int(n), Slots: -1, Waiting: -1}, nil
}

// inspectGroup counts the live members of a membership group: entries of
// its sorted set whose expiry (ms, Redis time) is still ahead.
func inspectGroup(ctx context.Context, client redis.UniversalClient, key, group string) (groupInfo, error) {
	now, err := client.Time(ctx).Result()
	if err != nil {
		return groupInfo{}, err
	}
	n, err := client.ZCount(ctx, key, fmt.Sprintf("(%d", now.UnixMilli()), "+inf").Result()
	if err != nil {
		return groupInfo{}, fmt.Errorf("reading %s: %w", key, err)
	}
	return groupInfo{Name: group, Live: n}, nil
}

// write prints the report as tables.
func (r *report) write(out io.Writer, addr, prefix string) {
	fmt.Fprintf(out, "Redis %s, prefix %q\n\n", addr, prefix)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "LIMITERS (%d)\n", len(r.Limiters))
	if len(r.Limiters) > 0 {
		fmt.Fprintln(tw, "  ALGORITHM\tNAME\tKEYS\t")
		for _, l := range r.Limiters {
			alg := l.Algorithm
			if l.Multi {
				alg += " (multi)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t\n", alg, l.Name, l.Keys)
		}
	}
	tw.Flush()
	fmt.Fprintf(tw, "\nBREAKERS (%d)\n", len(r.Breakers))
	if len(r.Breakers) > 0 {
		fmt.Fprintln(tw, "  NAME\tSTATE\tDETAIL\t")
		for _, b := range r.Breakers {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t\n", b.Name, b.State, b.Detail)
		}
	}
	tw.Flush()
	fmt.Fprintf(tw, "\nBULKHEADS AND SEMAPHORES (%d)\n", len(r.Semaphores))
	if len(r.Semaphores) > 0 {
		fmt.Fprintln(tw, "  NAME\tLEASES HELD\tSLOTS HELD\tWAITING\t")
		for _, s := range r.Semaphores {
			slots, waiting := fmt.Sprint(s.Slots), fmt.Sprint(s.Waiting)
			if s.Slots < 0 {
				slots, waiting = "?", "?"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t\n", s.Name, s.Leases, slots, waiting)
		}
	}
	tw.Flush()
	if len(r.Groups) > 0 {
		fmt.Fprintf(tw, "\nREPLICA GROUPS (%d)\n", len(r.Groups))
		fmt.Fprintln(tw, "  GROUP\tLIVE REPLICAS\t")
		for _, g := range r.Groups {
			fmt.Fprintf(tw, "  %s\t%d\t\n", g.Name, g.Live)
		}
		tw.Flush()
	}
	if len(r.Other) > 0 {
		fmt.Fprintf(out, "\nOTHER KEYS (%d, not from a known layout)\n", len(r.Other))
		for i, k := range r.Other {
			if i == 20 {
				fmt.Fprintf(out, "  … and %d more\n", len(r.Other)-20)
				break
			}
			fmt.Fprintf(out, "  %q\n", k)
		}
	}
}
