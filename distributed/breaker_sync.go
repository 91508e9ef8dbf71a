package distributed

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
)

// breakerChannel is the pub/sub channel of a store's breakers.
func breakerChannel(prefix string) string { return prefix + ":" + algBreaker + ":events" }

// applyLocked updates the cache from a reply (counts set) or a message,
// recv being the local time that matches the reply's now. A lower
// generation than the cached one is applied only from a reply whose
// request left after the cache last changed (the state was lost and
// started again); so is, within one open generation, an earlier open time
// than the cached one: a message about the open period a later ForceOpen
// replaced, delivered late, must not bring its deadline back, read
// against a later recv. Requires b.mu held.
func (b *Breaker) applyLocked(r breakerReply, recv time.Time, seq uint64, counts bool) {
	fresh := counts && seq == b.seq
	if b.known && r.gen < b.gen && !fresh {
		return
	}
	if b.known && r.gen == b.gen && r.state == b.state {
		if r.state == bulwark.Open && r.opened != b.openedAt && (r.opened > b.openedAt || fresh) {
			// reopened within its generation (ForceOpen on an open breaker)
			b.openedAt = r.opened
			b.openUntil = recv.Add(micros(r.until - r.now))
			b.seq++
		} else if r.state == bulwark.Open && counts && r.now == r.opened && b.s.clock != nil {
			// The reply to the request that opened the breaker, its message
			// applied first: with an injected clock the reply's deadline is
			// exact to the nanosecond, the message's to the microsecond.
			b.openUntil = recv.Add(micros(r.until - r.now))
		}
		if counts {
			b.fleet = fleetCounts{r.calls, r.failures, r.slow, r.consec}
		}
		return
	}
	from, wasKnown := b.state, b.known
	b.known = true
	b.state, b.gen, b.openedAt = r.state, r.gen, r.opened
	b.openUntil, b.retryAt = time.Time{}, time.Time{}
	if r.state == bulwark.Open {
		b.openUntil = recv.Add(micros(r.until - r.now))
	}
	b.fleet = fleetCounts{}
	if counts {
		b.fleet = fleetCounts{r.calls, r.failures, r.slow, r.consec}
	}
	b.batch = outcomeBatch{gen: r.gen}
	b.trials = b.trials[:0]
	b.seq++
	b.packed.Store(r.gen<<3 | 4 | uint64(r.state))
	if wasKnown && from != r.state && b.obs != nil {
		b.events.PushLocked(bulwark.Event{
			Kind: bulwark.EventBreakerTransition, Pattern: patternBreaker, Name: b.name, Time: recv, From: from, To: r.state,
		})
	}
}

// unlockAndEmit releases b.mu and emits the queued transition events; one
// goroutine at a time drains the queue, so observers see them in order. An
// observer's panic is recovered and counted (Store.ObserverPanics); later
// events are still delivered, and the goroutine (the breaker's own loop,
// the store's subscription or a caller's) goes on.
func (b *Breaker) unlockAndEmit() { b.events.UnlockAndEmit(&b.mu) }

// onMessage handles the store's broadcast for this breaker: a published
// transition, or a (re)established subscription.
func (b *Breaker) onMessage(m cluster.Message) {
	if m.Resync {
		b.needSync.Store(true)
		b.wake()
		return
	}
	r, ok := parseTransition(m.Payload)
	if !ok {
		return
	}
	// With an injected clock the script's time is the clock's, so the
	// message's now is a reading of this clock: reading the clock now,
	// after it may have moved since the message left, would push the
	// open deadline later than it is.
	var recv time.Time
	if b.s.clock != nil {
		recv = time.UnixMicro(r.now)
	} else {
		recv = b.now()
	}
	b.mu.Lock()
	b.applyLocked(r, recv, 0, false)
	b.unlockAndEmit()
}

// parseTransition decodes "state gen opened until now".
func parseTransition(p string) (breakerReply, bool) {
	var v [5]int64
	for i := range v {
		f, rest, _ := strings.Cut(p, " ")
		x, err := strconv.ParseInt(f, 10, 64)
		if err != nil || x < 0 {
			return breakerReply{}, false
		}
		v[i], p = x, rest
	}
	if p != "" || v[0] > 2 {
		return breakerReply{}, false
	}
	return breakerReply{state: bulwark.State(v[0]), gen: uint64(v[1]), opened: v[2], until: v[3], now: v[4]}, true
}

// breakerSet is what a store keeps of its breakers: the broadcast they
// share, and the breakers themselves, so Store.Close can close them.
type breakerSet struct {
	mu     sync.Mutex
	closed bool
	bc     *cluster.Broadcast
	all    map[*Breaker]struct{}
}

// add registers b, starting the store's broadcast with the first breaker
// when the client can subscribe.
func (bs *breakerSet) add(s *Store, b *Breaker) error {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.closed || s.closed.Load() {
		return ErrClosed
	}
	if bs.bc == nil {
		bc, err := cluster.NewBroadcast(s.client, breakerChannel(s.prefix))
		if err != nil {
			return err
		}
		bs.bc = bc
	}
	if bs.bc != nil {
		remove, err := bs.bc.Handle(b.topic, b.onMessage)
		if err != nil {
			return err
		}
		b.unhandle = remove
		b.channel = bs.bc.Channel()
	}
	if bs.all == nil {
		bs.all = make(map[*Breaker]struct{})
	}
	bs.all[b] = struct{}{}
	return nil
}

func (bs *breakerSet) remove(b *Breaker) {
	bs.mu.Lock()
	delete(bs.all, b)
	bs.mu.Unlock()
}

// close closes every breaker, then the broadcast.
func (bs *breakerSet) close() {
	bs.mu.Lock()
	bs.closed = true
	all := make([]*Breaker, 0, len(bs.all))
	for b := range bs.all {
		all = append(all, b)
	}
	bc := bs.bc
	bs.mu.Unlock()
	for _, b := range all {
		_ = b.Close()
	}
	if bc != nil {
		_ = bc.Close()
	}
}
