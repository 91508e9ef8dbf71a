package bulwarkprom

import (
	"fmt"
	"reflect"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/telemetry"
)

// Observer is a bulwark.Observer that exports events as Prometheus
// metrics. Observing goes through the embedded telemetry.Observer: safe
// for concurrent use, allocation-free in the steady state.
type Observer struct {
	*telemetry.Observer
	reg        prometheus.Registerer
	collectors []prometheus.Collector
}

var _ bulwark.Observer = (*Observer)(nil)

// New creates the metrics of the telemetry table and registers them with
// reg (prometheus.DefaultRegisterer, or a registry of your own). It returns
// an error wrapping bulwark.ErrInvalidConfig when reg is nil (or a nil
// pointer) or an option is invalid, and the registry's error (wrapped)
// when a metric of the same name is already registered: give a second
// observer on one registry its own telemetry.WithNamespace. A failed New
// leaves nothing registered.
func New(reg prometheus.Registerer, opts ...telemetry.Option) (*Observer, error) {
	if reg == nil || isNilPointer(reg) {
		return nil, fmt.Errorf("%w: bulwarkprom: registerer must not be nil", bulwark.ErrInvalidConfig)
	}
	b := &backend{reg: reg}
	obs, err := telemetry.New(b, opts...)
	if err != nil {
		b.unregister()
		return nil, err
	}
	return &Observer{Observer: obs, reg: reg, collectors: b.collectors}, nil
}

// Observe records e (see telemetry.Observer.Observe); a nil *Observer
// records nothing.
func (o *Observer) Observe(e bulwark.Event) {
	if o != nil {
		o.Observer.Observe(e)
	}
}

// Unregister removes the observer's metrics from the registerer given to
// New, for services that rebuild their observers. The observer must not be
// used afterwards: what it records would no longer be exported. On a nil
// *Observer it does nothing.
func (o *Observer) Unregister() {
	if o == nil {
		return
	}
	for _, c := range o.collectors {
		o.reg.Unregister(c)
	}
}

func isNilPointer(v any) bool {
	r := reflect.ValueOf(v)
	return r.Kind() == reflect.Pointer && r.IsNil()
}

// backend is the telemetry.Backend of Prometheus vectors: Define registers
// one vector per metric, the constructors return its children.
type backend struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	counters   map[telemetry.MetricID]*prometheus.CounterVec
	gauges     map[telemetry.MetricID]*prometheus.GaugeVec
	histograms map[telemetry.MetricID]*prometheus.HistogramVec
}

func (b *backend) Define(m telemetry.Metric) error {
	if b.counters == nil {
		b.counters = map[telemetry.MetricID]*prometheus.CounterVec{}
		b.gauges = map[telemetry.MetricID]*prometheus.GaugeVec{}
		b.histograms = map[telemetry.MetricID]*prometheus.HistogramVec{}
	}
	var c prometheus.Collector
	switch m.Kind {
	case telemetry.KindCounter:
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: m.Name, Help: m.Help}, m.Labels)
		b.counters[m.ID], c = v, v
	case telemetry.KindGauge, telemetry.KindUpDown:
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: m.Name, Help: m.Help}, m.Labels)
		b.gauges[m.ID], c = v, v
	case telemetry.KindHistogram:
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: m.Name, Help: m.Help, Buckets: m.Buckets}, m.Labels)
		b.histograms[m.ID], c = v, v
	default:
		return fmt.Errorf("bulwarkprom: metric %s has unknown kind %v", m.Name, m.Kind)
	}
	if err := b.reg.Register(c); err != nil {
		return fmt.Errorf("bulwarkprom: registering %s: %w", m.Name, err)
	}
	b.collectors = append(b.collectors, c)
	return nil
}

// unregister removes what Define registered, after a failed New.
func (b *backend) unregister() {
	for _, c := range b.collectors {
		b.reg.Unregister(c)
	}
	b.collectors = nil
}

// The maps are written only by Define, before New returns, and read-only
// afterwards; the children are the vectors' own (created once per label
// values, then cached by the telemetry.Observer).

func (b *backend) Counter(id telemetry.MetricID, values []string) telemetry.Counter {
	return b.counters[id].WithLabelValues(values...)
}

func (b *backend) Gauge(id telemetry.MetricID, values []string) telemetry.Gauge {
	return b.gauges[id].WithLabelValues(values...)
}

func (b *backend) UpDown(id telemetry.MetricID, values []string) telemetry.UpDown {
	return b.gauges[id].WithLabelValues(values...)
}

func (b *backend) Histogram(id telemetry.MetricID, values []string) telemetry.Histogram {
	return b.histograms[id].WithLabelValues(values...)
}
