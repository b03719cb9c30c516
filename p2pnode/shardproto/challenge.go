package shardproto

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults of the limits on salted-hash challenges (WithChallengeInterval,
// WithChallengeBudget, WithMaxChallenges). A challenge makes the holder
// read and hash a whole shard for a request of about 200 bytes, so it is
// served only to the shard's owners, rarely, and within a byte budget per
// requester; leaf proofs (msgProof), which read at most MaxProofLeaves
// leaves, are the frequent audit.
const (
	// DefaultChallengeInterval: an owner may challenge one shard once in
	// this period (the original design's "at most once per 30 days").
	DefaultChallengeInterval = 30 * 24 * time.Hour
	// DefaultChallengeBurst and DefaultChallengeRate: the shard bytes one
	// address (or one peer without an IP address) may have hashed at once,
	// and how fast that budget refills.
	DefaultChallengeBurst = shardstore.DefaultMaxShardSize
	DefaultChallengeRate  = DefaultMinRate
	// DefaultMaxChallenges: challenges hashed at once, over all requesters.
	DefaultMaxChallenges = 2
)

// Bounds of the challenge limiter's memory.
const (
	// challengeRecords caps the (owner, shard) pairs remembered with the
	// time of their last challenge; beyond it the oldest is forgotten.
	challengeRecords = 16384
	// challengeBudgets caps the requesters whose budget is not full; a
	// new requester beyond it is refused until budgets refill.
	challengeBudgets = 4096
)

type challengeLimits struct {
	interval    time.Duration
	burst, rate int64 // bytes, bytes per second
	concurrent  int
	records     int
	budgets     int
}

func defaultChallengeLimits() challengeLimits {
	return challengeLimits{
		interval:   DefaultChallengeInterval,
		burst:      DefaultChallengeBurst,
		rate:       DefaultChallengeRate,
		concurrent: DefaultMaxChallenges,
		records:    challengeRecords,
		budgets:    challengeBudgets,
	}
}

// WithChallengeInterval sets how often one owner may challenge one shard
// (default 30 days). A challenge asked sooner is answered TooSoon.
func WithChallengeInterval(d time.Duration) Option {
	return func(cfg *serviceConfig) error {
		if d <= 0 {
			return fmt.Errorf("challenge interval %v: must be positive", d)
		}
		cfg.challenges.interval = d
		return nil
	}
}

// WithChallengeBudget sets the shard bytes one requester may have hashed
// by challenges: at most burst at once, refilling at bytesPerSec
// (defaults 64 MiB and 256 KiB/s). A requester is an address (an IPv4
// address, an IPv6 /56), or a peer whose connection has no IP address.
// burst must hold the largest shard the service accepts. A challenge
// beyond the budget is answered Busy.
func WithChallengeBudget(burst, bytesPerSec int64) Option {
	return func(cfg *serviceConfig) error {
		if burst <= 0 || bytesPerSec <= 0 {
			return fmt.Errorf("challenge budget %d bytes, %d B/s: must be positive", burst, bytesPerSec)
		}
		cfg.challenges.burst, cfg.challenges.rate = burst, bytesPerSec
		return nil
	}
}

// WithMaxChallenges sets how many challenges the holder hashes at once
// (default 2); more are answered Busy.
func WithMaxChallenges(n int) Option {
	return func(cfg *serviceConfig) error {
		if n <= 0 {
			return fmt.Errorf("max challenges %d: must be positive", n)
		}
		cfg.challenges.concurrent = n
		return nil
	}
}

// challengeKey names one owner's challenges of one shard.
type challengeKey struct {
	owner shardstore.Owner
	id    codec.ShardID
}

// requester is who a challenge budget belongs to: an address group, or a
// peer whose connection has none.
type requester struct {
	addr netip.Prefix
	peer peer.ID
}

func requesterOf(p peer.ID, addr netip.Prefix) requester {
	if addr.IsValid() {
		return requester{addr: addr}
	}
	return requester{peer: p}
}

// budget is a requester's token bucket of shard bytes.
type budget struct {
	tokens int64
	at     time.Time
}

// challenger decides which challenges the holder serves. Its rules, in
// order: an owner challenges a shard at most once per interval (ErrTooSoon,
// remembered for the last records pairs); at most concurrent challenges
// are hashed at once; a requester's hashed bytes stay within its budget
// (both ErrBusy). A challenge is charged when admitted, whatever its
// outcome. Transport-free; the service calls it with the verified owner
// and the stream's peer and address.
type challenger struct {
	lim challengeLimits

	mu      sync.Mutex
	last    map[challengeKey]time.Time
	order   []challengeRecord // last's entries in the order they were set
	budgets map[requester]*budget
	running int
	stats   challengeStats
}

type challengeRecord struct {
	key challengeKey
	at  time.Time
}

// challengeStats counts the challenges a service admitted and refused.
type challengeStats struct {
	Admitted    int   // served (hashed)
	TooSoon     int   // the owner challenged the shard within the interval
	Busy        int   // over the requester's budget, or too many at once
	HashedBytes int64 // shard bytes admitted challenges read
	PeakRunning int   // most challenges hashed at once
}

func newChallenger(lim challengeLimits) *challenger {
	return &challenger{lim: lim, last: make(map[challengeKey]time.Time), budgets: make(map[requester]*budget)}
}

// admit decides whether owner may have shard id of size bytes hashed now,
// on behalf of who. On success the caller must call release once the
// hashing ended.
func (c *challenger) admit(owner shardstore.Owner, id codec.ShardID, size int64, who requester, now time.Time) (release func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forget(now)
	key := challengeKey{owner, id}
	if at, ok := c.last[key]; ok {
		if now.Sub(at) < c.lim.interval {
			c.stats.TooSoon++
			return nil, fmt.Errorf("%w: shard %s challenged by this owner at %v; next at %v", ErrTooSoon, id.Short(), at.UTC(), at.Add(c.lim.interval).UTC())
		}
		// Expired but not yet forgotten: a clock that went back put a
		// younger record ahead of it.
		delete(c.last, key)
	}
	if c.running >= c.lim.concurrent {
		c.stats.Busy++
		return nil, fmt.Errorf("%w: %d challenges being hashed", ErrBusy, c.running)
	}
	b := c.budgets[who]
	if b == nil {
		if len(c.budgets) >= c.lim.budgets {
			c.pruneBudgets(now)
		}
		if len(c.budgets) >= c.lim.budgets {
			c.stats.Busy++
			return nil, fmt.Errorf("%w: %d requesters' challenge budgets in use", ErrBusy, len(c.budgets))
		}
		b = &budget{tokens: c.lim.burst, at: now}
		c.budgets[who] = b
	}
	c.refill(b, now)
	if b.tokens < size {
		c.stats.Busy++
		wait := time.Duration((size - b.tokens) * int64(time.Second) / c.lim.rate)
		return nil, fmt.Errorf("%w: this requester's challenge budget: %d of %d bytes left, shard %d bytes; refilled enough in %v", ErrBusy, b.tokens, c.lim.burst, size, wait.Round(time.Second))
	}
	b.tokens -= size
	c.last[key] = now
	c.order = append(c.order, challengeRecord{key, now})
	for len(c.order) > c.lim.records {
		c.drop()
	}
	c.running++
	c.stats.Admitted++
	c.stats.HashedBytes += size
	c.stats.PeakRunning = max(c.stats.PeakRunning, c.running)
	return func() {
		c.mu.Lock()
		c.running--
		c.mu.Unlock()
	}, nil
}

// refill adds what b earned since it was last looked at, up to the burst.
// A clock that went back earns nothing.
func (c *challenger) refill(b *budget, now time.Time) {
	d := now.Sub(b.at)
	if d <= 0 {
		return
	}
	b.at = now
	if d >= time.Duration(c.lim.burst/c.lim.rate+1)*time.Second {
		b.tokens = c.lim.burst // also keeps the product below from overflowing
		return
	}
	b.tokens = min(c.lim.burst, b.tokens+int64(d/time.Millisecond)*c.lim.rate/1000)
}

// pruneBudgets forgets the budgets that are full again: a new one is the
// same.
func (c *challenger) pruneBudgets(now time.Time) {
	for who, b := range c.budgets {
		c.refill(b, now)
		if b.tokens >= c.lim.burst {
			delete(c.budgets, who)
		}
	}
}

// forget drops the records older than the interval: those pairs may be
// challenged again.
func (c *challenger) forget(now time.Time) {
	for len(c.order) > 0 && now.Sub(c.order[0].at) >= c.lim.interval {
		c.drop()
	}
}

// drop forgets the oldest record.
func (c *challenger) drop() {
	r := c.order[0]
	c.order[0] = challengeRecord{}
	c.order = c.order[1:]
	if at, ok := c.last[r.key]; ok && at.Equal(r.at) {
		delete(c.last, r.key)
	}
	if len(c.order) == 0 {
		c.order = nil // let the backing array go
	}
}

// counts returns the counts of challenges admitted and refused.
func (c *challenger) counts() challengeStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}
