package semaphore

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwark-go/bulwark"
)

// Lease is a grant of slots of a [Weighted]. It stays held until Release,
// renewed in the background; if renewal fails it is lost (see Lost). A
// Lease is safe for concurrent use.
type Lease struct {
	w        *Weighted
	id       string
	n        int64
	token    uint64
	acquired time.Time
	lost     chan struct{}

	// Guarded by w.mu.
	deadline  time.Time // local time by which the lease has surely expired unless renewed
	isLost    bool
	lostErr   error
	releasing bool // a Release call is running or has finished
	released  bool // a Release call has finished (freed or found gone)
}

// ID returns the lease id: 128 random bits (crypto/rand) as 32 lowercase
// hex digits. Only this lease's holder knows it, so no other process can
// release or renew the lease by guessing.
func (l *Lease) ID() string { return l.id }

// Weight returns the number of slots the lease holds.
func (l *Lease) Weight() int64 { return l.n }

// Token returns the lease's fencing token. Tokens are issued in the same
// script that grants the lease, and each is larger than every token the
// semaphore issued before it, across all processes; they are at least the
// Redis time in microseconds at the grant, so they keep growing even after
// the counter key expired or Redis restarted empty (as long as the Redis
// clock does not step back). Only their order is meaningful. Pass the token
// to the protected resource and have it reject tokens lower than the highest
// it has seen: that stops a holder that lost its lease (a long pause, a
// partition) from acting after a newer holder did. Tokens can repeat or go
// back after a Redis failover that loses writes.
func (l *Lease) Token() uint64 { return l.token }

// Lost returns a channel closed when the lease is lost while held: a renewal
// found it gone (expired, reclaimed, deleted, or released with ReleaseID),
// renewal kept failing until the lease's expiry passed, or the Weighted was
// closed. It is also closed when Release finds the lease already gone. It
// stays open after a successful Release.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err returns why the lease was lost (an error wrapping ErrLeaseLost), or
// nil while it is not.
func (l *Lease) Err() error {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.lostErr
}

// markLostLocked closes Lost once. Requires w.mu held.
func (l *Lease) markLostLocked(err error) {
	if l.isLost {
		return
	}
	l.isLost = true
	l.lostErr = err
	close(l.lost)
}

// Release gives the slots back and wakes waiters. It returns nil when the
// lease was held; an error wrapping ErrLeaseLost when it was not (it
// expired, was reclaimed, or released before: a second Release, or one
// racing with the first, returns this error without calling Redis), and then
// changes nothing in Redis; or the
// Redis error of a failed call, in which case the lease is no longer renewed
// and expires after its TTL, and Release may be called again. A lease is
// never freed twice: the script frees only a live lease with this id.
// Release works after the Weighted was closed.
func (l *Lease) Release(ctx context.Context) error {
	w := l.w
	w.mu.Lock()
	if l.releasing {
		w.mu.Unlock()
		return fmt.Errorf("%w: lease %s was already released", ErrLeaseLost, l.id)
	}
	l.releasing = true
	delete(w.leases, l) // stop renewing
	w.mu.Unlock()

	r, err := w.callRelease(ctx, l.id, l.n)
	if err != nil {
		w.mu.Lock()
		l.releasing = false // may be retried
		w.mu.Unlock()
		return err
	}
	w.mu.Lock()
	l.released = true
	if !r.released {
		err = fmt.Errorf("%w: lease %s is not held (expired or reclaimed)", ErrLeaseLost, l.id)
		l.markLostLocked(err)
	}
	w.mu.Unlock()
	if err != nil {
		return err
	}
	w.wakeAfter(0) // local waiters need not wait for the published message
	w.emit(bulwark.EventBulkheadReleased, w.clock.Now().Sub(l.acquired), nil)
	return nil
}
