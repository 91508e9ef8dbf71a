package leakcheck

import (
	"strings"
	"testing"
	"time"
)

func TestFindReportsAndClears(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		leakyWait(stop)
	}()
	err := Find(50 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "leakyWait") {
		t.Fatalf("Find with a goroutine running = %v; want an error naming leakyWait", err)
	}
	if err := Find(0, "github.com/bulwark-go/bulwark/internal/leakcheck.leakyWait"); err != nil {
		t.Fatalf("Find ignoring leakyWait = %v; want nil", err)
	}
	close(stop)
	<-done
	if err := Find(Grace); err != nil {
		t.Fatalf("Find after the goroutine ended = %v; want nil", err)
	}
}

func leakyWait(stop chan struct{}) { <-stop }
