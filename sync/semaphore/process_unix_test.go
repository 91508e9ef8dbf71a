//go:build unix

package semaphore

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// A holder paused (SIGSTOP) past its lease TTL loses the lease: another
// process gets the slot with a larger fencing token, and when the paused
// holder resumes it is told (Lost) instead of carrying on, and its Release
// returns ErrLeaseLost without freeing the new holder's slot.
func TestPausedHolderLearnsItLostTheLease(t *testing.T) {
	const ttl = 500 * time.Millisecond
	if redistest.IsChild() {
		client, prefix := childClient(t)
		w, err := New(client, "pause", 1, WithPrefix(prefix), WithLeaseTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		l := mustAcquire(t, w, 1)
		fmt.Printf("HELD %s %d\n", l.ID(), l.Token())
		select {
		case <-l.Lost():
		case <-time.After(30 * time.Second):
			t.Fatal("lease never reported lost")
		}
		err = l.Release(ctxT(t, 5*time.Second))
		fmt.Printf("LOST release=%v errleaselost=%v\n", err != nil, errors.Is(err, ErrLeaseLost))
		return
	}
	e := newEnv(t)
	e.name = "pause"
	w := e.open(t, 1, WithLeaseTTL(ttl))
	cmd := redistest.Child(t, t.Name(), envAddr+"="+addrOf(t, e.client), envPrefix+"="+e.prefix)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(prefix string) string {
		t.Helper()
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("child exited before printing %q", prefix)
				}
				if rest, ok := strings.CutPrefix(line, prefix); ok {
					return rest
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("child did not print %q", prefix)
			}
		}
	}
	var childID string
	var childToken uint64
	if _, err := fmt.Sscanf(next("HELD "), "%s %d", &childID, &childToken); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	l := mustAcquire(t, w, 1) // granted once the paused holder's lease expired
	if l.Token() <= childToken {
		t.Errorf("token of the new holder: got %d, want above the paused holder's %d", l.Token(), childToken)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if got := next("LOST "); got != "release=true errleaselost=true" {
		t.Errorf("paused holder after resuming: got %q, want its Release to fail with ErrLeaseLost", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	holders, err := w.Holders(ctxT(t, 5*time.Second))
	if err != nil || len(holders) != 1 || holders[0].ID != l.ID() {
		t.Fatalf("Holders: got (%+v, %v), want only the new holder", holders, err)
	}
	mustRelease(t, l)
}
