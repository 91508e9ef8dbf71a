package logs

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark"
)

func TestLimitedCountsSuppressed(t *testing.T) {
	var buf bytes.Buffer
	g := New(slog.New(slog.NewTextHandler(&buf, nil)))
	for range 5 {
		g.Limited("k", time.Hour, slog.LevelWarn, "line")
	}
	g.Limited("other", time.Hour, slog.LevelWarn, "line")
	g.Limited("k", 0, slog.LevelWarn, "line") // window over: written, with the count
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[2], "suppressed=4") || strings.Contains(lines[0], "suppressed") {
		t.Fatalf("lines:\n%s", buf.String())
	}
	var nilLogger *Logger
	nilLogger.Log(slog.LevelError, "x")
	nilLogger.Limited("k", 0, slog.LevelError, "x")
	nilLogger.Panic("observer", "boom")
	if nilLogger.Observer() != nil {
		t.Fatal("a nil Logger's observer is not nil")
	}
}

func TestObserverLogsStateChanges(t *testing.T) {
	var buf bytes.Buffer
	o := New(slog.New(slog.NewTextHandler(&buf, nil))).Observer("prefix", "p")
	t0 := time.Unix(1_800_000_000, 0)
	for range 100 {
		o.Observe(bulwark.Event{Kind: bulwark.EventDecision, Time: t0, Degraded: true}) // never logged
		o.Observe(bulwark.Event{Kind: bulwark.EventStoreCall, Time: t0, Err: errors.New("refused")})
	}
	o.Observe(bulwark.Event{Kind: bulwark.EventStoreHealth, Time: t0, Degraded: true, Err: errors.New("refused")})
	o.Observe(bulwark.Event{Kind: bulwark.EventStoreHealth, Time: t0.Add(3 * time.Second)})
	o.Observe(bulwark.Event{Kind: bulwark.EventBreakerTransition, Name: "b", From: bulwark.Closed, To: bulwark.Open})
	out := buf.String()
	for _, want := range []string{
		`level=WARN msg="bulwark: store degraded, deciding without Redis" prefix=p err=refused`,
		`level=INFO msg="bulwark: store back on Redis" prefix=p outage=3s`,
		`level=WARN msg="bulwark: breaker state changed" prefix=p breaker=b from=closed to=open degraded=false`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("%d lines, want 3:\n%s", n, out)
	}
}
