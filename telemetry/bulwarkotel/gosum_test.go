package bulwarkotel_test

import (
	"os"
	"strings"
	"testing"
)

// An OpenTelemetry user never downloads the Prometheus client: this
// module's go.sum, which lists every module a build or test of it may
// need, names none of github.com/prometheus.
func TestGoSumHasNoPrometheus(t *testing.T) {
	b, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "go.opentelemetry.io/otel/metric ") {
		t.Fatalf("go.sum does not list go.opentelemetry.io/otel/metric; is it this module's?\n%s", b)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "github.com/prometheus/") {
			t.Errorf("go.sum lists a Prometheus module: %s", line)
		}
	}
}
