package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/internal/eventq"
)

// Subscriber is the part of a go-redis v9 client a [Broadcast] uses.
// *redis.Client, *redis.ClusterClient, *redis.Ring and
// redis.UniversalClient all satisfy it.
type Subscriber interface {
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
}

// Publisher is the part of a go-redis v9 client [Publish] uses.
type Publisher interface {
	Publish(ctx context.Context, channel string, message any) *redis.IntCmd
}

// Defaults of a [Broadcast].
const (
	// DefaultPingInterval is how long a subscription may stay silent before
	// the broadcast pings Redis; a ping not answered within as long again
	// means the connection is lost, and the broadcast subscribes anew.
	DefaultPingInterval = time.Second
	// maxBackoff bounds the wait between two failed subscription attempts.
	maxBackoff = time.Second
	minBackoff = 10 * time.Millisecond
)

// Message is what a [Broadcast] hands to a topic's handler.
type Message struct {
	// Topic is the message's first word.
	Topic string
	// Payload is the rest of the message, after the space that ends the
	// topic ("" when there is none).
	Payload string
	// Resync is true, and Payload empty, when the subscription was just
	// established or re-established: messages published while it was down
	// are lost, so the handler should re-read the state it caches.
	Resync bool
}

// Handler receives the messages of one topic. It runs on the broadcast's
// single receiving goroutine, except for the first Resync of a handler
// registered while the subscription is live, which [Broadcast.Handle]
// delivers on its caller's goroutine. Handlers of one broadcast never run
// at once: each gets one message at a time, in order, so a handler must
// return quickly and must not call [Broadcast.Handle] or [Broadcast.Close].
type Handler func(Message)

// BroadcastOption configures a [Broadcast].
type BroadcastOption func(*Broadcast)

// WithPingInterval sets how long the subscription may stay silent before a
// health ping (default [DefaultPingInterval]). The broadcast notices a
// frozen or unreachable server within about twice this interval.
func WithPingInterval(d time.Duration) BroadcastOption { return func(b *Broadcast) { b.ping = d } }

// Broadcast is one subscription to one Redis pub/sub channel, shared by
// every handler of a process that listens on it, with messages dispatched
// to handlers by topic (see the package doc for the message format).
//
// One goroutine keeps the subscription alive: it subscribes, pings Redis
// when the channel is silent, subscribes again (with a growing back-off, up
// to a second) when the connection fails or stops answering, and tells
// every handler through a Resync message each time the subscription is
// confirmed. No message is queued or retried: pub/sub delivers at most once.
//
// A Broadcast is safe for concurrent use. Create one with [NewBroadcast]
// and stop it with [Broadcast.Close].
type Broadcast struct {
	client  Subscriber
	channel string
	ping    time.Duration

	handlers atomic.Pointer[map[string][]*entry] // copy on write, under mu

	// deliver serialises the calls of handlers; live is whether the
	// subscription is confirmed, so a handler registered while it is gets
	// its first Resync from Handle instead of from the confirmation.
	deliver sync.Mutex
	live    bool // under deliver
	guard   eventq.Guard

	mu     sync.Mutex
	ps     *redis.PubSub // current subscription, closed by Close
	closed bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

type entry struct{ h Handler }

// NewBroadcast subscribes to channel with client and starts the goroutine
// that receives its messages. It returns an error wrapping
// bulwark.ErrInvalidConfig for a nil client, an empty channel or a
// non-positive ping interval. It does not wait for the subscription: a
// handler learns that it is live from its first Resync message.
func NewBroadcast(client Subscriber, channel string, opts ...BroadcastOption) (*Broadcast, error) {
	if core.IsNil(client) {
		return nil, core.ConfigError("broadcast needs a redis client, got %T(nil)", client)
	}
	if channel == "" {
		return nil, core.ConfigError("broadcast channel must not be empty")
	}
	b := &Broadcast{client: client, channel: channel, ping: DefaultPingInterval, done: make(chan struct{})}
	for _, o := range opts {
		if o != nil {
			o(b)
		}
	}
	if b.ping <= 0 {
		return nil, core.ConfigError("broadcast ping interval must be positive, got %v", b.ping)
	}
	empty := map[string][]*entry{}
	b.handlers.Store(&empty)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	go b.run()
	return b, nil
}

// Channel returns the Redis channel the broadcast listens on.
func (b *Broadcast) Channel() string { return b.channel }

// Handle registers h for the messages of topic (one word, no space) and
// returns the function that removes it; calling that more than once is
// harmless. Several handlers may share a topic: each gets every message.
// Every handler also gets every Resync, starting with one when the
// subscription is live for it: from the confirmation of the subscription
// when h is registered before, or from Handle itself, before it returns,
// when the subscription is live already. A nil h or a topic with a space
// returns an error wrapping bulwark.ErrInvalidArgument.
func (b *Broadcast) Handle(topic string, h Handler) (remove func(), err error) {
	if h == nil || topic == "" || strings.IndexByte(topic, ' ') >= 0 {
		return nil, core.ArgumentError("broadcast topic must be one non-empty word and the handler not nil, got %q", topic)
	}
	e := &entry{h}
	// Registering under deliver orders this handler against a confirmation:
	// either the confirmation's resync sees it, or it sees live.
	b.deliver.Lock()
	defer b.deliver.Unlock()
	b.mu.Lock()
	old := *b.handlers.Load()
	next := make(map[string][]*entry, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[topic] = append(append([]*entry(nil), old[topic]...), e)
	b.handlers.Store(&next)
	b.mu.Unlock()
	if b.live {
		b.call(h, Message{Topic: topic, Resync: true})
	}
	var once sync.Once
	return func() { once.Do(func() { b.remove(topic, e) }) }, nil
}

func (b *Broadcast) remove(topic string, e *entry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.handlers.Load()
	next := make(map[string][]*entry, len(old))
	for k, v := range old {
		next[k] = v
	}
	var kept []*entry
	for _, x := range old[topic] {
		if x != e {
			kept = append(kept, x)
		}
	}
	if len(kept) == 0 {
		delete(next, topic)
	} else {
		next[topic] = kept
	}
	b.handlers.Store(&next)
}

// Close ends the subscription and waits for the receiving goroutine to
// return. It is idempotent and always returns nil. Handlers are not called
// once Close has returned.
func (b *Broadcast) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		b.cancel()
		if b.ps != nil {
			_ = b.ps.Close()
		}
	}
	b.mu.Unlock()
	<-b.done
	return nil
}

// run keeps a subscription alive until Close.
func (b *Broadcast) run() {
	defer close(b.done)
	backoff := minBackoff
	for {
		ps := b.client.Subscribe(b.ctx, b.channel)
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			_ = ps.Close()
			return
		}
		b.ps = ps
		b.mu.Unlock()

		confirmed := b.receive(ps)
		b.deliver.Lock()
		b.live = false
		b.deliver.Unlock()
		if confirmed {
			backoff = minBackoff
		}
		_ = ps.Close()

		t := time.NewTimer(backoff)
		select {
		case <-b.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// receive dispatches the messages of one subscription until its connection
// fails or stays silent past a ping, or Close. It reports whether the
// subscription was ever confirmed.
func (b *Broadcast) receive(ps *redis.PubSub) (confirmed bool) {
	pinged := false
	for {
		v, err := ps.ReceiveTimeout(b.ctx, b.ping)
		if b.ctx.Err() != nil {
			return confirmed
		}
		if err != nil {
			if !isTimeout(err) || pinged {
				return confirmed
			}
			// Silent for a whole interval: ask, and give up when the
			// answer does not come within the next one.
			pctx, cancel := context.WithTimeout(b.ctx, b.ping)
			perr := ps.Ping(pctx)
			cancel()
			if perr != nil {
				return confirmed
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := v.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == b.channel {
				confirmed = true
				b.resync()
			}
		case *redis.Message:
			if m.Channel == b.channel {
				b.dispatch(m.Payload)
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// dispatch hands one message to the handlers of its topic.
func (b *Broadcast) dispatch(msg string) {
	topic, payload, _ := strings.Cut(msg, " ")
	b.deliver.Lock()
	defer b.deliver.Unlock()
	for _, e := range (*b.handlers.Load())[topic] {
		b.call(e.h, Message{Topic: topic, Payload: payload})
	}
}

// call runs one handler, recovering its panic: a handler's bug must not
// kill the receiving goroutine (and the process), nor keep the other
// handlers from their messages.
func (b *Broadcast) call(h Handler, m Message) {
	defer b.guard.Recover("broadcast handler")
	h(m)
}

// HandlerPanics returns how many times a handler panicked. Each panic is
// recovered: the broadcast goes on delivering, to that handler too.
func (b *Broadcast) HandlerPanics() uint64 { return b.guard.Panics() }

// resync marks the subscription live and tells every handler that it is
// (again) live.
func (b *Broadcast) resync() {
	b.deliver.Lock()
	defer b.deliver.Unlock()
	b.live = true
	for topic, es := range *b.handlers.Load() {
		for _, e := range es {
			b.call(e.h, Message{Topic: topic, Resync: true})
		}
	}
}

// Publish sends "<topic> <payload>" on channel, the format a [Broadcast]
// dispatches. It returns an error wrapping bulwark.ErrInvalidArgument for a
// topic that is empty or holds a space, and Redis's error otherwise.
func Publish(ctx context.Context, client Publisher, channel, topic, payload string) error {
	if topic == "" || strings.IndexByte(topic, ' ') >= 0 {
		return core.ArgumentError("broadcast topic must be one non-empty word, got %q", topic)
	}
	return client.Publish(ctx, channel, topic+" "+payload).Err()
}
