package local

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/internal/fakeclock"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func newEstimator(t *testing.T, cfg BackpressureConfig, opts ...Option) *Backpressure {
	t.Helper()
	b, err := NewBackpressure(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBackpressureScore(t *testing.T) {
	base := BackpressureConfig{Window: 20, Baseline: 10 * time.Millisecond, MinRetryAfter: time.Second}
	cases := []struct {
		name    string
		samples []time.Duration
		want    float64
	}{
		{"too few samples", []time.Duration{ms(100), ms(100), ms(100)}, 0},
		{"at baseline, flat", repeat(ms(10), 20), 0},
		{"p95 at 1.5x baseline, flat", repeat(ms(15), 20), 0.5},
		{"p95 at 3x baseline", repeat(ms(30), 20), 1},
		{"rising by half", append(repeat(ms(4), 10), repeat(ms(6), 10)...), 0.5},
		{"falling", append(repeat(ms(8), 10), repeat(ms(4), 10)...), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newEstimator(t, base)
			for _, d := range c.samples {
				b.Record(d)
			}
			if got := b.Score(); !near(got, c.want) {
				t.Fatalf("Score = %v, want %v", got, c.want)
			}
		})
	}
	// The window slides: old samples leave it.
	b := newEstimator(t, base)
	for _, d := range repeat(ms(30), 20) {
		b.Record(d)
	}
	for _, d := range repeat(ms(10), 20) {
		b.Record(d)
	}
	if got := b.Score(); got != 0 {
		t.Fatalf("Score after the window slid = %v, want 0", got)
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

func TestBackpressureRetryAfterFormula(t *testing.T) {
	draw := 0.5
	cfg := BackpressureConfig{Window: 8, Baseline: ms(10), MinRetryAfter: time.Second, MaxRetryAfter: 4 * time.Second,
		Rand: func() float64 { return draw }}
	b := newEstimator(t, cfg)
	// No stress: t = t_min × j.
	if got := b.RetryAfter(); got != time.Second {
		t.Fatalf("RetryAfter at no stress, j=1 = %v, want 1s", got)
	}
	for _, d := range repeat(ms(15), 8) { // stress 0.5
		b.Record(d)
	}
	cases := []struct {
		draw float64
		want time.Duration
	}{
		{0.5, 3 * time.Second},                 // (1 + 4×0.5) × 1.0
		{0, 2400 * time.Millisecond},           // × 0.8
		{0.999999, 3599999 * time.Microsecond}, // just below × 1.2
	}
	for _, c := range cases {
		draw = c.draw
		if got := b.RetryAfter(); (got - c.want).Abs() > time.Microsecond {
			t.Fatalf("RetryAfter with j from %v = %v, want %v", c.draw, got, c.want)
		}
	}
}

func TestBackpressureMaxAgeAndLearnedBaseline(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	obs := &policyEvents{}
	b := newEstimator(t, BackpressureConfig{Window: 4, MaxAge: time.Minute, MinRetryAfter: time.Second},
		WithClock(clk), WithObserver(obs))
	for _, d := range repeat(ms(10), 4) {
		b.Record(d)
	}
	if got := b.Baseline(); got != ms(10) {
		t.Fatalf("learned baseline = %v, want 10ms", got)
	}
	for _, d := range repeat(ms(20), 4) {
		b.Record(d)
	}
	if got := b.Baseline(); got != ms(11) { // up by a tenth of the gap
		t.Fatalf("baseline after a slower window = %v, want 11ms", got)
	}
	if got := b.Score(); !near(got, float64(ms(9))/float64(ms(11))) {
		t.Fatalf("Score = %v", got)
	}
	for _, d := range repeat(ms(5), 4) {
		b.Record(d)
	}
	if got := b.Baseline(); got != ms(5) { // down at once
		t.Fatalf("baseline after a faster window = %v, want 5ms", got)
	}
	if evs := obs.of(bulwark.EventLimitChanged); len(evs) != 3 || evs[2].Duration != ms(5) {
		t.Fatalf("baseline events = %+v", evs)
	}
	for _, d := range repeat(ms(50), 4) {
		b.Record(d)
	}
	if b.Score() == 0 {
		t.Fatal("no stress right after slow calls")
	}
	clk.Advance(61 * time.Second)
	if got := b.Score(); got != 0 {
		t.Fatalf("Score after MaxAge = %v, want 0", got)
	}
}

func TestBackpressureRunRecordsLatency(t *testing.T) {
	clk := fakeclock.New(fakeclock.Epoch)
	b := newEstimator(t, BackpressureConfig{Window: 4, Baseline: ms(10), MinRetryAfter: time.Second}, WithClock(clk))
	ex, _ := bulwark.Compose[int](b)
	for range 4 {
		_, _ = ex.Run(context.Background(), func(context.Context) (int, error) {
			clk.Advance(ms(20)) // inject latency
			return 1, errTransient
		})
	}
	if got := b.Score(); got != 1 {
		t.Fatalf("Score after four 20ms calls against a 10ms baseline = %v, want 1", got)
	}
	if n := testing.AllocsPerRun(100, func() { b.Record(ms(1)) }); n != 0 {
		t.Fatalf("Record allocates %v", n)
	}
}

// denyAll denies everything with a fixed RetryAfter.
type denyAll struct{ retryAfter time.Duration }

func (d denyAll) Allow(ctx context.Context, key string, n int) (bulwark.Decision, error) {
	if n > 5 {
		return bulwark.Decision{}, core.ArgumentError("n above capacity")
	}
	return bulwark.Decision{Limit: 5, RetryAfter: d.retryAfter}, nil
}

func TestBackpressureLimiter(t *testing.T) {
	b := newEstimator(t, BackpressureConfig{Window: 4, Baseline: ms(10), MinRetryAfter: time.Second,
		MaxRetryAfter: 9 * time.Second, Rand: func() float64 { return 0.5 }})
	for _, d := range repeat(ms(40), 4) {
		b.Record(d) // stress 1: advice 10s
	}
	l, err := NewBackpressureLimiter(denyAll{retryAfter: 2 * time.Second}, b)
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.Allow(context.Background(), "k", 1)
	if err != nil || d.Allowed || d.RetryAfter != 10*time.Second {
		t.Fatalf("Allow = %+v, %v; want a denial advising 10s", d, err)
	}
	long, _ := NewBackpressureLimiter(denyAll{retryAfter: time.Minute}, b)
	if d, _ := long.Allow(context.Background(), "k", 1); d.RetryAfter != time.Minute {
		t.Fatalf("RetryAfter = %v, want the limiter's longer minute", d.RetryAfter)
	}
	if _, err := l.Allow(context.Background(), "k", 6); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Fatalf("Allow error not passed through: %v", err)
	}
	if _, err := NewBackpressureLimiter(nil, b); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Fatal("nil limiter accepted")
	}
}

func TestBackpressureValidation(t *testing.T) {
	bad := []BackpressureConfig{
		{Window: 3, MinRetryAfter: time.Second},
		{Window: 4, MaxAge: -1, MinRetryAfter: time.Second},
		{Window: 4, Baseline: -1, MinRetryAfter: time.Second},
		{Window: 4},
		{Window: 4, MinRetryAfter: time.Second, MaxRetryAfter: -1},
	}
	for _, c := range bad {
		if _, err := NewBackpressure(c); !errors.Is(err, bulwark.ErrInvalidConfig) {
			t.Errorf("NewBackpressure(%+v) err = %v", c, err)
		}
	}
	if _, err := NewBackpressure(DefaultBackpressureConfig()); err != nil {
		t.Fatal(err)
	}
}
