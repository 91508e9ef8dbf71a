package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"after replica-1's failures: replica-1 open, replica-2 open, replica-3 open",
		"replica-2: refused (bulwark: circuit breaker is open",
		"replica-3: refused (bulwark: circuit breaker is open",
		"replica-2: called, succeeded (the fleet's one trial call)",
		"after the trial: replica-1 closed, replica-2 closed, replica-3 closed",
		"replica-3: called, succeeded",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
