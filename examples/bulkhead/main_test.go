package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	m := regexp.MustCompile(`(\d+) calls served; at most (\d+) ran at once \(limit 3\)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no summary line:\n%s", out.String())
	}
	served, _ := strconv.Atoi(m[1])
	peak, _ := strconv.Atoi(m[2])
	if served != replicas*calls || peak < 1 || peak > slots {
		t.Errorf("served %d calls with at most %d at once; want %d calls and at most %d at once", served, peak, replicas*calls, slots)
	}
}
