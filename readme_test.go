package bulwark_test

import (
	"os"
	"strings"
	"testing"
)

// TestReadmeMetricTable keeps the metric table of README.md identical to
// the one in telemetry/METRICS.md, row for row.
func TestReadmeMetricTable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := os.ReadFile("telemetry/METRICS.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, line := range strings.Split(string(metrics), "\n") {
		if !strings.HasPrefix(line, "| `bulwark_") {
			continue
		}
		rows++
		if !strings.Contains(string(readme), line+"\n") {
			t.Errorf("README.md lacks the metric row\n%s", line)
		}
	}
	if rows == 0 {
		t.Fatal("no metric rows found in telemetry/METRICS.md")
	}
}
