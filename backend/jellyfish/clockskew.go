package jellyfish

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/timeproto"
)

// Bounds of the clock correction.
const (
	// minCorrection: offsets below it are left alone. Signatures and
	// records tolerate minutes; a smaller correction would only make
	// the clock jitter with the network's round trips.
	minCorrection = 30 * time.Second
	// maxCorrection: a larger offset is not believed. The peers answering
	// are then more likely wrong (or lying together) than this machine's
	// clock wrong by so much.
	maxCorrection = 30 * 24 * time.Hour
	// skewRetryFor is how long a process keeps asking when too few peers
	// were connected to estimate at once.
	skewRetryFor = 30 * time.Second
)

// skewClock is Jellyfish's clock corrected by the network's: the base
// clock plus the median offset of the peers' clocks (timeproto), once it
// is known and between minCorrection and maxCorrection.
type skewClock struct {
	base   func() time.Time
	offset atomic.Int64 // nanoseconds added to base

	mu       sync.Mutex
	measured time.Duration // the last estimate, applied or not
	peers    int           // samples it came from
	at       time.Time     // when (base clock); zero: never
	err      error         // the last estimate's failure
}

// Now returns the corrected time.
func (c *skewClock) Now() time.Time { return c.base().Add(time.Duration(c.offset.Load())) }

// estimate asks the network's clocks once and applies the result. It
// reports whether enough peers answered.
func (c *skewClock) estimate(ctx context.Context, ask func(context.Context, func() time.Time) (time.Duration, []timeproto.Sample, error)) bool {
	off, samples, err := ask(ctx, c.base)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
	if err != nil {
		return false
	}
	c.measured, c.peers, c.at = off, len(samples), c.base()
	abs := off
	if abs < 0 {
		abs = -abs
	}
	switch {
	case abs < minCorrection:
		c.offset.Store(0)
	case abs > maxCorrection:
		c.offset.Store(0)
		fs.Errorf(nil, "jellyfish: %d peers' clocks are %v from this machine's; not believed (more than %v): check this machine's clock", len(samples), off.Round(time.Second), maxCorrection)
	default:
		if time.Duration(c.offset.Swap(int64(off))) != off {
			fs.Logf(nil, "jellyfish: this machine's clock is %v %s the network's (median of %d peers): using the network's time", abs.Round(time.Second), map[bool]string{true: "behind", false: "ahead of"}[off > 0], len(samples))
		}
	}
	return true
}

// start estimates at once (within first) and, when too few peers were
// connected yet, keeps trying in the background (within ctx) for
// skewRetryFor.
func (c *skewClock) start(first, ctx context.Context, ask func(context.Context, func() time.Time) (time.Duration, []timeproto.Sample, error)) {
	// The routing table fills within moments of joining: a few quick
	// tries before falling back to the background.
	for try := 0; ; try++ {
		if c.estimate(first, ask) {
			return
		}
		if try == 4 {
			break
		}
		select {
		case <-first.Done():
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	go func() {
		deadline := time.Now().Add(skewRetryFor)
		for time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			if c.estimate(ctx, ask) {
				return
			}
		}
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		if err != nil && !errors.Is(err, context.Canceled) {
			fs.Debugf(nil, "jellyfish: clock not checked against the network: %v", err)
		}
	}()
}

// status reports the clock's offset for `backend status`.
func (c *skewClock) status() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]any{"correction": time.Duration(c.offset.Load()).Round(time.Millisecond).String()}
	if c.at.IsZero() {
		out["network_offset"] = "unknown"
		if c.err != nil {
			out["error"] = c.err.Error()
		}
		return out
	}
	out["network_offset"] = c.measured.Round(time.Millisecond).String()
	out["peers"] = c.peers
	out["measured"] = c.at.Add(time.Duration(c.offset.Load())).UTC().Format(time.RFC3339)
	return out
}
