package telemetry_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bulwark-go/bulwark/telemetry"
)

// recorder is a telemetry.Backend keeping every series in memory, the way
// a user's own backend (StatsD, expvar) would plug in.
type recorder struct {
	mu      sync.Mutex
	defined []telemetry.Metric
	series  map[string]*instrument // by key: name{label=value,...}
	made    map[string]int         // constructor calls by key

	failDefine telemetry.MetricID // Define of this metric fails (when failing)
	failing    bool
	nilOnes    bool // constructors return nil
}

var _ telemetry.Backend = (*recorder)(nil)

var errDefine = errors.New("recorder: define refused")

func newRecorder() *recorder {
	return &recorder{series: map[string]*instrument{}, made: map[string]int{}}
}

func (r *recorder) Define(m telemetry.Metric) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing && m.ID == r.failDefine {
		return errDefine
	}
	r.defined = append(r.defined, m)
	return nil
}

func (r *recorder) metric(id telemetry.MetricID) telemetry.Metric {
	for _, m := range r.defined {
		if m.ID == id {
			return m
		}
	}
	panic(fmt.Sprintf("metric %v used before Define", id))
}

// seriesKey renders name{label=value,...} with the labels in the metric's
// order.
func seriesKey(m telemetry.Metric, values []string) string {
	kv := make([]string, len(values))
	for i, v := range values {
		kv[i] = m.Labels[i] + "=" + v
	}
	return m.Name + "{" + strings.Join(kv, ",") + "}"
}

func (r *recorder) make(id telemetry.MetricID, kind telemetry.Kind, values []string) *instrument {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.metric(id)
	if m.Kind != kind {
		panic(fmt.Sprintf("metric %s is a %v, asked for a %v", m.Name, m.Kind, kind))
	}
	if len(values) != len(m.Labels) {
		panic(fmt.Sprintf("metric %s: %d values for labels %v", m.Name, len(values), m.Labels))
	}
	k := seriesKey(m, values)
	r.made[k]++
	if r.nilOnes {
		return nil
	}
	in, ok := r.series[k]
	if !ok {
		in = &instrument{}
		r.series[k] = in
	}
	return in
}

func (r *recorder) Counter(id telemetry.MetricID, values []string) telemetry.Counter {
	if in := r.make(id, telemetry.KindCounter, values); in != nil {
		return in
	}
	return nil
}

func (r *recorder) Gauge(id telemetry.MetricID, values []string) telemetry.Gauge {
	if in := r.make(id, telemetry.KindGauge, values); in != nil {
		return in
	}
	return nil
}

func (r *recorder) UpDown(id telemetry.MetricID, values []string) telemetry.UpDown {
	if in := r.make(id, telemetry.KindUpDown, values); in != nil {
		return in
	}
	return nil
}

func (r *recorder) Histogram(id telemetry.MetricID, values []string) telemetry.Histogram {
	if in := r.make(id, telemetry.KindHistogram, values); in != nil {
		return in
	}
	return nil
}

// instrument is every kind of instrument: value for counters, gauges and
// up-down counters; count and sum for histograms.
type instrument struct {
	mu         sync.Mutex
	value, sum float64
	count      int64
}

func (in *instrument) Inc() { in.add(1) }
func (in *instrument) Dec() { in.add(-1) }

func (in *instrument) add(d float64) {
	in.mu.Lock()
	in.value += d
	in.mu.Unlock()
}

func (in *instrument) Set(v float64) {
	in.mu.Lock()
	in.value = v
	in.mu.Unlock()
}

func (in *instrument) Observe(v float64) {
	in.mu.Lock()
	in.count++
	in.sum += v
	in.mu.Unlock()
}

// value returns the value of series key, failing when there is none.
func (r *recorder) value(t *testing.T, key string) float64 {
	t.Helper()
	in := r.get(t, key)
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.value
}

// hist returns the count and sum of histogram series key.
func (r *recorder) hist(t *testing.T, key string) (int64, float64) {
	t.Helper()
	in := r.get(t, key)
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.count, in.sum
}

func (r *recorder) get(t *testing.T, key string) *instrument {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	in, ok := r.series[key]
	if !ok {
		t.Fatalf("no series %s; have:\n%s", key, strings.Join(r.keysLocked(), "\n"))
	}
	return in
}

// keys lists the series keys whose name starts with prefix, sorted.
func (r *recorder) keys(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, k := range r.keysLocked() {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

func (r *recorder) keysLocked() []string {
	out := make([]string, 0, len(r.series))
	for k := range r.series {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
