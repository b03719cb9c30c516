package timeproto

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of a clock correction.
const (
	// MinCorrection: offsets below it are left alone. Signatures and
	// records tolerate minutes; a smaller correction would only make the
	// clock jitter with the network's round trips.
	MinCorrection = 30 * time.Second
	// MaxCorrection: a larger offset is not believed. The peers answering
	// are then more likely wrong (or lying together) than the local clock
	// wrong by so much.
	MaxCorrection = 30 * 24 * time.Hour
)

// Corrected is a clock corrected by the network's: a base clock plus the
// median offset of its peers' clocks (Estimate), once one is known and
// between MinCorrection and MaxCorrection.
type Corrected struct {
	base   func() time.Time
	offset atomic.Int64 // nanoseconds added to base

	mu       sync.Mutex
	measured time.Duration // the last estimate, applied or not
	peers    int           // samples it came from
	at       time.Time     // when (corrected clock); zero: never
	err      error         // the last estimate's failure
}

// NewCorrected returns base, uncorrected until Update is called.
func NewCorrected(base func() time.Time) *Corrected {
	if base == nil {
		base = time.Now
	}
	return &Corrected{base: base}
}

// Now returns the corrected time.
func (c *Corrected) Now() time.Time { return c.base().Add(c.Offset()) }

// Offset returns the correction applied now.
func (c *Corrected) Offset() time.Duration { return time.Duration(c.offset.Load()) }

// Update is the outcome of one estimate.
type Update struct {
	Measured    time.Duration // the peers' median offset
	Peers       int           // how many answered
	Changed     bool          // the correction applied changed
	Disbelieved bool          // beyond MaxCorrection: not applied
}

// Estimate asks the network's clocks once (ask is Node.ClockOffset) and
// applies the result. It fails, changing nothing, when too few peers
// answered.
func (c *Corrected) Estimate(ctx context.Context, ask func(context.Context, func() time.Time) (time.Duration, []Sample, error)) (Update, error) {
	off, samples, err := ask(ctx, c.base)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
	if err != nil {
		return Update{}, err
	}
	u := Update{Measured: off, Peers: len(samples)}
	// Compared on both sides rather than by absolute value: the smallest
	// Duration (a peer's time before 1678, saturated) has none.
	want := off
	switch {
	case off > -MinCorrection && off < MinCorrection:
		want = 0
	case off > MaxCorrection || off < -MaxCorrection:
		want, u.Disbelieved = 0, true
	}
	u.Changed = time.Duration(c.offset.Swap(int64(want))) != want
	c.measured, c.peers, c.at = off, len(samples), c.base().Add(want)
	return u, nil
}

// InDoubt reports whether the last estimate that succeeded put the
// network's clocks beyond MaxCorrection from this one: either this clock
// is wrong by more than a month, or the peers that answered are. Work that
// cannot be undone on a wrong clock (deleting what a lease no longer
// covers) waits while it is.
func (c *Corrected) InDoubt() bool { return c.State().InDoubt() }

// State is a Corrected clock's correction and its last measurement.
type State struct {
	// Correction is the offset applied now.
	Correction time.Duration
	// Measured is the peers' median offset at the last successful
	// estimate, from Peers of them, at At (corrected clock); At is zero
	// if no estimate has succeeded yet.
	Measured time.Duration
	Peers    int
	At       time.Time
	// Err is the last estimate's failure, nil if it succeeded.
	Err error
}

// InDoubt reports whether the measurement put the network's clocks
// beyond MaxCorrection (Corrected.InDoubt).
func (s State) InDoubt() bool {
	return !s.At.IsZero() && (s.Measured > MaxCorrection || s.Measured < -MaxCorrection)
}

// State returns the correction and the last measurement.
func (c *Corrected) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return State{Correction: c.Offset(), Measured: c.measured, Peers: c.peers, At: c.at, Err: c.err}
}

// Status reports the correction for status pages: the correction applied,
// the last offset measured, from how many peers, and when.
func (c *Corrected) Status() map[string]any {
	st := c.State()
	out := map[string]any{"correction": st.Correction.Round(time.Millisecond).String()}
	if st.At.IsZero() {
		out["network_offset"] = "unknown"
		if st.Err != nil {
			out["error"] = st.Err.Error()
		}
		return out
	}
	out["network_offset"] = st.Measured.Round(time.Millisecond).String()
	out["peers"] = st.Peers
	out["measured"] = st.At.UTC().Format(time.RFC3339)
	if st.InDoubt() {
		out["in_doubt"] = "the network's clocks are more than 30 days from this machine's: deletions wait until this machine's clock is set right"
	}
	return out
}
