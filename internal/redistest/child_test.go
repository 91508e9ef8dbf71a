package redistest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// TestChild re-executes itself: the child writes a key to the server the
// parent started, proving it ran the named test with the extra environment.
func TestChild(t *testing.T) {
	if IsChild() {
		c := Default(t) // BULWARK_REDIS_ADDR from the parent
		if err := c.Set(context.Background(), os.Getenv("CHILD_KEY"), "from-child", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		fmt.Println("child done")
		return
	}
	s := StartServer(t)
	key := "child:" + randomHex(4)
	cmd := Child(t, t.Name(), EnvRedisAddr+"="+s.Addr(), "CHILD_KEY="+key)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "child done") {
		t.Fatalf("child output lacks its marker:\n%s", out.String())
	}
	if got := s.Do(t, "GET", key); got != "from-child" {
		t.Fatalf("GET %s = %v, want the child's write", key, got)
	}
	if IsChild() {
		t.Fatal("IsChild() is true in the parent")
	}
}

// TestChildKilledAtCleanup starts a child that would run forever and checks
// that the cleanup kills and reaps it.
func TestChildKilledAtCleanup(t *testing.T) {
	if IsChild() {
		_, _ = io.ReadAll(os.Stdin) // the parent never closes it: blocks until killed
		return
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	var pid int
	t.Run("inner", func(t *testing.T) {
		cmd := Child(t, "TestChildKilledAtCleanup")
		cmd.Stdin = r
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid = cmd.Process.Pid
	})
	if _, err := os.Stat("/proc/" + itoa(pid)); err == nil {
		t.Fatalf("child %d still exists after cleanup", pid)
	}
}

func TestChildSubtestPattern(t *testing.T) {
	cmd := Child(t, "TestA/b.c")
	if got, want := cmd.Args[1], `-test.run=^TestA$/^b\.c$`; got != want {
		t.Fatalf("run flag = %q, want %q", got, want)
	}
	if !strings.Contains(strings.Join(cmd.Env, "\n"), EnvChild+"=1") {
		t.Fatalf("%s=1 missing from the child's environment", EnvChild)
	}
}
