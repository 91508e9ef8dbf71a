package bulwark

import (
	"context"
	"fmt"
	"time"
)

// Bulkhead caps how many calls run at once.
//
//	release, err := bh.Acquire(ctx)
//	if err != nil {
//		return err // errors.Is(err, bulwark.ErrBulkheadFull), or ctx's error
//	}
//	defer release()
type Bulkhead interface {
	// Acquire waits, up to the bulkhead's max wait or ctx, for a slot;
	// ErrBulkheadFull when none came. release must be called exactly once.
	Acquire(ctx context.Context) (release func(), err error)
}

// BulkheadConfig is the shape of a bulkhead.
type BulkheadConfig struct {
	MaxConcurrent int
	MaxWait       time.Duration // how long Acquire may wait for a slot (0: not at all)
	MaxWaiting    int           // how many may wait at once; more are rejected at once (0: no cap beyond MaxWait)
	LeaseTTL      time.Duration // distributed: an unrenewed lease expires after this
}

// DefaultLeaseTTL is the lease TTL used by distributed bulkheads when
// LeaseTTL is 0.
const DefaultLeaseTTL = 30 * time.Second

// Validate returns an error wrapping [ErrInvalidConfig] when MaxConcurrent
// is below 1 or MaxWait, MaxWaiting or LeaseTTL is negative. A LeaseTTL
// below 10ms (other than 0, the default) is rejected too: leases that short
// cannot be renewed in time over a network.
func (c BulkheadConfig) Validate() error {
	switch {
	case c.MaxConcurrent < 1:
		return configError("bulkhead max concurrent must be at least 1, got %d", c.MaxConcurrent)
	case c.MaxWait < 0:
		return configError("bulkhead max wait must not be negative, got %v", c.MaxWait)
	case c.MaxWaiting < 0:
		return configError("bulkhead max waiting must not be negative, got %d", c.MaxWaiting)
	case c.LeaseTTL < 0:
		return configError("bulkhead lease TTL must not be negative, got %v", c.LeaseTTL)
	case c.LeaseTTL > 0 && c.LeaseTTL < 10*time.Millisecond:
		return configError("bulkhead lease TTL must be at least 10ms, got %v", c.LeaseTTL)
	}
	return nil
}

// String summarises the configuration.
func (c BulkheadConfig) String() string {
	return fmt.Sprintf("bulkhead{max %d, wait %v, waiting %d, lease %v}", c.MaxConcurrent, c.MaxWait, c.MaxWaiting, c.LeaseTTL)
}
