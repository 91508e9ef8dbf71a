package bulwarkprom_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/telemetry/bulwarkprom"
)

// A Prometheus observer counts a limiter's decisions by result and by
// whether Redis was reachable; the limiter's WithName becomes the name
// label, the key it was asked about never a label. The series of an
// instance appear, with zero values, when it first reports.
func ExampleNew() {
	reg := prometheus.NewRegistry()
	metrics, err := bulwarkprom.New(reg)
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

	families, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range families {
		if f.GetName() != "bulwark_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			fmt.Println(f.GetName(), strings.Join(labels, " "), m.GetCounter().GetValue())
		}
	}
	// Output:
	// bulwark_decisions_total degraded=false name=api pattern=token_bucket result=allowed 2
	// bulwark_decisions_total degraded=false name=api pattern=token_bucket result=denied 1
	// bulwark_decisions_total degraded=true name=api pattern=token_bucket result=allowed 0
	// bulwark_decisions_total degraded=true name=api pattern=token_bucket result=denied 0
}
