package integration_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

func TestMain(m *testing.M) {
	// These tests kill and freeze Redis on purpose; the client's log lines
	// about refused dials would only bury the tests' own output.
	redis.SetLogger(quietLogger{})
	redistest.Main(m)
}

// quietLogger drops the Redis client's log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
