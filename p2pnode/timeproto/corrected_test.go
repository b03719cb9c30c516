package timeproto

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCorrectedBounds: an estimate below MinCorrection leaves the clock
// alone, one between the bounds is applied (and reported as a change only
// once), one beyond MaxCorrection is not believed, and a failed estimate
// keeps the correction it had.
func TestCorrectedBounds(t *testing.T) {
	base := time.Unix(1_800_000_000, 0)
	c := NewCorrected(func() time.Time { return base })
	ask := func(off time.Duration, err error) func(context.Context, func() time.Time) (time.Duration, []Sample, error) {
		return func(context.Context, func() time.Time) (time.Duration, []Sample, error) {
			return off, make([]Sample, 5), err
		}
	}
	ctx := context.Background()
	for _, step := range []struct {
		off                  time.Duration
		err                  error
		want                 time.Duration
		changed, disbelieved bool
	}{
		{MinCorrection - time.Second, nil, 0, false, false},
		{MinCorrection + time.Second, nil, MinCorrection + time.Second, true, false},
		{MinCorrection + time.Second, nil, MinCorrection + time.Second, false, false},
		{0, ErrTooFewPeers, MinCorrection + time.Second, false, false},
		{-6 * 24 * time.Hour, nil, -6 * 24 * time.Hour, true, false},
		{MaxCorrection - time.Hour, nil, MaxCorrection - time.Hour, true, false},
		{MaxCorrection + time.Hour, nil, 0, true, true},
	} {
		u, err := c.Estimate(ctx, ask(step.off, step.err))
		if !errors.Is(err, step.err) {
			t.Fatalf("offset %v: error %v, want %v", step.off, err, step.err)
		}
		if c.Offset() != step.want || !c.Now().Equal(base.Add(step.want)) || u.Changed != step.changed || u.Disbelieved != step.disbelieved {
			t.Fatalf("offset %v: correction %v changed %v disbelieved %v; want %v %v %v", step.off, c.Offset(), u.Changed, u.Disbelieved, step.want, step.changed, step.disbelieved)
		}
		if c.InDoubt() != step.disbelieved {
			t.Fatalf("offset %v: in doubt %v", step.off, c.InDoubt())
		}
	}
	// A failed estimate keeps the doubt; one within bounds ends it, on
	// either side.
	for _, step := range []struct {
		off   time.Duration
		err   error
		doubt bool
	}{
		{0, ErrTooFewPeers, true},
		{-MaxCorrection - time.Hour, nil, true},
		{-MaxCorrection + time.Hour, nil, false},
	} {
		c.Estimate(ctx, ask(step.off, step.err))
		if c.InDoubt() != step.doubt {
			t.Fatalf("offset %v (%v): in doubt %v", step.off, step.err, c.InDoubt())
		}
	}
	if NewCorrected(func() time.Time { return base }).InDoubt() {
		t.Fatal("a clock never compared is in doubt")
	}
}
