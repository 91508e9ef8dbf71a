package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/local"
	"github.com/bulwark-go/bulwark/telemetry"
)

// statsd is a telemetry.Backend writing DogStatsD lines (labels as tags)
// to w, one per measurement. Each series' line is formatted once, when the
// series is made; a measurement only writes it.
type statsd struct {
	mu      sync.Mutex // serialises writes to w
	w       io.Writer
	metrics map[telemetry.MetricID]telemetry.Metric
}

func (s *statsd) Define(m telemetry.Metric) error {
	s.metrics[m.ID] = m
	return nil
}

// tags renders the label values as DogStatsD tags.
func (s *statsd) tags(id telemetry.MetricID, values []string) string {
	m := s.metrics[id]
	tags := make([]string, len(values))
	for i, v := range values {
		tags[i] = m.Labels[i] + ":" + v
	}
	return "|#" + strings.Join(tags, ",") + "\n"
}

func (s *statsd) write(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.w.Write(b)
}

type statsdLine struct {
	s    *statsd
	line []byte
}

func (l *statsdLine) Inc() { l.s.write(l.line) }

func (s *statsd) Counter(id telemetry.MetricID, values []string) telemetry.Counter {
	return &statsdLine{s, []byte(s.metrics[id].Name + ":1|c" + s.tags(id, values))}
}

type statsdGauge struct {
	s          *statsd
	name, tags string
}

func (g *statsdGauge) Set(v float64) {
	g.s.write([]byte(g.name + ":" + strconv.FormatFloat(v, 'f', -1, 64) + "|g" + g.tags))
}
func (g *statsdGauge) Inc() { g.s.write([]byte(g.name + ":+1|g" + g.tags)) }
func (g *statsdGauge) Dec() { g.s.write([]byte(g.name + ":-1|g" + g.tags)) }

// Observe sends a duration in milliseconds, as StatsD timers want.
func (g *statsdGauge) Observe(seconds float64) {
	g.s.write([]byte(g.name + ":" + strconv.FormatFloat(seconds*1000, 'f', -1, 64) + "|ms" + g.tags))
}

func (s *statsd) Gauge(id telemetry.MetricID, values []string) telemetry.Gauge {
	return &statsdGauge{s, s.metrics[id].Name, s.tags(id, values)}
}

func (s *statsd) UpDown(id telemetry.MetricID, values []string) telemetry.UpDown {
	return &statsdGauge{s, s.metrics[id].Name, s.tags(id, values)}
}

func (s *statsd) Histogram(id telemetry.MetricID, values []string) telemetry.Histogram {
	return &statsdGauge{s, s.metrics[id].Name, s.tags(id, values)}
}

// A backend of your own plugs in through telemetry.Backend; here one that
// writes DogStatsD lines (to standard output instead of a UDP socket). The
// limiter's WithName becomes the name tag; the key it was asked about is
// never a tag.
func ExampleNew() {
	backend := &statsd{w: os.Stdout, metrics: map[telemetry.MetricID]telemetry.Metric{}}
	metrics, err := telemetry.New(backend)
	if err != nil {
		fmt.Println(err)
		return
	}
	lim, err := local.NewTokenBucket(bulwark.PerHour(2), local.WithName("api"), local.WithObserver(metrics))
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 3 {
		if _, err := lim.Allow(context.Background(), "user-42", 1); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output:
	// bulwark_decisions_total:1|c|#pattern:token_bucket,name:api,result:allowed,degraded:false
	// bulwark_decisions_total:1|c|#pattern:token_bucket,name:api,result:allowed,degraded:false
	// bulwark_decisions_near_limit_total:1|c|#pattern:token_bucket,name:api
	// bulwark_decisions_total:1|c|#pattern:token_bucket,name:api,result:denied,degraded:false
}
