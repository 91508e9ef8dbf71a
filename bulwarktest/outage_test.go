package bulwarktest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bulwark-go/bulwark/bulwarktest"
)

// TestOutage runs the example's scenario on each backend.
func TestOutage(t *testing.T) {
	for _, b := range bulwarktest.Backends {
		t.Run(b.String(), func(t *testing.T) { checkOutage(t, bulwarktest.WithBackend(b)) })
	}
}

func TestRunReportsFailuresAndSkips(t *testing.T) {
	cleaned := false
	err := bulwarktest.Run("failing", func(tb testing.TB) {
		tb.Cleanup(func() { cleaned = true })
		dir := tb.TempDir()
		if dir == "" {
			tb.Error("no temp dir")
		}
		tb.Fatalf("boom %d", 7)
		tb.Error("not reached")
	})
	if err == nil || !strings.Contains(err.Error(), "boom 7") || strings.Contains(err.Error(), "not reached") {
		t.Fatalf("Run of a failing function = %v", err)
	}
	if !cleaned {
		t.Fatal("cleanup did not run")
	}
	err = bulwarktest.Run("skipping", func(tb testing.TB) { tb.Skipf("no %s", "engine") })
	if !errors.Is(err, bulwarktest.ErrSkipped) || !strings.Contains(err.Error(), "no engine") {
		t.Fatalf("Run of a skipping function = %v", err)
	}
	if err := bulwarktest.Run("passing", func(tb testing.TB) { tb.Log("fine") }); err != nil {
		t.Fatalf("Run of a passing function = %v", err)
	}
	err = bulwarktest.Run("panicking", func(tb testing.TB) { panic("oops") })
	if err == nil || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("Run of a panicking function = %v", err)
	}
}
