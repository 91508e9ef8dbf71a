// Package bulwarkotel records bulwark's events with OpenTelemetry metric
// instruments, the table of package telemetry (bulwark.decisions,
// bulwark.breaker.state, bulwark.store.call.duration, …):
//
//	metrics, err := bulwarkotel.New(meterProvider.Meter("github.com/bulwark-go/bulwark"))
//	if err != nil {
//		return err
//	}
//	store, err := distributed.New(client, distributed.WithObserver(metrics))
//
// The returned [Observer] is a bulwark.Observer: pass it to a pattern's or
// a store's WithObserver option, or fan one event stream out with
// bulwark.Observers. Options are telemetry's (telemetry.WithNamespace,
// telemetry.WithMaxInstances, telemetry.WithStoreBuckets, …). Labels become
// attributes prefixed with "bulwark." ([AttributePrefix]): bulwark.pattern,
// bulwark.name, bulwark.result, …
//
// Only the metric API (go.opentelemetry.io/otel/metric) is used: bring your
// own SDK, reader and exporter (OTLP, Prometheus through the OTel exporter,
// stdout) through the metric.Meter. This package is a module of its own
// (github.com/bulwark-go/bulwark/telemetry/bulwarkotel) so that OpenTelemetry
// reaches only the programs that use it; it never pulls in the Prometheus
// client (package bulwarkprom is the Prometheus twin).
package bulwarkotel
