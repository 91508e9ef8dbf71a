package telemetry

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-go/bulwark"
)

// Prometheus is a bulwark.Observer that exports events as Prometheus
// metrics (see the package documentation for the table).
//
// Observe is safe for concurrent use and cheap: the series of a pattern
// instance are created the first time it reports and then found through a
// lock-free lookup, so observing allocates nothing in the steady state.
type Prometheus struct {
	*core
	collectors []prometheus.Collector
}

var _ bulwark.Observer = (*Prometheus)(nil)

// NewPrometheus creates the metrics and registers them with reg. It
// returns an error wrapping bulwark.ErrInvalidConfig when reg is nil or an
// option is invalid, and the registry's error (wrapped) when a metric of
// the same name is already registered (use [WithNamespace] for a second
// observer on one registry).
func NewPrometheus(reg prometheus.Registerer, opts ...Option) (*Prometheus, error) {
	if reg == nil {
		return nil, configError("telemetry: prometheus registerer must not be nil")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	b := &promBackend{}
	p := &Prometheus{}
	for id := range numMetrics {
		def := metricDefs[id]
		labels := append([]string{"pattern", "name"}, def.labels...)
		name := o.namespace + "_" + def.prom
		var c prometheus.Collector
		switch def.kind {
		case kindCounter:
			v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: def.help}, labels)
			b.counters[id], c = v, v
		case kindGauge, kindUpDown:
			v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: def.help}, labels)
			b.gauges[id], c = v, v
		case kindHistogram:
			v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: def.help, Buckets: o.buckets(id)}, labels)
			b.histograms[id], c = v, v
		}
		if err := reg.Register(c); err != nil {
			for _, done := range p.collectors {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("telemetry: registering %s: %w", name, err)
		}
		p.collectors = append(p.collectors, c)
	}
	p.core = newCore(b, o)
	return p, nil
}

// Observe records e.
func (p *Prometheus) Observe(e bulwark.Event) { p.observe(e) }

// Unregister removes the observer's metrics from reg (the registerer given
// to NewPrometheus), for services that rebuild their observers.
func (p *Prometheus) Unregister(reg prometheus.Registerer) {
	for _, c := range p.collectors {
		reg.Unregister(c)
	}
}

type promBackend struct {
	counters   [numMetrics]*prometheus.CounterVec
	gauges     [numMetrics]*prometheus.GaugeVec
	histograms [numMetrics]*prometheus.HistogramVec
}

// labelValues lists the label values; invalid UTF-8 in a pattern or name
// (which the registry would refuse) is replaced, never panicked on.
func labelValues(pattern, name string, extra []string) []string {
	return append([]string{validUTF8(pattern), validUTF8(name)}, extra...)
}

func (b *promBackend) counter(id metricID, pattern, name string, extra ...string) counter {
	return b.counters[id].WithLabelValues(labelValues(pattern, name, extra)...)
}

func (b *promBackend) setter(id metricID, pattern, name string, extra ...string) setter {
	return b.gauges[id].WithLabelValues(labelValues(pattern, name, extra)...)
}

func (b *promBackend) upDown(id metricID, pattern, name string, extra ...string) upDown {
	return b.gauges[id].WithLabelValues(labelValues(pattern, name, extra)...)
}

func (b *promBackend) histogram(id metricID, pattern, name string, extra ...string) histogram {
	return b.histograms[id].WithLabelValues(labelValues(pattern, name, extra)...)
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
