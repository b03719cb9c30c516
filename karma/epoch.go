package karma

import "time"

const (
	// EpochLength is the length of an epoch: witnesses rotate, probe and
	// publish one summary per subject each epoch.
	EpochLength = 24 * time.Hour
	// WindowEpochs is how many complete epochs of reports count: the
	// original design's 30 days.
	WindowEpochs = 30
	// Window is WindowEpochs epochs as a duration.
	Window = WindowEpochs * EpochLength
)

// Epoch numbers the days since 1970-01-01 UTC.
type Epoch uint32

const epochSeconds = int64(EpochLength / time.Second)

// EpochOf returns the epoch t falls in (times before 1970 fall in epoch 0).
func EpochOf(t time.Time) Epoch {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return Epoch(s / epochSeconds)
}

// Start returns the first instant of e.
func (e Epoch) Start() time.Time { return time.Unix(int64(e)*epochSeconds, 0).UTC() }

// End returns the first instant after e.
func (e Epoch) End() time.Time { return (e + 1).Start() }

// WindowAt returns the epochs whose reports count at t: the WindowEpochs
// complete epochs before the one t is in, first to last. A summary of
// epoch e is published when e ends and counts until e.End()+Window. ok is
// false when no epoch has completed (t in epoch 0).
func WindowAt(t time.Time) (first, last Epoch, ok bool) {
	cur := EpochOf(t)
	if cur == 0 {
		return 0, 0, false
	}
	last = cur - 1
	if last >= WindowEpochs-1 {
		first = last - (WindowEpochs - 1)
	}
	return first, last, true
}
