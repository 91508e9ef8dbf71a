package bulwarkprom_test

import (
	"os"
	"strings"
	"testing"
)

// A Prometheus user never downloads OpenTelemetry: this module's go.sum,
// which lists every module a build or test of it may need, names none.
func TestGoSumHasNoOpenTelemetry(t *testing.T) {
	b, err := os.ReadFile("go.sum")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 || !strings.Contains(string(b), "github.com/prometheus/client_golang ") {
		t.Fatalf("go.sum does not list client_golang; is it this module's?\n%s", b)
	}
	for _, line := range lines {
		if strings.HasPrefix(line, "go.opentelemetry.io/") {
			t.Errorf("go.sum lists an OpenTelemetry module: %s", line)
		}
	}
}
