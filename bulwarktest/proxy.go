package bulwarktest

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/redistest"
)

// Fault is what a Proxy does to the traffic it forwards. The zero value is
// Heal: no fault.
type Fault struct {
	kind    faultKind
	latency time.Duration
}

type faultKind int

const (
	kindHeal faultKind = iota
	kindCut
	kindFreeze
	kindSlow
	kindDrop
)

// The faults a Proxy can inject; Slow makes the fourth.
var (
	// Heal forwards everything as it comes: no fault.
	Heal = Fault{}
	// Cut resets every live connection and every new one as soon as it is
	// accepted: to a client, Redis has crashed or its host is gone
	// (connection reset / refused at once).
	Cut = Fault{kind: kindCut}
	// Freeze accepts connections and reads from them but forwards and
	// answers nothing, on live and new connections: a client waits for its
	// own timeout, as with a network that silently drops packets. Bytes
	// read while frozen are lost; connections accepted while frozen never
	// reach Redis, even after Heal.
	Freeze = Fault{kind: kindFreeze}
	// DropReplies forwards requests but discards Redis's replies: commands
	// run, the client never hears about them (and may run them twice).
	DropReplies = Fault{kind: kindDrop}
)

// Slow delays every chunk of bytes by d in each direction, so a command
// takes at least 2*d longer. Slow(0) is Heal.
func Slow(d time.Duration) Fault {
	if d <= 0 {
		return Heal
	}
	return Fault{kind: kindSlow, latency: d}
}

// String returns "heal", "cut", "freeze", "drop-replies" or "slow(D)".
func (f Fault) String() string {
	switch f.kind {
	case kindCut:
		return "cut"
	case kindFreeze:
		return "freeze"
	case kindDrop:
		return "drop-replies"
	case kindSlow:
		return fmt.Sprintf("slow(%v)", f.latency)
	}
	return "heal"
}

// Proxy is a TCP proxy between clients and one Redis server that injects
// one Fault at a time into the traffic, on command (Apply and its
// shorthands) or on a timetable (Schedule). A new fault replaces the one
// before; every change applies at once to live and new connections. A
// Proxy is safe for concurrent use and is closed at the cleanup of the test
// that created it, leaving no goroutine behind.
type Proxy struct {
	p *redistest.Proxy

	mu     sync.Mutex
	fault  Fault
	events []Event
}

// Event is one fault change: the fault and when it took effect.
type Event struct {
	At    time.Time
	Fault Fault
}

// NewProxy starts a proxy on a free 127.0.0.1 port forwarding to upstream
// ("host:port"), without a fault, closed at the test's cleanup.
func NewProxy(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	return &Proxy{p: redistest.NewProxy(tb, upstream)}
}

// Addr returns the address clients should dial, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.p.Addr() }

// Upstream returns the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.p.Upstream() }

// Client returns a go-redis client that connects through the proxy, with
// go-redis defaults changed by opts, closed at the test's cleanup.
func (p *Proxy) Client(tb testing.TB, opts ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	return p.p.Client(tb, opts...)
}

// Conns returns the number of live proxied connections.
func (p *Proxy) Conns() int { return p.p.Conns() }

// DroppedReplies returns how many reads of Redis's replies DropReplies has
// discarded so far.
func (p *Proxy) DroppedReplies() int64 { return p.p.DroppedReplies() }

// Fault returns the fault in effect.
func (p *Proxy) Fault() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// Events returns every fault change so far, oldest first.
func (p *Proxy) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Event(nil), p.events...)
}

// Apply puts f in effect, replacing the fault before, and returns the time
// it took effect: an answer that starts after that time sees the fault.
func (p *Proxy) Apply(f Fault) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Clear the old fault's switches that the new one does not use, then
	// set the new ones; Cut also resets what is connected now.
	x := p.p
	x.Refuse(f.kind == kindCut)
	x.Blackhole(f.kind == kindFreeze)
	x.DropReplies(f.kind == kindDrop)
	x.SetLatency(f.latency)
	if f.kind == kindCut {
		x.CutAll()
	}
	p.fault = f
	at := time.Now()
	p.events = append(p.events, Event{At: at, Fault: f})
	return at
}

// Cut is Apply(Cut).
func (p *Proxy) Cut() time.Time { return p.Apply(Cut) }

// Freeze is Apply(Freeze).
func (p *Proxy) Freeze() time.Time { return p.Apply(Freeze) }

// Slow is Apply(Slow(d)).
func (p *Proxy) Slow(d time.Duration) time.Time { return p.Apply(Slow(d)) }

// DropReplies is Apply(DropReplies).
func (p *Proxy) DropReplies() time.Time { return p.Apply(DropReplies) }

// Heal is Apply(Heal).
func (p *Proxy) Heal() time.Time { return p.Apply(Heal) }

// Step is one entry of a fault timetable: Fault takes effect After this
// long from the start of the Schedule.
type Step struct {
	After time.Duration
	Fault Fault
}

// At returns Step{After: after, Fault: f}.
func At(after time.Duration, f Fault) Step { return Step{After: after, Fault: f} }

// Schedule is a fault timetable running on a goroutine of its own.
type Schedule struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	applied []Event
}

// Schedule applies each step's fault when its time comes, counted from
// now, in the order of After (steps with equal After in the order given).
// It runs until the last step or Stop; the test's cleanup stops it. A
// typical timetable cuts Redis for a second after a warm-up:
//
//	s := proxy.Schedule(t, bulwarktest.At(500*time.Millisecond, bulwarktest.Cut),
//		bulwarktest.At(1500*time.Millisecond, bulwarktest.Heal))
//	s.Wait()
func (p *Proxy) Schedule(tb testing.TB, steps ...Step) *Schedule {
	tb.Helper()
	sorted := append([]Step(nil), steps...)
	for i := 1; i < len(sorted); i++ { // insertion sort: stable, steps are few
		for j := i; j > 0 && sorted[j].After < sorted[j-1].After; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Schedule{cancel: cancel, done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(s.done)
		timer := time.NewTimer(0)
		defer timer.Stop()
		<-timer.C
		for _, st := range sorted {
			if wait := time.Until(start.Add(st.After)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			at := p.Apply(st.Fault)
			s.mu.Lock()
			s.applied = append(s.applied, Event{At: at, Fault: st.Fault})
			s.mu.Unlock()
		}
	}()
	tb.Cleanup(s.Stop)
	return s
}

// Done is closed when the schedule has applied its last step or was
// stopped.
func (s *Schedule) Done() <-chan struct{} { return s.done }

// Wait blocks until Done.
func (s *Schedule) Wait() { <-s.done }

// Stop ends the schedule without applying the steps left (the fault in
// effect stays) and waits for its goroutine. It is idempotent.
func (s *Schedule) Stop() {
	s.cancel()
	<-s.done
}

// Applied returns the steps applied so far, with the time each took effect.
func (s *Schedule) Applied() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.applied...)
}

// ViaProxies is a cluster client option (Cluster.Client) that routes the
// connections to each proxied node through its proxy. Nodes announce their
// own addresses, so a client seeded with proxy addresses would leave the
// proxies behind after its first topology load; this dialer does not.
func ViaProxies(proxies ...*Proxy) func(*redis.ClusterOptions) {
	via := make(map[string]string, len(proxies))
	for _, p := range proxies {
		via[p.Upstream()] = p.Addr()
	}
	var d net.Dialer
	return func(o *redis.ClusterOptions) {
		o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if a, ok := via[addr]; ok {
				addr = a
			}
			return d.DialContext(ctx, network, addr)
		}
	}
}
