package cluster_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/cluster"
	"github.com/bulwark-go/bulwark/internal/redistest"
)

// inbox collects the messages a handler receives.
type inbox struct {
	mu   sync.Mutex
	msgs []cluster.Message
	ch   chan struct{}
}

func newInbox() *inbox { return &inbox{ch: make(chan struct{}, 1000)} }

func (in *inbox) handle(m cluster.Message) {
	in.mu.Lock()
	in.msgs = append(in.msgs, m)
	in.mu.Unlock()
	in.ch <- struct{}{}
}

// wait waits for the next message (not a timing assertion: the bound only
// keeps a broken test from hanging).
func (in *inbox) wait(tb testing.TB) cluster.Message {
	tb.Helper()
	select {
	case <-in.ch:
	case <-time.After(10 * time.Second):
		tb.Fatal("no message")
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.msgs[len(in.msgs)-1]
}

func (in *inbox) waitResync(tb testing.TB) {
	tb.Helper()
	if m := in.wait(tb); !m.Resync {
		tb.Fatalf("got %+v, want a resync", m)
	}
}

func TestBroadcastRejectsBadInput(t *testing.T) {
	c := redistest.Default(t)
	if _, err := cluster.NewBroadcast(nil, "ch"); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("nil client: %v", err)
	}
	if _, err := cluster.NewBroadcast(c, ""); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("empty channel: %v", err)
	}
	if _, err := cluster.NewBroadcast(c, "ch", cluster.WithPingInterval(0)); !errors.Is(err, bulwark.ErrInvalidConfig) {
		t.Errorf("zero ping: %v", err)
	}
	bc, err := cluster.NewBroadcast(c, "ch")
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	for _, topic := range []string{"", "two words"} {
		if _, err := bc.Handle(topic, func(cluster.Message) {}); !errors.Is(err, bulwark.ErrInvalidArgument) {
			t.Errorf("topic %q: %v", topic, err)
		}
		if err := cluster.Publish(context.Background(), c, "ch", topic, "x"); !errors.Is(err, bulwark.ErrInvalidArgument) {
			t.Errorf("publish topic %q: %v", topic, err)
		}
	}
	if _, err := bc.Handle("t", nil); !errors.Is(err, bulwark.ErrInvalidArgument) {
		t.Errorf("nil handler: %v", err)
	}
}

// TestBroadcastDispatch: messages reach the handlers of their topic only,
// from Go publishers and from Lua scripts alike; removed handlers hear
// nothing more.
func TestBroadcastDispatch(t *testing.T) {
	c := redistest.Default(t)
	channel := redistest.Prefix(t, c) + "events"
	bc, err := cluster.NewBroadcast(c, channel)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	a, b, b2 := newInbox(), newInbox(), newInbox()
	if _, err := bc.Handle("a", a.handle); err != nil {
		t.Fatal(err)
	}
	removeB, _ := bc.Handle("b", b.handle)
	if _, err := bc.Handle("b", b2.handle); err != nil {
		t.Fatal(err)
	}
	a.waitResync(t)
	b.waitResync(t)
	b2.waitResync(t)
	ctx := context.Background()
	if err := cluster.Publish(ctx, c, channel, "a", "hello world"); err != nil {
		t.Fatal(err)
	}
	if m := a.wait(t); m.Topic != "a" || m.Payload != "hello world" || m.Resync {
		t.Errorf("a got %+v", m)
	}
	if err := c.Eval(ctx, "redis.call('PUBLISH', ARGV[1], 'b 1 2 3') return 1", nil, channel).Err(); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*inbox{b, b2} {
		if m := in.wait(t); m.Topic != "b" || m.Payload != "1 2 3" {
			t.Errorf("b got %+v", m)
		}
	}
	removeB()
	removeB()
	if err := cluster.Publish(ctx, c, channel, "b", "again"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Publish(ctx, c, channel, "nobody", "x"); err != nil {
		t.Fatal(err)
	}
	if m := b2.wait(t); m.Payload != "again" {
		t.Errorf("b2 got %+v", m)
	}
	if err := cluster.Publish(ctx, c, channel, "a", ""); err != nil {
		t.Fatal(err)
	}
	if m := a.wait(t); m.Payload != "" || m.Resync {
		t.Errorf("a got %+v", m)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.msgs) != 2 {
		t.Errorf("removed handler got %d messages, want 2 (resync, one message): %+v", len(b.msgs), b.msgs)
	}
}

// TestBroadcastHandleWhenLive: a handler registered after the subscription
// was confirmed still gets its first Resync, before Handle returns, and
// then the messages of its topic; one registered before gets exactly one.
func TestBroadcastHandleWhenLive(t *testing.T) {
	c := redistest.Default(t)
	channel := redistest.Prefix(t, c) + "events"
	bc, err := cluster.NewBroadcast(c, channel)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	early := newInbox()
	if _, err := bc.Handle("t", early.handle); err != nil {
		t.Fatal(err)
	}
	early.waitResync(t) // the subscription is live from here on
	late := newInbox()
	if _, err := bc.Handle("t", late.handle); err != nil {
		t.Fatal(err)
	}
	select {
	case <-late.ch:
	default:
		t.Fatal("a handler registered while the subscription is live got no resync from Handle")
	}
	if err := cluster.Publish(context.Background(), c, channel, "t", "hello"); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*inbox{early, late} {
		if m := in.wait(t); m.Payload != "hello" || m.Resync {
			t.Errorf("got %+v, want the message", m)
		}
		in.mu.Lock()
		if len(in.msgs) != 2 || !in.msgs[0].Resync {
			t.Errorf("got %+v, want one resync, then the message", in.msgs)
		}
		in.mu.Unlock()
	}
}

// TestBroadcastResubscribes: after Redis restarts, and after it was frozen,
// the broadcast subscribes again, tells every handler to resync, and
// delivers messages again.
func TestBroadcastResubscribes(t *testing.T) {
	srv := redistest.StartServer(t)
	c := srv.Client(t, func(o *redis.Options) { o.ContextTimeoutEnabled = true })
	bc, err := cluster.NewBroadcast(c, "events", cluster.WithPingInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	in := newInbox()
	if _, err := bc.Handle("t", in.handle); err != nil {
		t.Fatal(err)
	}
	in.waitResync(t)
	ctx := context.Background()
	srv.Kill()
	srv.Restart()
	in.waitResync(t)
	if err := cluster.Publish(ctx, c, "events", "t", "after restart"); err != nil {
		t.Fatal(err)
	}
	if m := in.wait(t); m.Payload != "after restart" {
		t.Errorf("got %+v", m)
	}
	srv.Pause()
	time.Sleep(500 * time.Millisecond) // the fault lasts five ping intervals
	srv.Resume()
	in.waitResync(t)
	if err := cluster.Publish(ctx, c, "events", "t", "after freeze"); err != nil {
		t.Fatal(err)
	}
	if m := in.wait(t); m.Payload != "after freeze" {
		t.Errorf("got %+v", m)
	}
}

// TestBroadcastCloseWhileDown: Close returns promptly even while the
// broadcast is retrying a dead server.
func TestBroadcastCloseWhileDown(t *testing.T) {
	srv := redistest.StartServer(t)
	c := srv.Client(t)
	bc, err := cluster.NewBroadcast(c, "events")
	if err != nil {
		t.Fatal(err)
	}
	in := newInbox()
	if _, err := bc.Handle("t", in.handle); err != nil {
		t.Fatal(err)
	}
	in.waitResync(t)
	srv.Kill()
	_ = bc.Close()
	_ = bc.Close()
}

// TestBroadcastHandlerPanicRecovered: a handler that panics on every
// message, on the receiving goroutine, is recovered and counted; the
// process survives and later messages still reach it and the others.
func TestBroadcastHandlerPanicRecovered(t *testing.T) {
	c := redistest.Default(t)
	channel := redistest.Prefix(t, c) + "events"
	bc, err := cluster.NewBroadcast(c, channel)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	var got atomic.Int64
	if _, err := bc.Handle("t", func(m cluster.Message) {
		if !m.Resync {
			got.Add(1)
		}
		panic("handler bug")
	}); err != nil {
		t.Fatal(err)
	}
	other := newInbox()
	if _, err := bc.Handle("t", other.handle); err != nil {
		t.Fatal(err)
	}
	other.waitResync(t)
	ctx := context.Background()
	for i := range 3 {
		if err := cluster.Publish(ctx, c, channel, "t", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if m := other.wait(t); m.Payload != strconv.Itoa(i) {
			t.Fatalf("message %d: payload %q", i, m.Payload)
		}
	}
	if got.Load() != 3 {
		t.Fatalf("the panicking handler heard %d messages, want 3", got.Load())
	}
	if p := bc.HandlerPanics(); p < 4 { // 3 messages and at least one Resync
		t.Fatalf("HandlerPanics() = %d, want at least 4", p)
	}
}
