package local

import (
	"github.com/bulwark-go/bulwark"
	"github.com/bulwark-go/bulwark/internal/core"
)

// Option configures a pattern of this package. Options that do not apply to
// a pattern are ignored by it.
type Option func(*options)

type options struct {
	clock    bulwark.Clock
	maxKeys  int
	observer bulwark.Observer
	name     string
}

// DefaultMaxKeys is how many keys a keyed limiter holds at most unless
// WithMaxKeys says otherwise.
const DefaultMaxKeys = 1 << 20

// WithClock sets the clock (default bulwark.SystemClock). A clock that also
// implements bulwark.TimerClock drives the pattern's timers too.
func WithClock(c bulwark.Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}

// WithMaxKeys bounds how many keys a keyed limiter keeps state for (default
// DefaultMaxKeys). n < 1 is rejected by the constructor.
func WithMaxKeys(n int) Option { return func(o *options) { o.maxKeys = n } }

// WithObserver sets the observer that hears the pattern's events.
func WithObserver(obs bulwark.Observer) Option { return func(o *options) { o.observer = obs } }

// WithName names the pattern instance in its events (and so in metrics).
// Keep names few and fixed: they become metric labels.
func WithName(name string) Option { return func(o *options) { o.name = name } }

func buildOptions(opts []Option) (options, error) {
	o := options{clock: bulwark.SystemClock, maxKeys: DefaultMaxKeys}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	switch {
	case core.IsNil(o.clock):
		return o, core.ConfigError("clock is a nil %T", o.clock)
	case o.observer != nil && core.IsNil(o.observer):
		return o, core.ConfigError("observer is a nil %T", o.observer)
	}
	if o.maxKeys < 1 {
		return o, core.ConfigError("max keys must be at least 1, got %d", o.maxKeys)
	}
	return o, nil
}
