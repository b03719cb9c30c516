package shardstore

import (
	"errors"
	"fmt"
	"time"
)

// DefaultMaxShardSize is the largest shard a store accepts unless
// WithMaxShardSize says otherwise: 64 MiB.
const DefaultMaxShardSize = 64 << 20

// hardMaxShardSize bounds WithMaxShardSize and metadata records.
const hardMaxShardSize = 1 << 30

// DefaultMaxLease is how far ahead a lease may reach unless WithMaxLease
// says otherwise.
const DefaultMaxLease = 400 * 24 * time.Hour

// DefaultReservationShare is the share of the free space one owner, or
// one source, may hold reserved by puts in flight unless
// WithReservationShare says otherwise: 1/8.
const DefaultReservationShare = 8

type config struct {
	share        int
	tier         int
	tierSet      bool
	quota        int64
	quotaSet     bool
	clock        Clock
	maxShardSize int64
	maxLease     time.Duration
}

// Option configures New.
type Option func(*config) error

// WithTier sets the shared space to tier t: TierBytes(t). It conflicts with
// WithQuotaBytes. The default is tier 0 (1 GiB).
func WithTier(t int) Option {
	return func(c *config) error {
		if t < 0 || t > MaxTier {
			return fmt.Errorf("tier %d outside [0, %d]", t, MaxTier)
		}
		if c.quotaSet {
			return errors.New("WithTier conflicts with WithQuotaBytes")
		}
		c.tier, c.tierSet = t, true
		return nil
	}
}

// WithQuotaBytes sets an exact quota in bytes instead of a tier. It exists
// for tests, which need quotas far smaller than a tier; a node offers tiers.
func WithQuotaBytes(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("quota %d bytes: must be positive", n)
		}
		if c.tierSet {
			return errors.New("WithQuotaBytes conflicts with WithTier")
		}
		c.quota, c.quotaSet = n, true
		return nil
	}
}

// WithClock sets the clock used for leases and stored-at times. The
// default is time.Now.
func WithClock(clock Clock) Option {
	return func(c *config) error {
		if clock == nil {
			return errors.New("nil clock")
		}
		c.clock = clock
		return nil
	}
}

// WithMaxShardSize sets the largest shard accepted (default 64 MiB).
func WithMaxShardSize(n int64) Option {
	return func(c *config) error {
		if n <= 0 || n > hardMaxShardSize {
			return fmt.Errorf("max shard size %d outside (0, %d]", n, hardMaxShardSize)
		}
		c.maxShardSize = n
		return nil
	}
}

// WithReservationShare caps the bytes that the puts in flight of one
// owner, and of one source (ContextWithSource), may hold reserved: at most
// 1/n of the free space when a put is admitted, but always at least
// one shard of the largest size accepted (default n = 8). A put beyond
// the cap fails with ErrBusy before its body is read.
func WithReservationShare(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("reservation share 1/%d: must be positive", n)
		}
		c.share = n
		return nil
	}
}

// WithMaxLease sets how far after now a lease may reach (default 400 days).
func WithMaxLease(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("max lease %v: must be positive", d)
		}
		c.maxLease = d
		return nil
	}
}
