package bulwarkotel_test

import (
	"context"
	"fmt"
	"slices"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/telemetry/bulwarkotel"
)

// An OpenTelemetry observer records a limiter's decisions with a counter
// whose attributes say the result and whether Redis was reachable; the
// limiter's WithName becomes bulwark.name, the key it was asked about never
// an attribute. Here a manual reader stands in for an exporter. Unlike
// Prometheus, OpenTelemetry shows a counter's point only once it was added
// to: no degraded decision, no point for one.
func ExampleNew() {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = provider.Shutdown(context.Background()) }()

	metrics, err := bulwarkotel.New(provider.Meter("github.com/bulwark-go/bulwark"))
	if err != nil {
		fmt.Println(err)
		return
	}
	lim, err := local.NewTokenBucket(bulwark.PerHour(2), local.WithName("api"), local.WithObserver(metrics))
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		if _, err := lim.Allow(context.Background(), "user-42", 1); err != nil {
			fmt.Println(err)
			return
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		fmt.Println(err)
		return
	}
	var lines []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || m.Name != "bulwark.decisions" {
				continue
			}
			for _, p := range sum.DataPoints {
				line := m.Name
				for _, kv := range p.Attributes.ToSlice() {
					line += " " + string(kv.Key) + "=" + kv.Value.Emit()
				}
				lines = append(lines, fmt.Sprint(line, " ", p.Value))
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// bulwark.decisions bulwark.degraded=false bulwark.name=api bulwark.pattern=token_bucket bulwark.result=allowed 2
	// bulwark.decisions bulwark.degraded=false bulwark.name=api bulwark.pattern=token_bucket bulwark.result=denied 1
}
