package integration_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/bulwarktest"
)

func TestMain(m *testing.M) {
	// These tests kill and freeze Redis on purpose; the client's log lines
	// about refused dials would only bury the tests' own output.
	redis.SetLogger(quietLogger{})
	bulwarktest.Main(m)
}

// quietLogger drops the Redis client's log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// eachBackend runs f as a subtest per backend of the test kit: the
// redis-server binary, then a container on the Docker engine. The subtests
// run one after the other, so a test's phases keep the machine to
// themselves as much as before.
func eachBackend(t *testing.T, f func(t *testing.T, b bulwarktest.Backend)) {
	t.Helper()
	for _, b := range bulwarktest.Backends {
		t.Run(b.String(), func(t *testing.T) { f(t, b) })
	}
}
