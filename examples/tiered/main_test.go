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
		t.Fatal(err)
	}
	for _, want := range []string{
		"replica-1: ok ok ok ok ok denied(replica)",
		"replica-2: ok ok ok denied(fleet) denied(fleet) denied(replica)",
		"replica-3: denied(fleet) denied(fleet) denied(fleet) denied(fleet) denied(fleet) denied(replica)",
		"admitted 8 of 18",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
