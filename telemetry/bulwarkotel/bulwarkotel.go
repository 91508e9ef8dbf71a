package bulwarkotel

import (
	"context"
	"fmt"
	"reflect"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/telemetry"
)

// Observer is a bulwark.Observer that records events with OpenTelemetry
// metric instruments. Observing goes through the embedded
// telemetry.Observer: safe for concurrent use; each series' attribute set
// is built once, when its pattern instance first reports, and reused
// afterwards.
type Observer struct {
	*telemetry.Observer
}

var _ bulwark.Observer = (*Observer)(nil)

// Observe records e (see telemetry.Observer.Observe); a nil *Observer
// records nothing.
func (o *Observer) Observe(e bulwark.Event) {
	if o != nil {
		o.Observer.Observe(e)
	}
}

// AttributePrefix is put in front of every label name to make the
// attribute key: bulwark.pattern, bulwark.name, bulwark.result, …
const AttributePrefix = "bulwark."

// New creates the instruments of the telemetry table with meter (from your
// MeterProvider: meterProvider.Meter("github.com/bulwark-go/bulwark")). It
// returns an error wrapping bulwark.ErrInvalidConfig when meter is nil (or
// a nil pointer) or an option is invalid, and the meter's error (wrapped)
// when an instrument cannot be created.
func New(meter metric.Meter, opts ...telemetry.Option) (*Observer, error) {
	if meter == nil || isNilPointer(meter) {
		return nil, fmt.Errorf("%w: bulwarkotel: meter must not be nil", bulwark.ErrInvalidConfig)
	}
	obs, err := telemetry.New(&backend{meter: meter}, opts...)
	if err != nil {
		return nil, err
	}
	return &Observer{Observer: obs}, nil
}

func isNilPointer(v any) bool {
	r := reflect.ValueOf(v)
	return r.Kind() == reflect.Pointer && r.IsNil()
}

// backend is the telemetry.Backend of OpenTelemetry instruments: Define
// creates one instrument per metric, the constructors bind an attribute
// set to it.
type backend struct {
	meter      metric.Meter
	labels     map[telemetry.MetricID][]string
	counters   map[telemetry.MetricID]metric.Int64Counter
	gauges     map[telemetry.MetricID]metric.Int64Gauge
	upDowns    map[telemetry.MetricID]metric.Int64UpDownCounter
	histograms map[telemetry.MetricID]metric.Float64Histogram
}

func (b *backend) Define(m telemetry.Metric) error {
	if b.labels == nil {
		b.labels = map[telemetry.MetricID][]string{}
		b.counters = map[telemetry.MetricID]metric.Int64Counter{}
		b.gauges = map[telemetry.MetricID]metric.Int64Gauge{}
		b.upDowns = map[telemetry.MetricID]metric.Int64UpDownCounter{}
		b.histograms = map[telemetry.MetricID]metric.Float64Histogram{}
	}
	desc, unit := metric.WithDescription(m.Help), metric.WithUnit(m.Unit)
	var err error
	switch m.Kind {
	case telemetry.KindCounter:
		b.counters[m.ID], err = b.meter.Int64Counter(m.OTelName, desc, unit)
	case telemetry.KindGauge:
		b.gauges[m.ID], err = b.meter.Int64Gauge(m.OTelName, desc, unit)
	case telemetry.KindUpDown:
		b.upDowns[m.ID], err = b.meter.Int64UpDownCounter(m.OTelName, desc, unit)
	case telemetry.KindHistogram:
		b.histograms[m.ID], err = b.meter.Float64Histogram(m.OTelName, desc, unit, metric.WithExplicitBucketBoundaries(m.Buckets...))
	default:
		return fmt.Errorf("bulwarkotel: metric %s has unknown kind %v", m.OTelName, m.Kind)
	}
	if err != nil {
		return fmt.Errorf("bulwarkotel: creating %s: %w", m.OTelName, err)
	}
	b.labels[m.ID] = m.Labels
	return nil
}

// attrs builds the attribute set of one series.
func (b *backend) attrs(id telemetry.MetricID, values []string) attribute.Set {
	labels := b.labels[id]
	kv := make([]attribute.KeyValue, 0, len(values))
	for i, v := range values {
		if i < len(labels) {
			kv = append(kv, attribute.String(AttributePrefix+labels[i], v))
		}
	}
	return attribute.NewSet(kv...)
}

// The measurement contexts carry nothing: an observer has no request
// context, and the metric API needs none for synchronous instruments.
var bg = context.Background()

type counter struct {
	c    metric.Int64Counter
	opts []metric.AddOption
}

func (c *counter) Inc() { c.c.Add(bg, 1, c.opts...) }

type gauge struct {
	g    metric.Int64Gauge
	opts []metric.RecordOption
}

func (g *gauge) Set(v float64) { g.g.Record(bg, int64(v), g.opts...) }

type upDown struct {
	c    metric.Int64UpDownCounter
	opts []metric.AddOption
}

func (u *upDown) Inc() { u.c.Add(bg, 1, u.opts...) }
func (u *upDown) Dec() { u.c.Add(bg, -1, u.opts...) }

type histogram struct {
	h    metric.Float64Histogram
	opts []metric.RecordOption
}

func (h *histogram) Observe(v float64) { h.h.Record(bg, v, h.opts...) }

// The maps are written only by Define, before New returns, and read-only
// afterwards.

func (b *backend) Counter(id telemetry.MetricID, values []string) telemetry.Counter {
	return &counter{c: b.counters[id], opts: []metric.AddOption{metric.WithAttributeSet(b.attrs(id, values))}}
}

func (b *backend) Gauge(id telemetry.MetricID, values []string) telemetry.Gauge {
	return &gauge{g: b.gauges[id], opts: []metric.RecordOption{metric.WithAttributeSet(b.attrs(id, values))}}
}

func (b *backend) UpDown(id telemetry.MetricID, values []string) telemetry.UpDown {
	return &upDown{c: b.upDowns[id], opts: []metric.AddOption{metric.WithAttributeSet(b.attrs(id, values))}}
}

func (b *backend) Histogram(id telemetry.MetricID, values []string) telemetry.Histogram {
	return &histogram{h: b.histograms[id], opts: []metric.RecordOption{metric.WithAttributeSet(b.attrs(id, values))}}
}
