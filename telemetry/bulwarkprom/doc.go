// Package bulwarkprom exports bulwark's events as Prometheus metrics, the
// table of package telemetry (bulwark_decisions_total,
// bulwark_breaker_state, bulwark_store_call_duration_seconds, …):
//
//	metrics, err := bulwarkprom.New(prometheus.DefaultRegisterer)
//	if err != nil {
//		return err
//	}
//	store, err := distributed.New(client, distributed.WithObserver(metrics))
//
// The returned [Observer] is a bulwark.Observer: pass it to a pattern's or
// a store's WithObserver option, or fan one event stream out with
// bulwark.Observers. Options are telemetry's (telemetry.WithNamespace,
// telemetry.WithMaxInstances, telemetry.WithStoreBuckets, …).
//
// This package is a module of its own (github.com/bulwark-go/bulwark/telemetry/bulwarkprom)
// so that its one dependency, github.com/prometheus/client_golang, reaches
// only the programs that export to Prometheus; it never pulls in
// OpenTelemetry (package bulwarkotel is the OpenTelemetry twin).
package bulwarkprom
