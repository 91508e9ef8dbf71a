package telemetry

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bulwark-go/bulwark"
)

// OTel is a bulwark.Observer that records events with OpenTelemetry
// metric instruments (see the package documentation for the table). It
// uses only the metric API: bring your own SDK and exporter through the
// metric.Meter.
//
// Observe is safe for concurrent use. Each series' attribute set is built
// once, when its pattern instance first reports, and reused afterwards.
// Attribute keys are prefixed with "bulwark." (bulwark.pattern,
// bulwark.name, bulwark.result, …).
type OTel struct {
	*core
}

var _ bulwark.Observer = (*OTel)(nil)

// NewOTel creates the instruments with meter. It returns an error wrapping
// bulwark.ErrInvalidConfig when meter is nil or an option is invalid, and
// the meter's error when an instrument cannot be created.
func NewOTel(meter metric.Meter, opts ...Option) (*OTel, error) {
	if meter == nil {
		return nil, configError("telemetry: meter must not be nil")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	b := &otelBackend{}
	for id := range numMetrics {
		def := metricDefs[id]
		name := def.otel
		if o.namespace != DefaultNamespace {
			name = o.namespace + name[len(DefaultNamespace):]
		}
		desc, unit := metric.WithDescription(def.help), metric.WithUnit(def.unit)
		var err error
		switch def.kind {
		case kindCounter:
			b.counters[id], err = meter.Int64Counter(name, desc, unit)
		case kindGauge:
			b.gauges[id], err = meter.Int64Gauge(name, desc, unit)
		case kindUpDown:
			b.upDowns[id], err = meter.Int64UpDownCounter(name, desc, unit)
		case kindHistogram:
			b.histograms[id], err = meter.Float64Histogram(name, desc, unit, metric.WithExplicitBucketBoundaries(o.buckets(id)...))
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: creating %s: %w", name, err)
		}
	}
	return &OTel{core: newCore(b, o)}, nil
}

// Observe records e.
func (t *OTel) Observe(e bulwark.Event) { t.observe(e) }

type otelBackend struct {
	counters   [numMetrics]metric.Int64Counter
	gauges     [numMetrics]metric.Int64Gauge
	upDowns    [numMetrics]metric.Int64UpDownCounter
	histograms [numMetrics]metric.Float64Histogram
}

func attrs(id metricID, pattern, name string, extra []string) attribute.Set {
	kv := make([]attribute.KeyValue, 0, 2+len(extra))
	kv = append(kv, attribute.String("bulwark.pattern", validUTF8(pattern)), attribute.String("bulwark.name", validUTF8(name)))
	for i, l := range metricDefs[id].labels {
		if i < len(extra) {
			kv = append(kv, attribute.String("bulwark."+l, extra[i]))
		}
	}
	return attribute.NewSet(kv...)
}

// The measurement contexts carry nothing: an observer has no request
// context, and the metric API needs none for synchronous instruments.
var bg = context.Background()

type otelCounter struct {
	c    metric.Int64Counter
	opts []metric.AddOption
}

func (c *otelCounter) Inc() { c.c.Add(bg, 1, c.opts...) }

type otelGauge struct {
	g    metric.Int64Gauge
	opts []metric.RecordOption
}

func (g *otelGauge) Set(v float64) { g.g.Record(bg, int64(v), g.opts...) }

type otelUpDown struct {
	c    metric.Int64UpDownCounter
	opts []metric.AddOption
}

func (u *otelUpDown) Inc() { u.c.Add(bg, 1, u.opts...) }
func (u *otelUpDown) Dec() { u.c.Add(bg, -1, u.opts...) }

type otelHistogram struct {
	h    metric.Float64Histogram
	opts []metric.RecordOption
}

func (h *otelHistogram) Observe(v float64) { h.h.Record(bg, v, h.opts...) }

func (b *otelBackend) counter(id metricID, pattern, name string, extra ...string) counter {
	return &otelCounter{c: b.counters[id], opts: []metric.AddOption{metric.WithAttributeSet(attrs(id, pattern, name, extra))}}
}

func (b *otelBackend) setter(id metricID, pattern, name string, extra ...string) setter {
	return &otelGauge{g: b.gauges[id], opts: []metric.RecordOption{metric.WithAttributeSet(attrs(id, pattern, name, extra))}}
}

func (b *otelBackend) upDown(id metricID, pattern, name string, extra ...string) upDown {
	return &otelUpDown{c: b.upDowns[id], opts: []metric.AddOption{metric.WithAttributeSet(attrs(id, pattern, name, extra))}}
}

func (b *otelBackend) histogram(id metricID, pattern, name string, extra ...string) histogram {
	return &otelHistogram{h: b.histograms[id], opts: []metric.RecordOption{metric.WithAttributeSet(attrs(id, pattern, name, extra))}}
}
