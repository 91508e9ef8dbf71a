package local

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// BackpressureConfig is the shape of a [Backpressure] estimator.
//
// Worked example: {Window: 200, Baseline: 50ms, MinRetryAfter: 1s,
// MaxRetryAfter: 9s}: while the p95 of the last 200 latencies stays at or
// below 50ms and latency is flat, clients are told to come back after about
// 1s (0.8s to 1.2s); with p95 at 100ms or more (stress 1) after about 10s
// (8s to 12s).
type BackpressureConfig struct {
	// Window is how many recent latencies are kept, at least 4.
	Window int
	// MaxAge, when positive, ignores latencies older than this (so a quiet
	// spell does not keep an old stress alive).
	MaxAge time.Duration
	// Baseline is the healthy p95 latency. Zero means learned: the p95 of
	// each full window of new samples pulls it down at once when lower
	// and up by a tenth of the gap when higher, so a lasting change is
	// adopted within a few dozen windows.
	Baseline time.Duration
	// MinRetryAfter (t_min, positive) is the Retry-After at no stress;
	// MaxRetryAfter (t_max, at least 0) is added in proportion to stress.
	MinRetryAfter time.Duration
	MaxRetryAfter time.Duration
	// Rand is the source of uniform numbers in [0,1) for the jitter (nil:
	// math/rand/v2).
	Rand func() float64
}

// DefaultBackpressureConfig keeps 200 latencies for up to a minute, learns
// its baseline, and advises between 1s and 11s (before jitter).
func DefaultBackpressureConfig() BackpressureConfig {
	return BackpressureConfig{Window: 200, MaxAge: time.Minute, MinRetryAfter: time.Second, MaxRetryAfter: 10 * time.Second}
}

// Validate returns an error wrapping bulwark.ErrInvalidConfig when a field
// is out of range.
func (c BackpressureConfig) Validate() error {
	switch {
	case c.Window < 4:
		return core.ConfigError("backpressure window must hold at least 4 samples, got %d", c.Window)
	case c.MaxAge < 0:
		return core.ConfigError("backpressure max age must not be negative, got %v", c.MaxAge)
	case c.Baseline < 0:
		return core.ConfigError("backpressure baseline must not be negative, got %v", c.Baseline)
	case c.MinRetryAfter <= 0:
		return core.ConfigError("backpressure min retry-after must be positive, got %v", c.MinRetryAfter)
	case c.MaxRetryAfter < 0:
		return core.ConfigError("backpressure max retry-after must not be negative, got %v", c.MaxRetryAfter)
	}
	return nil
}

// backpressureMinSamples is how many samples a score needs; with fewer the
// score is 0.
const backpressureMinSamples = 4

// Backpressure estimates how stressed a service is from the latencies of
// its recent calls, and turns that into advice for clients.
//
// Score, the stress b in [0,1], is the larger of two signals over the
// window (oldest to newest):
//
//   - violation: how far the p95 latency exceeds the baseline,
//     clamp((p95 − baseline) / baseline, 0, 1), so 1 when p95 is twice the
//     baseline;
//   - gradient: how fast latency is rising, comparing the mean of the newer
//     half with the mean of the older half,
//     clamp((newer − older) / older, 0, 1).
//
// RetryAfter is t = (t_min + t_max × b) × j with j uniform in [0.8, 1.2], so
// that clients told to wait do not all come back at once.
//
// Feed it with Record, or run it as a bulwark.Policy, which records the
// latency of each call on the injected clock. [NewBackpressureLimiter] makes
// a limiter's denials carry its advice. Each move of a learned baseline
// emits an EventLimitChanged whose Duration is the new baseline.
//
// Safe for concurrent use. Record and Run allocate nothing; Score sorts a
// copy of the window (O(Window log Window)) in a buffer kept for the
// purpose.
type Backpressure struct {
	mu       sync.Mutex
	cfg      BackpressureConfig
	lat      []time.Duration // ring of latencies
	at       []time.Time     // when each was recorded
	head     int             // next write position
	n        int             // samples held
	fresh    int             // samples since the learned baseline last moved
	baseline time.Duration
	scratch  []time.Duration
	rand     func() float64
	clock    bulwark.Clock
	obs      bulwark.Observer
	name     string
}

var _ bulwark.Policy = (*Backpressure)(nil)

// NewBackpressure returns an estimator; options WithClock, WithObserver and
// WithName apply.
func NewBackpressure(cfg BackpressureConfig, opts ...Option) (*Backpressure, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	b := &Backpressure{cfg: cfg, lat: make([]time.Duration, cfg.Window), at: make([]time.Time, cfg.Window),
		scratch: make([]time.Duration, 0, cfg.Window), baseline: cfg.Baseline, rand: cfg.Rand,
		clock: o.clock, obs: o.observer, name: o.name}
	if b.rand == nil {
		b.rand = rand.Float64
	}
	return b, nil
}

// Record adds one call's latency to the window (negative counts as 0).
func (b *Backpressure) Record(latency time.Duration) {
	latency = max(latency, 0)
	now := b.clock.Now()
	b.mu.Lock()
	b.lat[b.head], b.at[b.head] = latency, now
	b.head = (b.head + 1) % len(b.lat)
	b.n = min(b.n+1, len(b.lat))
	moved := time.Duration(-1)
	if b.cfg.Baseline == 0 {
		b.fresh++
		if b.fresh >= len(b.lat) {
			b.fresh = 0
			p95 := percentile95(b.window(now, b.scratch[:0]))
			old := b.baseline
			if b.baseline == 0 || p95 < b.baseline {
				b.baseline = p95
			} else {
				b.baseline += (p95 - b.baseline) / 10
			}
			if b.baseline != old {
				moved = b.baseline
			}
		}
	}
	b.mu.Unlock()
	if moved >= 0 {
		core.Emit(b.obs, bulwark.Event{Kind: bulwark.EventLimitChanged, Pattern: "backpressure", Name: b.name,
			Time: now, Duration: moved})
	}
}

// window appends the samples that are not too old to buf, oldest first.
// Requires b.mu held.
func (b *Backpressure) window(now time.Time, buf []time.Duration) []time.Duration {
	size := len(b.lat)
	for i := 0; i < b.n; i++ {
		j := (b.head - b.n + i + size) % size
		if b.cfg.MaxAge > 0 && now.Sub(b.at[j]) > b.cfg.MaxAge {
			continue
		}
		buf = append(buf, b.lat[j])
	}
	return buf
}

// percentile95 returns the nearest-rank 95th percentile of s, sorting s.
func percentile95(s []time.Duration) time.Duration {
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return s[int(math.Ceil(0.95*float64(len(s))))-1]
}

// Baseline returns the baseline p95 in use: the configured one, or the
// learned one (0 until a first full window was seen).
func (b *Backpressure) Baseline() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.baseline
}

// Score returns the stress in [0,1] described on [Backpressure]; 0 with
// fewer than 4 samples in the window.
func (b *Backpressure) Score() float64 {
	now := b.clock.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.window(now, b.scratch[:0])
	if len(w) < backpressureMinSamples {
		return 0
	}
	var older, newer float64
	half := len(w) / 2
	for i, d := range w {
		if i < half {
			older += float64(d)
		} else {
			newer += float64(d)
		}
	}
	older /= float64(half)
	newer /= float64(len(w) - half)
	var gradient float64
	switch {
	case older > 0:
		gradient = clamp01((newer - older) / older)
	case newer > 0:
		gradient = 1
	}
	var violation float64
	if b.baseline > 0 {
		p95 := percentile95(w)
		violation = clamp01(float64(p95-b.baseline) / float64(b.baseline))
	}
	return max(violation, gradient)
}

func clamp01(x float64) float64 { return min(1, max(0, x)) }

// RetryAfter returns the advice (t_min + t_max × Score()) × j, with j
// uniform in [0.8, 1.2].
func (b *Backpressure) RetryAfter() time.Duration {
	s := b.Score()
	j := 0.8 + 0.4*b.rand()
	return time.Duration((float64(b.cfg.MinRetryAfter) + float64(b.cfg.MaxRetryAfter)*s) * j)
}

// Run runs next and records its latency, whatever its outcome.
func (b *Backpressure) Run(ctx context.Context, next bulwark.Next) error {
	start := b.clock.Now()
	err := next.Run(ctx)
	b.Record(b.clock.Now().Sub(start))
	return err
}

// BackpressureLimiter is a bulwark.Limiter whose denials carry the advice
// of a [Backpressure] estimator: it asks the wrapped limiter, and on a
// denial raises RetryAfter to the estimator's RetryAfter when that is
// longer (never shorter, so a client that waits is still admitted). This is
// the "backpressure" Retry-After strategy: clients back off longer as the
// service is more stressed, not just until a token is free. Decisions and
// errors are otherwise the wrapped limiter's, which also reports the events.
type BackpressureLimiter struct {
	l bulwark.Limiter
	e *Backpressure
}

var _ bulwark.Limiter = (*BackpressureLimiter)(nil)

// NewBackpressureLimiter wraps l; a nil l or e is an error wrapping
// bulwark.ErrInvalidConfig.
func NewBackpressureLimiter(l bulwark.Limiter, e *Backpressure) (*BackpressureLimiter, error) {
	if core.IsNil(l) || e == nil {
		return nil, core.ConfigError("backpressure limiter needs a limiter and an estimator")
	}
	return &BackpressureLimiter{l: l, e: e}, nil
}

// Allow asks the wrapped limiter and stretches a denial's RetryAfter.
func (b *BackpressureLimiter) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	d, err := b.l.Allow(ctx, key, n)
	if err != nil || d.Allowed {
		return d, err
	}
	if ra := b.e.RetryAfter(); ra > d.RetryAfter {
		d.RetryAfter = ra
	}
	return d, nil
}
