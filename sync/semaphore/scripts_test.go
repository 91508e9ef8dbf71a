package semaphore

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// Each script documents its KEYS, ARGV and reply up front, reads the clock
// only through Redis TIME, does not call replicate_commands (effects
// replication is the default), uses no globals, and names keys only
// through KEYS.
func TestScriptHygiene(t *testing.T) {
	files, err := filepath.Glob("../../lua/semaphore_*.lua")
	if err != nil || len(files) != 4 {
		t.Fatalf("semaphore scripts: got %v (%v), want 4", files, err)
	}
	global := regexp.MustCompile(`(?m)^[a-z_]+\s*=`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src := string(b)
		lines := strings.SplitAfter(src, "\n")
		i := 0
		for i < len(lines) && strings.HasPrefix(lines[i], "--") {
			i++
		}
		head, body := strings.Join(lines[:i], ""), strings.Join(lines[i:], "")
		for _, want := range []string{"-- " + filepath.Base(f), "KEYS[1]", "ARGV[1]", "Reply"} {
			if !strings.Contains(head, want) {
				t.Errorf("%s: header comment lacks %q", f, want)
			}
		}
		writes := regexp.MustCompile(`'(SET|ZADD|HSET|HINCRBY|DEL|ZREM|PEXPIRE|PUBLISH|HDEL)'`).MatchString(src)
		if writes && strings.Contains(body, "replicate_commands") {
			t.Errorf("%s: calls redis.replicate_commands() (Redis 5.0+ replicates effects by default)", f)
		}
		// time_us() is the shared prelude's (lua/prelude.lua) read of Redis TIME.
		if !strings.Contains(body, "redis.call('TIME')") && !strings.Contains(body, "time_us()") {
			t.Errorf("%s: does not read Redis TIME", f)
		}
		if m := global.FindString(src); m != "" {
			t.Errorf("%s: assigns a global: %q", f, m)
		}
		if strings.Contains(body, "pcall") {
			t.Errorf("%s: uses pcall", f)
		}
		var keyLines []string
		for _, line := range strings.Split(body, "\n") {
			if strings.Contains(line, "KEYS[") {
				keyLines = append(keyLines, line)
			}
		}
		if len(keyLines) != 1 || !strings.HasPrefix(keyLines[0], "local ") {
			t.Errorf("%s: KEYS must be read in one line, into locals; got %q", f, keyLines)
		}
	}
}

// The scripts are reloaded after the server forgot them (SCRIPT FLUSH, as
// after a restart or failover): no NOSCRIPT reaches the caller.
func TestScriptFlush(t *testing.T) {
	srv := redistest.StartServer(t)
	client := srv.Client(t)
	prefix := redistest.Prefix(t, client)
	w, err := New(client, "flush", 2, WithPrefix(prefix), WithLeaseTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := ctxT(t, 10*time.Second)
	l := mustAcquire(t, w, 1)
	srv.Do(t, "SCRIPT", "FLUSH")
	if _, err := w.Holders(ctx); err != nil {
		t.Fatalf("Holders after SCRIPT FLUSH: %v", err)
	}
	srv.Do(t, "SCRIPT", "FLUSH")
	time.Sleep(time.Second) // real time: several keepalive renewals must run on a flushed cache
	select {
	case <-l.Lost():
		t.Fatalf("lease lost after SCRIPT FLUSH: %v", l.Err())
	default:
	}
	srv.Do(t, "SCRIPT", "FLUSH")
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release after SCRIPT FLUSH: %v", err)
	}
	srv.Do(t, "SCRIPT", "FLUSH")
	l2, ok, err := w.TryAcquire(ctx, 2)
	if !ok || err != nil {
		t.Fatalf("TryAcquire after SCRIPT FLUSH: got (%v, %v)", ok, err)
	}
	_ = l2.Release(context.Background())
}
