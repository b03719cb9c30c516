package jellyfish

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock a test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestRetentionWindow deletes a file and runs CleanUp on either side of
// the retention window (30 days by default), on a clock the test moves:
// a day before the window ends the shards are all still held, a day after
// it they are freed. A year on, with the network saying the clock is in
// doubt, cleanup deletes nothing.
func TestRetentionWindow(t *testing.T) {
	a := newMemAccount(t, 4)
	clock := &fakeClock{now: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	dev := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	ctx := context.Background()
	mustPut(t, dev, "keep.bin", randomBytes(t, 3<<20))
	mustPut(t, dev, "gone.bin", randomBytes(t, 3<<20))
	mustFlush(t, dev)
	ref, err := dev.s.objectOf(ctx, entryContent(t, dev, "gone.bin"))
	if err != nil || ref == nil {
		t.Fatalf("gone.bin's reference: %v", err)
	}
	shards := ref.Shards()
	stillHeld := func() (n int) {
		for _, sh := range shards {
			n += len(a.net.Holders(sh.ID))
		}
		return n
	}
	o, err := dev.NewObject(ctx, "gone.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	mustFlush(t, dev)
	held := stillHeld()
	if held != len(shards) {
		t.Fatalf("%d of gone.bin's %d shards held before cleanup", held, len(shards))
	}
	// With the network saying the clock is in doubt, a cleanup past the
	// window deletes nothing: the window is measured on that clock.
	clock.Advance(365 * 24 * time.Hour)
	a.net.SetClockInDoubt(true)
	if err := dev.CleanUp(ctx); !errors.Is(err, errCleanupClockInDoubt) {
		t.Fatalf("cleanup with the clock in doubt: %v", err)
	}
	if n := stillHeld(); n != held {
		t.Fatalf("%d of gone.bin's %d shards held after a cleanup with the clock in doubt", n, held)
	}
	clock.Advance(-365 * 24 * time.Hour)
	a.net.SetClockInDoubt(false)
	for _, step := range []struct {
		after time.Duration
		freed bool
	}{{0, false}, {29 * 24 * time.Hour, false}, {2 * 24 * time.Hour, true}} {
		clock.Advance(step.after)
		if err := dev.CleanUp(ctx); err != nil {
			t.Fatal(err)
		}
		now := stillHeld()
		if want := map[bool]int{false: held, true: 0}[step.freed]; now != want {
			t.Fatalf("at %v: %d of gone.bin's shards held, want %d", clock.Now().Format(time.DateOnly), now, want)
		}
	}
	if got := len(mustRead(t, dev, "keep.bin")); got != 3<<20 {
		t.Fatalf("keep.bin reads %d bytes", got)
	}
}
