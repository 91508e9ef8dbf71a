package telemetry

import (
	"os"
	"strings"
	"testing"
)

// TestDocsListEveryMetric keeps doc.go and METRICS.md in step with the
// metrics the observers create.
func TestDocsListEveryMetric(t *testing.T) {
	for _, file := range []string{"doc.go", "METRICS.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, d := range metricDefs {
			for _, name := range []string{DefaultNamespace + "_" + d.prom, d.otel} {
				if !strings.Contains(text, name+" ") && !strings.Contains(text, name+"`") {
					t.Errorf("%s does not list %s", file, name)
				}
			}
			for _, l := range d.labels {
				if !strings.Contains(text, l) {
					t.Errorf("%s does not mention label %s of %s", file, l, d.prom)
				}
			}
		}
	}
}
