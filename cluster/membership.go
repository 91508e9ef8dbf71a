package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
	"github.com/bulwark-go/bulwark/internal/logs"
	"github.com/bulwark-go/bulwark/lua"
)

// Defaults of a [Membership].
const (
	// DefaultPrefix is the key prefix of the member set; use the prefix of
	// the store whose limits the members share.
	DefaultPrefix = "bulwark"
	// DefaultGroup names the member set within the prefix.
	DefaultGroup = "replicas"
	// DefaultTTL is how long a member stays in the set after its last
	// heartbeat.
	DefaultTTL = 3 * time.Second
	// DefaultTimeout bounds one heartbeat round trip.
	DefaultTimeout = 250 * time.Millisecond
)

// Option configures a [Membership].
type Option func(*config)

type config struct {
	prefix   string
	group    string
	id       string
	idSet    bool
	ttl      time.Duration
	interval time.Duration
	timeout  time.Duration
	clock    bulwark.Clock
	logger   *slog.Logger
}

// WithPrefix sets the key prefix (default [DefaultPrefix]): 1 to 128
// printable ASCII bytes without braces, spaces or glob characters.
func WithPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithGroup sets the group name (default [DefaultGroup]), so that services
// sharing a prefix can count their replicas apart; same rules as the
// prefix. The member set is the key "<prefix>:members:{<group>}".
func WithGroup(g string) Option { return func(c *config) { c.group = g } }

// WithID sets this replica's member id (default: 128 random bits in hex):
// 1 to 256 bytes (Join rejects an empty or longer one). Two live replicas
// with one id count once.
func WithID(id string) Option { return func(c *config) { c.id, c.idSet = id, true } }

// WithLogger makes the membership log to l (default: nothing is logged):
// Info "bulwark: replica count changed" (from, to) when the live count it
// sees changes, at most one line every 10s (a line written after a quiet
// spell reports the count since the last line, so the log always catches
// up), Warn "bulwark: membership heartbeat failing" (err) when heartbeats
// start failing and Info "bulwark: membership heartbeat back" (outage)
// when one succeeds again. An outage writes two lines, not one per
// heartbeat.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithTTL sets how long a member counts after its last heartbeat (default
// [DefaultTTL], at least 10ms). A replica that stops heartbeating (crashed,
// partitioned, paused) leaves the others' count within TTL plus their
// heartbeat interval.
func WithTTL(d time.Duration) Option { return func(c *config) { c.ttl = d } }

// WithHeartbeatInterval sets the time between two heartbeats (default a
// third of the TTL); it must be shorter than the TTL.
func WithHeartbeatInterval(d time.Duration) Option { return func(c *config) { c.interval = d } }

// WithTimeout bounds one heartbeat round trip (default [DefaultTimeout]).
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithClock sets the clock of heartbeats: their schedule, when it is a
// bulwark.TimerClock, and the time of expiry scores, which the script
// otherwise reads from Redis TIME (the default, so replicas with skewed
// clocks agree on who expired). For tests.
func WithClock(c bulwark.Clock) Option { return func(cfg *config) { cfg.clock = c } }

// Membership is this replica's entry in a group of replicas that share
// limits, kept in Redis: each member renews its entry in a sorted set
// scored by expiry (Redis time + TTL) every heartbeat interval; every
// heartbeat first removes the members whose entries expired, then returns
// the live count. The set itself expires one TTL after the last heartbeat.
//
// [Membership.Replicas] returns the count seen by the last successful
// heartbeat, without I/O, so it implements distributed.ReplicaCounter:
// while Redis is unreachable a degraded store keeps using the last count
// it knew. A failed heartbeat changes nothing; the next one tries again.
// Heartbeats go through the client on their own (idempotent script, client
// retries allowed), not through a store's call path, so they neither count
// towards a store's health nor wait for it.
//
// Safe for concurrent use. Build it with [Join]; [Membership.Close] stops
// its goroutine and leaves the group.
type Membership struct {
	client   redis.Scripter
	key      string
	id       string
	ttl      time.Duration
	interval time.Duration
	timeout  time.Duration
	clock    bulwark.Clock // nil: real timers, Redis TIME
	ttlArg   string

	count atomic.Int64

	log        *logs.Logger
	logged     int64     // the count the last line reported; loop only
	loggedAt   time.Time // when; loop only
	failing    bool      // heartbeats fail; loop only
	failingFor time.Time // since when; loop only

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// Join validates opts, then starts heartbeating in the background (the first
// heartbeat at once) and returns the membership. It does no I/O itself and
// does not fail when Redis is unreachable: Replicas reports 0 until a
// heartbeat succeeds. A nil client or a bad option returns an error
// wrapping bulwark.ErrInvalidConfig.
func Join(client redis.Scripter, opts ...Option) (*Membership, error) {
	if core.IsNil(client) {
		return nil, core.ConfigError("cluster membership needs a redis client, got %T(nil)", client)
	}
	cfg := config{prefix: DefaultPrefix, group: DefaultGroup, ttl: DefaultTTL, timeout: DefaultTimeout}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.interval == 0 {
		cfg.interval = cfg.ttl / 3
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.id == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		cfg.id = hex.EncodeToString(b[:])
	}
	m := &Membership{
		client:   client,
		key:      cfg.prefix + ":members:{" + cfg.group + "}",
		id:       cfg.id,
		ttl:      cfg.ttl,
		interval: cfg.interval,
		timeout:  cfg.timeout,
		clock:    cfg.clock,
		ttlArg:   strconv.FormatInt(cfg.ttl.Milliseconds(), 10),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		log:      logs.New(cfg.logger),
	}
	go m.loop()
	return m, nil
}

func (c *config) validate() error {
	if err := validName("prefix", c.prefix, 128); err != nil {
		return err
	}
	if err := validName("group", c.group, 128); err != nil {
		return err
	}
	switch {
	case c.idSet && (c.id == "" || len(c.id) > 256):
		return core.ConfigError("member id must be 1 to 256 bytes, got %d", len(c.id))
	case c.clock != nil && core.IsNil(c.clock):
		return core.ConfigError("membership clock is a nil %T", c.clock)
	case c.ttl < 10*time.Millisecond:
		return core.ConfigError("membership TTL must be at least 10ms, got %v", c.ttl)
	case c.interval <= 0 || c.interval >= c.ttl:
		return core.ConfigError("heartbeat interval must be positive and below the TTL %v, got %v", c.ttl, c.interval)
	case c.timeout <= 0:
		return core.ConfigError("heartbeat timeout must be positive, got %v", c.timeout)
	}
	return nil
}

func validName(what, s string, maxLen int) error {
	if s == "" || len(s) > maxLen {
		return core.ConfigError("membership %s must be 1 to %d bytes, got %d", what, maxLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("{}*?[]\\", c) >= 0 {
			return core.ConfigError("membership %s %q must be printable ASCII without braces, spaces or *?[]\\", what, s)
		}
	}
	return nil
}

// ID returns this replica's member id.
func (m *Membership) ID() string { return m.id }

// Key returns the Redis key of the member set.
func (m *Membership) Key() string { return m.key }

// Replicas returns the live member count seen by the last successful
// heartbeat (this replica included), or 0 before the first one. It does
// no I/O.
func (m *Membership) Replicas() int { return int(m.count.Load()) }

// Heartbeat renews this replica's entry now, prunes expired members and
// returns the live count, which Replicas reports from then on. The
// background loop calls it every heartbeat interval; call it directly to
// learn the count at once. It fails (leaving Replicas unchanged) when Redis
// does not answer within the timeout or ctx.
func (m *Membership) Heartbeat(ctx context.Context) (int, error) {
	n, err := m.eval(ctx, "1")
	if err != nil {
		return 0, err
	}
	m.count.Store(n)
	return int(n), nil
}

func (m *Membership) eval(ctx context.Context, op string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	now := ""
	if m.clock != nil {
		now = strconv.FormatInt(m.clock.Now().UnixMilli(), 10)
	}
	return lua.Membership.Run(ctx, m.client, []string{m.key}, now, m.ttlArg, m.id, op).Int64()
}

func (m *Membership) loop() {
	defer close(m.done)
	for {
		n, err := m.Heartbeat(context.Background())
		m.logHeartbeat(n, err)
		t := core.NewTimer(m.clock, m.interval)
		select {
		case <-m.stop:
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// logHeartbeat logs what changed with one heartbeat of the loop.
func (m *Membership) logHeartbeat(n int, err error) {
	if m.log == nil {
		return
	}
	now := time.Now()
	if m.clock != nil {
		now = m.clock.Now()
	}
	attrs := []any{slog.String("group", m.key), slog.String("id", m.id)}
	if err != nil {
		if !m.failing {
			m.failing, m.failingFor = true, now
			m.log.Log(slog.LevelWarn, "bulwark: membership heartbeat failing", append(attrs, slog.String("err", err.Error()))...)
		}
		return
	}
	if m.failing {
		m.failing = false
		m.log.Log(slog.LevelInfo, "bulwark: membership heartbeat back", append(attrs, slog.Duration("outage", now.Sub(m.failingFor)))...)
	}
	if int64(n) != m.logged && now.Sub(m.loggedAt) >= logs.Every {
		m.log.Log(slog.LevelInfo, "bulwark: replica count changed", append(attrs, slog.Int64("from", m.logged), slog.Int("to", n))...)
		m.logged, m.loggedAt = int64(n), now
	}
}

// Close stops the heartbeats and removes this replica from the group (one
// round trip, bounded by the timeout; when Redis is unreachable the entry
// expires within the TTL instead). It is idempotent and returns the error
// of the removal, if any.
func (m *Membership) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.stop)
		<-m.done
		_, err = m.eval(context.Background(), "0")
		m.count.Store(0)
	})
	return err
}
