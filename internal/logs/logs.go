package logs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
)

// Every is how often a rate-limited line of one key is written at most;
// the lines dropped in between are counted in the next one's "suppressed"
// attribute.
const Every = 10 * time.Second

// Logger writes to a *slog.Logger. A nil *Logger writes nothing, so
// callers need no check. Safe for concurrent use.
type Logger struct {
	l *slog.Logger

	mu   sync.Mutex
	keys map[string]*keyState
}

type keyState struct {
	tokens     float64 // lines that may be written now
	last       time.Time
	suppressed int
}

// New returns a Logger writing to l, or nil when l is nil.
func New(l *slog.Logger) *Logger {
	if l == nil {
		return nil
	}
	return &Logger{l: l, keys: make(map[string]*keyState)}
}

// Log writes one line at level: for state changes that are rare by
// nature.
func (g *Logger) Log(level slog.Level, msg string, args ...any) {
	if g == nil {
		return
	}
	g.l.Log(context.Background(), level, msg, args...)
}

// Limited writes one line at level unless a line of key was written less
// than every ago; the next line written for key says how many were
// dropped meanwhile ("suppressed"). Keys must be few (one per pattern
// instance and kind of line).
func (g *Logger) Limited(key string, every time.Duration, level slog.Level, msg string, args ...any) {
	g.Burst(key, every, 1, level, msg, args...)
}

// Burst is [Logger.Limited] allowing bursts: up to burst lines of key at
// once, then one per every (a token bucket per key).
func (g *Logger) Burst(key string, every time.Duration, burst int, level slog.Level, msg string, args ...any) {
	if g == nil || !g.l.Enabled(context.Background(), level) {
		return
	}
	now := time.Now()
	g.mu.Lock()
	k := g.keys[key]
	if k == nil {
		k = &keyState{tokens: float64(burst), last: now}
		g.keys[key] = k
	} else if every <= 0 {
		k.tokens = float64(burst)
	} else {
		k.tokens = min(float64(burst), k.tokens+float64(now.Sub(k.last))/float64(every))
	}
	k.last = now
	if k.tokens < 1 {
		k.suppressed++
		g.mu.Unlock()
		return
	}
	k.tokens--
	suppressed := k.suppressed
	k.suppressed = 0
	g.mu.Unlock()
	if suppressed > 0 {
		args = append(args, slog.Int("suppressed", suppressed))
	}
	g.l.Log(context.Background(), level, msg, args...)
}

// Panic reports a user callback's recovered panic at Error level,
// rate-limited; it fits eventq.Guard.OnPanic.
func (g *Logger) Panic(what string, recovered any) {
	g.Limited("panic:"+what, Every, slog.LevelError, "bulwark: a user callback panicked; recovered",
		slog.String("callback", what), slog.String("panic", fmt.Sprint(recovered)))
}

// Observer returns an observer that logs the state changes among a
// store's events, or nil when g is nil: the store turning degraded (Warn)
// and healthy again (Info, with the outage's length), breaker transitions
// (Warn when opening, Info otherwise; per breaker at most 4 lines at once,
// then one a second) and lost leases (Warn, at most one line per pattern instance per
// [Every]). attrs (the store's prefix) go on every line.
func (g *Logger) Observer(attrs ...any) bulwark.Observer {
	if g == nil {
		return nil
	}
	return &observer{g: g, attrs: attrs}
}

type observer struct {
	g     *Logger
	attrs []any

	mu    sync.Mutex
	since time.Time // when the store turned degraded; zero while healthy
}

func (o *observer) Observe(e bulwark.Event) {
	switch e.Kind {
	case bulwark.EventStoreHealth:
		o.health(e)
	case bulwark.EventBreakerTransition:
		level := slog.LevelInfo
		if e.To == bulwark.Open {
			level = slog.LevelWarn
		}
		o.g.Burst("breaker:"+e.Name, time.Second, 4, level, "bulwark: breaker state changed", o.with(
			slog.String("breaker", e.Name), slog.String("from", e.From.String()), slog.String("to", e.To.String()),
			slog.Bool("degraded", e.Degraded))...)
	case bulwark.EventLeaseLost:
		o.g.Limited("lease:"+e.Pattern+":"+e.Name, Every, slog.LevelWarn, "bulwark: lease lost", o.with(
			slog.String("pattern", e.Pattern), slog.String("name", e.Name), errAttr(e.Err))...)
	}
}

func (o *observer) health(e bulwark.Event) {
	o.mu.Lock()
	since := o.since
	if e.Degraded {
		if since.IsZero() {
			o.since = e.Time
		}
	} else {
		o.since = time.Time{}
	}
	o.mu.Unlock()
	if e.Degraded {
		o.g.Log(slog.LevelWarn, "bulwark: store degraded, deciding without Redis", o.with(errAttr(e.Err))...)
		return
	}
	var outage time.Duration
	if !since.IsZero() {
		outage = e.Time.Sub(since)
	}
	o.g.Log(slog.LevelInfo, "bulwark: store back on Redis", o.with(slog.Duration("outage", outage))...)
}

func (o *observer) with(args ...any) []any {
	return append(append(make([]any, 0, len(o.attrs)+len(args)), o.attrs...), args...)
}

func errAttr(err error) slog.Attr {
	if err == nil {
		return slog.String("err", "")
	}
	return slog.String("err", err.Error())
}
