package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// rowRE matches one row of the demo table: window, phase, the replicas'
// columns, global admitted/limit and an optional note.
var rowRE = regexp.MustCompile(`^\s*(\d+)\s+(redis up|redis away|redis back)\s+((?:\d+\s+\d+\s+\d+\s+)+)(\d+)/(\d+)\s*(.*)$`)

type demoRow struct {
	window        int
	phase         string
	replicas      [][3]int // admitted, denied, degraded
	global, limit int
	note          string
}

func parseDemo(t *testing.T, out string) []demoRow {
	t.Helper()
	var rows []demoRow
	for _, line := range strings.Split(out, "\n") {
		m := rowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r := demoRow{phase: m[2], note: m[6]}
		r.window, _ = strconv.Atoi(m[1])
		r.global, _ = strconv.Atoi(m[4])
		r.limit, _ = strconv.Atoi(m[5])
		f := strings.Fields(m[3])
		sum := 0
		for i := 0; i+2 < len(f); i += 3 {
			var c [3]int
			for j := range c {
				c[j], _ = strconv.Atoi(f[i+j])
			}
			sum += c[0]
			r.replicas = append(r.replicas, c)
		}
		if sum != r.global {
			t.Errorf("row %q: replicas admitted %d in all, global column says %d", line, sum, r.global)
		}
		rows = append(rows, r)
	}
	return rows
}

// checkDemo checks a demo's output: the table has every window, the global
// limit held in each window decided by Redis alone, Redis-away windows
// show degraded decisions, and the summary reports the limit held, the
// degraded phase and recovery.
func checkDemo(t *testing.T, out string, windows, replicas, limit int) {
	t.Helper()
	for _, want := range []string{
		"admitted/limit",
		"--- Redis taken away: each replica decides alone, with its fair share",
		"--- Redis back",
		"global limit held: yes (max ",
		"degraded phase: yes (",
		"recovery: yes (",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	rows := parseDemo(t, out)
	if len(rows) != windows {
		t.Fatalf("table has %d rows, want %d:\n%s", len(rows), windows, out)
	}
	phases := map[string]int{}
	for i, r := range rows {
		phases[r.phase]++
		if r.window != i+1 || len(r.replicas) != replicas || r.limit != limit {
			t.Errorf("row %d = %+v, want window %d, %d replicas, limit %d", i, r, i+1, replicas, limit)
		}
		degraded := 0
		for _, c := range r.replicas {
			degraded += c[2]
		}
		switch {
		case degraded == 0 && r.global > limit:
			t.Errorf("window %d decided by Redis admitted %d, over the limit %d", r.window, r.global, limit)
		case r.phase == "redis away" && degraded == 0:
			t.Errorf("window %d without Redis shows no degraded decision: %+v", r.window, r)
		case degraded > 0 && !strings.HasPrefix(r.note, "degraded"):
			t.Errorf("window %d has %d degraded decisions but note %q", r.window, degraded, r.note)
		}
		if r.phase == "redis away" && i > 0 && rows[i-1].phase == "redis away" {
			// A whole window without Redis: each replica keeps to its fair share.
			share := (limit + replicas - 1) / replicas
			for j, c := range r.replicas {
				if c[0] > share || c[2] != c[0]+c[1] {
					t.Errorf("window %d without Redis: replica-%d admitted %d (fair share %d), %d of %d decisions degraded",
						r.window, j+1, c[0], share, c[2], c[0]+c[1])
				}
			}
		}
	}
	for _, p := range []string{"redis up", "redis away", "redis back"} {
		if phases[p] != windows/3 && !(p == "redis back" && phases[p] == windows-2*(windows/3)) {
			t.Errorf("%d rows in phase %q, want about %d", phases[p], p, windows/3)
		}
	}
	// Recovery: after Redis came back, some window is decided by Redis
	// alone. (A single call may still time out on a loaded machine and be
	// decided locally, so the last window need not be spotless.)
	clean := false
	for _, r := range rows {
		if r.phase == "redis back" && r.note == "" {
			clean = true
		}
	}
	if !clean {
		t.Errorf("no window after Redis came back was decided by Redis alone: no recovery")
	}
}

// TestDemoShort runs the demo as CI does, on the embedded Redis.
func TestDemoShort(t *testing.T) {
	code, out, errOut := runCLI(t, "demo", "--short")
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s\nstdout:\n%s", code, errOut, out)
	}
	if !strings.Contains(out, "embedded Redis (miniredis)") {
		t.Errorf("output does not say it runs on the embedded Redis:\n%s", out)
	}
	checkDemo(t, out, 12, 3, 100)
	t.Log("\n" + out)
}

// TestDemoRealRedis runs the demo against a real Redis through --redis.
func TestDemoRealRedis(t *testing.T) {
	client := redistest.Default(t)
	addr := client.(*redis.Client).Options().Addr
	prefix := strings.TrimSuffix(redistest.Prefix(t, client), ":")
	code, out, errOut := runCLI(t, "demo", "--redis", "redis://"+addr, "--prefix", prefix,
		"--replicas", "2", "--limit", "40", "--load", "30", "--window", "100ms", "--duration", "900ms")
	if code != exitOK {
		t.Fatalf("exit code %d; stderr:\n%s\nstdout:\n%s", code, errOut, out)
	}
	if !strings.Contains(out, "Redis at "+addr) {
		t.Errorf("output does not name the Redis at %s:\n%s", addr, out)
	}
	checkDemo(t, out, 9, 2, 40)
}
